"""``--record FILE`` and ``pystack show``: the recording's lines, the text and HTML ladders (the
page opened in headless Chromium), captures (pcap, pcapng) and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP  # type: ignore[import-untyped]

from pystack.show import ShowError, load
from pystack.show.ladder import MAX_ARROWS
from pystack.wire.ethernet import ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.ipv4 import IPv4Packet

ROOT = Path(__file__).resolve().parents[2]

ECHO_SCRIPT = """
import socket
s = socket.socket()
s.connect(socket.getaddrinfo("10.0.0.1", 7)[0][-1])
s.send(b"x" * 3000)
got = b""
while len(got) < 3000:
    got += s.recv(4096)
s.close()
print("echoed", len(got))
"""


def pystack(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pystack", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An echo of 3000 bytes on the simulator whose second data segment is lost (a rule)."""
    directory = tmp_path_factory.mktemp("record")
    (directory / "echo.py").write_text(textwrap.dedent(ECHO_SCRIPT))
    result = pystack(
        "run", "--seed", "3", "--record", "rec.jsonl", "--impair", "drop=out:tcp:data:2",
        "echo.py", cwd=directory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echoed 3000\n"
    assert result.stderr == ""  # recording prints nothing without --trace
    return directory / "rec.jsonl"


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_recording_has_header_packets_states_tcp_variables_and_counters(recorded: Path) -> None:
    lines = records(recorded)
    header = lines[0]
    assert header["kind"] == "header" and header["format"] == "pystack-record"
    assert header["version"] == 1 and header["seed"] == 3
    assert header["command"][:3] == ["pystack", "run", "--seed"]  # type: ignore[index]
    assert lines[-1]["kind"] == "end"
    times = [float(line["t"]) for line in lines]  # type: ignore[arg-type]
    assert times == sorted(times)
    packets = [line for line in lines if line["kind"] == "packet"]
    assert {line["host"] for line in packets} == {"host", "peer"}
    tcp_segments = 0
    for line in packets:
        frame = EthernetFrame.parse(bytes.fromhex(str(line["bytes"])))  # bytes re-parse
        if frame.ethertype == ETHERTYPE_IPV4:
            IPv4Packet.parse(frame.payload)
            tcp_segments += 1
    assert tcp_segments >= 2 * 10
    states = [(line["host"], line["new"]) for line in lines if line["kind"] == "state"]
    assert states[:2] == [("host", "SYN-SENT"), ("peer", "SYN-RECEIVED")]
    assert ("host", "TIME-WAIT") in states and ("peer", "CLOSED") in states
    tcp = [line for line in lines if line["kind"] == "tcp"]
    assert tcp and all(isinstance(line["cwnd"], int) for line in tcp)
    assert {"ssthresh", "flight", "snd_wnd", "rcv_wnd", "srtt", "rto"} <= set(tcp[0])
    assert tcp[0]["connection"][1] > 1023 and tcp[0]["connection"][3] == 7  # type: ignore[index]
    retransmits = [line for line in packets if "retransmit" in str(line.get("note", ""))]
    assert [line["note"] for line in retransmits] == [
        "retransmit: RACK lost"
    ]  # RFC 8985: found by time
    drops = [line for line in lines if line["kind"] == "drop"]
    assert [line["reason"] for line in drops] == ["IMPAIRMENT_RULE"]
    by_host = {line["host"]: line["counters"] for line in lines if line["kind"] == "counters"}
    assert set(by_host) == {"host", "peer"}
    assert by_host["host"]["tcp.state.time_wait"] == 1  # type: ignore[index]


def test_text_ladder_shows_the_handshake_in_order_and_the_lost_segment(recorded: Path) -> None:
    result = pystack("show", "--text", str(recorded), cwd=recorded.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "host", "10.0.0.2"]
    arrows = [line for line in lines if re.search(r"-->|<--|-X", line)]
    syn = next(i for i, line in enumerate(arrows) if " SYN  seq 0" in line)
    assert "-->|" in arrows[syn]
    assert "<-" in arrows[syn + 1] and "SYN ACK  seq 0  ack 1" in arrows[syn + 1]
    assert "-->|" in arrows[syn + 2] and "ACK  seq 1  ack 1  len 0" in arrows[syn + 2]
    lost = [line for line in arrows if "X " in line and "lost: IMPAIRMENT_RULE" in line]
    assert len(lost) == 1 and "seq 1449" in lost[0] and "-->" not in lost[0]
    assert any("retransmit: RACK lost" in line and "seq 1449" in line for line in arrows)
    assert any("= SYN-SENT (active open)" in line for line in lines)
    assert any("TIME-WAIT" in line for line in lines)


def test_every_sent_packet_is_one_arrow(recorded: Path) -> None:
    sent = [line for line in records(recorded) if line.get("dir") == "out"]
    ladder = load(str(recorded))
    assert len(ladder.arrows) == len([line for line in sent if line["kind"] == "packet"])
    assert [a.kind for a in ladder.arrows].count("lost") == 1
    assert [a.kind for a in ladder.arrows].count("retransmit") == 1
    assert ladder.columns == ["host 10.0.0.2", "peer 10.0.0.1"]
    assert "host: 10.0.0.2" in " ".join(ladder.series)
    tables = ladder.counters
    assert tables["host 10.0.0.2"]["tcp.state.time_wait"] == 1


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (make tools installs it as root)")
    return path


def test_html_page_in_headless_chromium(recorded: Path, tmp_path: Path) -> None:
    browser = chromium()
    page = tmp_path / "page.html"
    result = pystack("show", str(recorded), "-o", str(page), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # self-contained: nothing to fetch
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1400,2000", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    sent = [r for r in records(recorded) if r["kind"] == "packet" and r["dir"] == "out"]
    assert len(re.findall(r'<g class="arrow" data-kind="', dom)) == len(sent)
    assert len(re.findall(r'<g class="arrow" data-kind="lost"', dom)) == 1
    assert len(re.findall(r'<g class="arrow" data-kind="retransmit"', dom)) == 1
    states = re.findall(r'<text class="state"[^>]*>([A-Z0-9-]+)</text>', dom)
    for state in ("SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT", "CLOSED"):
        assert state in states
    for series in ("cwnd", "ssthresh", "flight", "snd_wnd", "rcv_wnd", "srtt", "rto"):
        assert f'<polyline class="series" data-series="{series}"' in dom
    assert len(re.findall(r'<svg class="plot"', dom)) == 6  # 3 per connection, host and peer
    assert '<table class="counters">' in dom
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_record_limit_stops_with_a_last_line(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(textwrap.dedent(ECHO_SCRIPT))
    result = pystack("run", "--record", "r.jsonl", "--record-limit", "4k", "echo.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = records(tmp_path / "r.jsonl")
    assert lines[-1]["kind"] == "truncated" and lines[-1]["limit"] == 4000
    assert (tmp_path / "r.jsonl").stat().st_size <= 4000
    text = pystack("show", "--text", "r.jsonl", cwd=tmp_path)
    assert text.returncode == 0 and "recording stopped" in text.stdout
    bad = pystack("run", "--record", "r.jsonl", "--record-limit", "lots", "echo.py", cwd=tmp_path)
    assert bad.returncode == 2 and "--record-limit" in bad.stderr


def test_record_with_trace_prints_only_what_trace_asks(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(textwrap.dedent(ECHO_SCRIPT))
    result = pystack("run", "--trace", "--record", "r.jsonl", "echo.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert " > " in result.stderr and " * " not in result.stderr  # no events at --trace
    assert " peer " not in result.stderr  # the peer is recorded, not printed
    assert any(r.get("host") == "peer" for r in records(tmp_path / "r.jsonl"))


# -- captures -----------------------------------------------------------------------------------
SYN = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=49152, dport=80, flags="S", seq=100))


def _pcap(packets: list[bytes], linktype: int = 101) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for index, packet in enumerate(packets):
        out += struct.pack("<IIII", 100, index * 1000, len(packet), len(packet)) + packet
    return out


def _pcapng(packets: list[bytes], linktype: int = 101) -> bytes:
    def block(kind: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for index, packet in enumerate(packets):
        out += block(6, struct.pack("<IIIII", 0, 0, index, len(packet), len(packet)) + packet)
    return out


def test_raw_ip_pcap_and_pcapng_read_alike(tmp_path: Path) -> None:
    for name, data in (("a.pcap", _pcap([SYN, SYN])), ("a.pcapng", _pcapng([SYN, SYN]))):
        (tmp_path / name).write_bytes(data)
        ladder = load(str(tmp_path / name))
        assert ladder.columns == ["10.0.0.1", "10.0.0.2"]
        assert [a.kind for a in ladder.arrows] == ["segment", "retransmit"]
        assert ladder.arrows[0].label.startswith("SYN  seq 0  len 0")
        states = [(row.column, row.state) for row in ladder.rows if hasattr(row, "state")]
        assert states == [("10.0.0.1", "SYN-SENT"), ("10.0.0.2", "SYN-RECEIVED")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        (b"", "empty file"),
        (b"hello world\n", "neither a pystack recording nor a pcap"),
        (b'{"kind": "packet", "t": 0}\n', "not a pystack recording"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap header"),
        (_pcap([SYN])[:-5], "truncated"),
        (_pcap([SYN], linktype=147), "link type 147"),
        (_pcapng([SYN])[:-3], "truncated"),
    ],
)
def test_bad_input_is_one_line_and_status_1(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ShowError, match=message):
        load(str(path))
    result = pystack("show", "--text", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_recording_cut_mid_line_is_read_and_a_broken_one_is_refused(
    recorded: Path, tmp_path: Path
) -> None:
    text = recorded.read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) // 2])  # as a killed run leaves it
    assert load(str(cut)).arrows
    broken = tmp_path / "broken.jsonl"
    lines = text.splitlines()
    broken.write_text("\n".join([*lines[:5], "{not json", *lines[5:]]) + "\n")
    with pytest.raises(ShowError, match="line 6"):
        load(str(broken))


def test_long_ladders_are_capped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "long.pcap"
    path.write_bytes(_pcap([SYN] * (MAX_ARROWS + 5)))
    ladder = load(str(path))
    assert len(ladder.arrows) == MAX_ARROWS and ladder.omitted == 5
    assert any(f"first {MAX_ARROWS} packets" in note for note in ladder.notes)


def test_demo_records_alice_and_bob_and_show_draws_two_columns(tmp_path: Path) -> None:
    result = pystack("demo", "--quiet", "--record", "demo.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    recording = load(tmp_path / "demo.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    hosts = {line.get("host") for line in lines if line["kind"] == "packet"}
    assert hosts == {"alice", "bob"}
    assert [line["host"] for line in lines if line["kind"] == "counters"] == ["alice", "bob"]
    assert recording.columns == ["alice 10.0.0.1", "bob 10.0.0.2"]
    # every echo request alice sent arrives at bob: 4 pings, the last in 5 fragments
    sent = [
        a for a in recording.arrows if a.src == "alice 10.0.0.1" and "echo request, id" in a.label
    ]
    assert len(sent) == 4
