"""The MicroPython examples in tools/examples, run by ``pystack run`` on the simulated network.

Each runs in a subprocess as a person would run it; the peer 10.0.0.1 answers with its UDP echo
service and its DNS server (docs/architecture.md, sim). The echo server, which nobody on the
simulated network talks to, is also run in-process with the peer stack as its client.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pystack.cli import build_parser
from pystack.clock import Clock
from pystack.runtime import build_runtime
from pystack.runtime.network import ScriptNetwork
from pystack.runtime.script import run_script
from pystack.udp.endpoint import UDPEndpoint
from pystack.wire.addresses import ip_from_str

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tools" / "examples"
ECHO_LINE = re.compile(r"echo from \('10\.0\.0\.1', 7\) (.+) in \d+ ms")


def pystack_run(
    tmp_path: Path, example: str, *arguments: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "pystack", "run", *options, str(EXAMPLES / example), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=tmp_path,
    )


def test_every_example_says_how_to_run_it_on_the_simulator_and_on_a_tun_device() -> None:
    examples = sorted(EXAMPLES.glob("*.py"))
    assert {path.name for path in examples} >= {
        "udp_echo_client.py",
        "udp_echo_server.py",
        "dns_lookup.py",
        "broadcast_beacon.py",
        "multicast_listener.py",
    }
    for path in examples:
        header = "".join(
            line for line in path.read_text().splitlines(keepends=True) if line.startswith("#")
        )
        assert "pystack run" in header and "--link tun" in header, path.name


def test_echo_client_gets_each_datagram_back_byte_for_byte(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "udp_echo_client.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [ECHO_LINE.fullmatch(line).group(1) for line in lines[:3]] == [  # type: ignore[union-attr]
        "b'hello 0'",
        "b'hello 1'",
        "b'hello 2'",
    ]
    assert lines[3:] == ["sent 3 received 3 lost 0 corrupt 0"]
    assert result.stderr == ""  # pystack says nothing unless asked


def test_echo_client_with_fragmented_20000_byte_datagrams(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "udp_echo_client.py", "peer.sim", "7", "2", "20000")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [ECHO_LINE.fullmatch(line).group(1) for line in lines[:2]] == ["20000 bytes"] * 2  # type: ignore[union-attr]
    assert lines[2:] == ["sent 2 received 2 lost 0 corrupt 0"]


def test_echo_client_traced_shows_dns_then_the_datagrams(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "udp_echo_client.py", options=("--trace",))
    assert result.returncode == 0, result.stderr
    assert "A? peer.sim." in result.stderr
    assert (
        len(re.findall(r"> IP 10\.0\.0\.2\.\d+ > 10\.0\.0\.1\.7: UDP, length 7", result.stderr))
        == 3
    )
    assert (
        len(re.findall(r"< IP 10\.0\.0\.1\.7 > 10\.0\.0\.2\.\d+: UDP, length 7", result.stderr))
        == 3
    )


def test_echo_client_under_30_percent_loss_reports_losses_and_no_corruption(
    tmp_path: Path,
) -> None:
    result = pystack_run(
        tmp_path,
        "udp_echo_client.py",
        "10.0.0.1",
        "7",
        "12",
        options=("--impair", "loss=30%,seed=2"),
    )
    lines = result.stdout.splitlines()
    summary = re.fullmatch(r"sent 12 received (\d+) lost (\d+) corrupt 0", lines[-1])
    assert summary, result.stdout
    received, lost = int(summary.group(1)), int(summary.group(2))
    assert received + lost == 12 and received > 0 and lost > 0, result.stdout
    assert result.returncode == 0
    for line in lines[:-1]:
        # Every reply is the datagram sent for that number; losses are named, never garbled.
        match = ECHO_LINE.fullmatch(line)
        assert match or re.fullmatch(r"no reply to \d+|late reply to \d+", line), line
    echoed = [ECHO_LINE.fullmatch(line) for line in lines[:-1]]
    numbers = [int(m.group(1)[len("b'hello ") : -1]) for m in echoed if m]
    assert numbers == sorted(set(numbers)) and len(numbers) == received


def test_echo_client_with_no_reply_exits_1(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "udp_echo_client.py", "peer.sim", "9", "1")  # discard
    assert result.stdout == "no reply to 0\nsent 1 received 0 lost 1 corrupt 0\n"
    assert result.returncode == 1


def test_dns_lookup_resolves_the_default_names(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "dns_lookup.py")
    assert (result.returncode, result.stdout) == (0, "example.com 10.0.0.1\npeer.sim 10.0.0.1\n")


def test_dns_lookup_of_an_unknown_name_prints_the_micropython_error_and_exits_1(
    tmp_path: Path,
) -> None:
    result = pystack_run(tmp_path, "dns_lookup.py", "example.com", "no.such.name")
    assert result.stdout == "example.com 10.0.0.1\nno.such.name error -2\n"
    assert result.returncode == 1


def test_dns_lookup_of_a_hosts_file_name_and_a_numeric_address(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.77 printer.lan  # a comment\n")
    result = pystack_run(
        tmp_path, "dns_lookup.py", "printer.lan", "10.9.8.7", options=("--hosts", str(hosts))
    )
    assert (result.returncode, result.stdout) == (0, "printer.lan 10.0.0.77\n10.9.8.7 10.9.8.7\n")


def test_broadcast_beacons_go_out_and_the_peers_echo_service_answers_them(
    tmp_path: Path,
) -> None:
    result = pystack_run(tmp_path, "broadcast_beacon.py", "7", "1", options=("--trace",))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sent b'beacon 0 to 10.0.0.255'",
        "reply from ('10.0.0.1', 7) b'beacon 0 to 10.0.0.255'",
        "sent b'beacon 0 to 255.255.255.255'",
        "reply from ('10.0.0.1', 7) b'beacon 0 to 255.255.255.255'",
        "sent 2 beacons, heard 2 replies",
    ]
    assert re.search(r"> IP 10\.0\.0\.2\.\d+ > 10\.0\.0\.255\.7: UDP, length 22", result.stderr)
    assert re.search(
        r"> IP 10\.0\.0\.2\.\d+ > 255\.255\.255\.255\.7: UDP, length 27", result.stderr
    )


def test_broadcast_beacon_to_a_port_nobody_listens_on_hears_nothing(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "broadcast_beacon.py", "4444", "1", "10.0.0.255")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sent b'beacon 0 to 10.0.0.255'",
        "sent 1 beacons, heard 0 replies",
    ]


def test_multicast_listener_joins_times_out_and_leaves(tmp_path: Path) -> None:
    result = pystack_run(
        tmp_path, "multicast_listener.py", "239.1.2.3", "5007", "0.3", options=("--trace",)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "joined 239.1.2.3 port 5007",
        "nothing for 300 ms",
        "left 239.1.2.3 after 0 datagrams",
    ]
    report = re.search(
        r"> IP 10\.0\.0\.2 > 239\.1\.2\.3: IGMP v2 report 239\.1\.2\.3", result.stderr
    )
    leave = re.search(r"> IP 10\.0\.0\.2 > 224\.0\.0\.2: IGMP leave 239\.1\.2\.3", result.stderr)
    assert report and leave and report.start() < leave.start(), result.stderr


def test_echo_server_alone_on_the_simulator_times_out_cleanly(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "udp_echo_server.py", "7000", "3", "0.3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["listening on port 7000", "nothing for 300 ms"]
    assert re.fullmatch(r"served 0 datagrams, 0 bytes in \d+ ms", lines[2]) and len(lines) == 3


def test_echo_server_serves_the_simulated_peer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the script runs on the host stack while the peer stack sends to it."""
    monkeypatch.setenv("MICROPYPATH", ".frozen")
    monkeypatch.setenv("HOME", str(tmp_path))
    script = str(EXAMPLES / "udp_echo_server.py")
    # --real-time: the peer is driven by a thread of this test, which virtual time cannot see
    arguments = build_parser().parse_args(
        ["run", "--seed", "5", "--real-time", script, "7000", "3", "5"]
    )
    network = ScriptNetwork(arguments)
    replies: list[bytes] = []
    failures: list[str] = []
    try:
        providers = build_runtime(arguments)
        network.register(providers, network.start())
        simulation = network.simulation
        assert simulation is not None
        client = threading.Thread(
            target=_peer_client, args=(simulation, replies, failures), daemon=True
        )
        client.start()
        status = run_script(script, arguments.arguments, providers)
        client.join(10)
    finally:
        network.close()
    output = capsys.readouterr().out.splitlines()
    assert not failures, failures
    assert status == 0
    assert replies == [b"one", b"x" * 3000, b"three"]
    assert output[:4] == [
        "listening on port 7000",
        "served 1 from ('10.0.0.1', 6000) b'one'",
        "served 2 from ('10.0.0.1', 6000) 3000 bytes",
        "served 3 from ('10.0.0.1', 6000) b'three'",
    ]
    assert re.fullmatch(r"served 3 datagrams, 3008 bytes in \d+ ms", output[4])


def _send(endpoint: UDPEndpoint, data: bytes, server: tuple[int, int], clock: Clock) -> None:
    endpoint.send_to(data, server, clock.now())


def _peer_client(simulation: object, replies: list[bytes], failures: list[str]) -> None:
    from pystack.sim.world import SimulatedNetwork

    assert isinstance(simulation, SimulatedNetwork)
    thread, peer, host = simulation.thread, simulation.peer, simulation.host
    listening = thread.wait_for(lambda: any(e.port == 7000 for e in host.udp.endpoints()), 10)
    if not listening:
        failures.append("the script never bound port 7000")
        return
    endpoint = thread.call(lambda: peer.udp.open(0, 6000))
    server = (ip_from_str("10.0.0.2"), 7000)
    for data in (b"one", b"x" * 3000, b"three"):
        thread.call(functools.partial(_send, endpoint, data, server, peer.clock))
        if not thread.wait_for(lambda: endpoint.pending > 0, 5):
            failures.append(f"no echo of {len(data)} bytes")
            return
        got = thread.call(endpoint.receive)
        assert got is not None
        replies.append(got[0])
