"""``pystack show`` on a capture tcpdump wrote of a kernel-to-kernel TCP transfer, inside a
namespace the test creates (over its lo) and removes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.utils import rdpcap  # type: ignore[import-untyped]

from pystack.netns import Namespace
from tests.helpers.kernel import kernel_required

ROOT = Path(__file__).resolve().parents[2]

TRANSFER = """
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
client = socket.create_connection(server.getsockname(), source_address=("127.0.0.2", 0))
peer, _ = server.accept()
client.sendall(b"x" * 20000)
client.shutdown(socket.SHUT_WR)
got = b""
while True:
    data = peer.recv(65536)
    if not data:
        break
    got += data
peer.close()
client.close()
server.close()
print(len(got))
"""


def test_show_reads_a_tcpdump_capture_of_a_kernel_transfer(
    netns: Namespace, tmp_path: Path
) -> None:
    tcpdump = shutil.which("tcpdump") or (
        "/usr/bin/tcpdump" if Path("/usr/bin/tcpdump").exists() else None
    )
    if tcpdump is None:
        if kernel_required():
            pytest.fail("tcpdump is not installed (make tools installs it)")
        pytest.skip("tcpdump is not installed (make tools installs it as root)")
    netns.ip("link", "set", "dev", "lo", "mtu", "1500")
    capture = tmp_path / "kernel.pcap"
    dump = netns.popen(
        # immediate mode: each packet is written as it comes (a ring block is not waited for);
        # -Z root: no privilege drop, so it may write into this root-only directory
        [
            tcpdump,
            "-i",
            "lo",
            "--immediate-mode",
            "-n",
            "-Z",
            "root",
            "-c",
            "200",
            "-w",
            str(capture),
            "tcp",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert dump.stderr is not None
        line = dump.stderr.readline()  # "tcpdump: listening on lo, ..." once it captures
        assert "listening on lo" in line, line
        result = netns.run([sys.executable, "-c", TRANSFER])
        assert result.stdout.strip() == "20000"
    finally:
        dump.send_signal(signal.SIGINT)  # tcpdump closes the file and exits
        dump.wait(timeout=30)
    packets = rdpcap(str(capture))
    assert len(packets) >= 8
    shown = subprocess.run(
        [sys.executable, "-m", "pystack", "show", "--text", str(capture)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert shown.returncode == 0, shown.stderr
    arrows = [line for line in shown.stdout.splitlines() if "-->" in line or "<--" in line]
    assert len(arrows) == len(packets)
    assert "SYN  seq 0" in arrows[0] and "SYN ACK  seq 0  ack 1" in arrows[1]
    assert any(
        "= ESTABLISHED" in line or "ESTABLISHED" in line for line in shown.stdout.splitlines()
    )
    page = tmp_path / "kernel.html"
    html = subprocess.run(
        [sys.executable, "-m", "pystack", "show", str(capture), "-o", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert html.returncode == 0, html.stderr
    assert page.read_text().count('<g class="arrow"') == len(packets)
