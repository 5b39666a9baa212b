"""``pystack bench``: it runs (quick form), removes every namespace it made, and its JSON holds every
figure with its spread and its ratios to the references of the same run. Speed is never asserted."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pystack import bench, cli, netns
from pystack.bench import netsim, raw_tcp
from pystack.bench.kernel import (
    LOSS_REFERENCE,
    MEMORY_METRICS,
    METRICS,
    RAW_METRICS,
    RAW_REFERENCE,
    ROW_METRICS,
    ROWS,
)
from pystack.wire.checksum import fold, verify
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import ACK, SYN, TCPSegment, mss_option, wscale_option
from tests.helpers.kernel import kernel  # noqa: F401  (fixture)

KERNEL = "kernel_veth_1500"

ROOT = Path(__file__).resolve().parents[1]
# Tiny sizes: the test checks that every figure is measured and written, not how fast.
TINY = ["--size", "200000", "--count", "50", "--connects", "20", "--datagrams", "300"]
TINY += ["--connections", "50"]


def _check_figure(figure: dict[str, object], unit: str, repeat: int) -> None:
    assert set(figure) == {"median", "min", "max", "samples", "unit"}
    assert figure["unit"] == unit
    samples = figure["samples"]
    assert isinstance(samples, list) and len(samples) == repeat
    assert all(isinstance(s, float) and math.isfinite(s) for s in samples)
    assert figure["min"] == min(samples) and figure["max"] == max(samples)
    assert min(samples) <= figure["median"] <= max(samples)  # type: ignore[operator]


def _bench(arguments: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pystack", "bench", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _left_behind(pid: int) -> list[str]:
    """Namespaces named after ``pid``: pystack-<pid>-<n>, pystack-bench-<pid>[-idle]."""
    return [n for n in netns.list_namespaces() if n.endswith(f"-{pid}") or f"-{pid}-" in n]


def test_quick_bench_runs_cleans_up_and_writes_every_figure(kernel: None, tmp_path: Path) -> None:  # noqa: F811
    output = tmp_path / "bench.json"
    process = _bench(["--quick", "--no-netsim", *TINY, "--json", str(output)])
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    for _key, label in ROWS:
        assert label in stdout
    assert "50 idle established connections" in stdout
    assert _left_behind(process.pid) == []
    document = json.loads(output.read_text())
    assert set(document) == {"config", "codec", "rows", "ratios", "connections"}
    config = document["config"]
    assert config["quick"] is True and config["repeat"] == 5
    assert (config["bulk"], config["count"], config["connects"]) == (200000, 50, 20)
    assert (config["datagrams"], config["connections"]) == (300, 50)
    assert set(document["codec"]) == {
        "tcp_segment_1460_parse_build_us",
        "ipv4_packet_parse_build_us",
    }
    units = {key: unit for key, _label, unit in METRICS}
    assert set(document["rows"]) == {key for key, _label in ROWS}
    for key, label in ROWS:
        row = document["rows"][key]
        assert row["label"] == label
        assert set(row) - {"label"} == ROW_METRICS[key]
        for metric in ROW_METRICS[key]:
            _check_figure(row[metric], units[metric], 5)
            if metric != "ping":  # a flood ping may round to 0 us on a fast kernel
                assert min(row[metric]["samples"]) > 0
        # a round trip's 99th percentile is never below its median
        if "rr_p50" in row:
            for p50, p99 in zip(row["rr_p50"]["samples"], row["rr_p99"]["samples"], strict=True):
                assert p99 >= p50
    # the kernel row has every figure: every ratio to it exists
    assert ROW_METRICS[KERNEL] == {key for key, _label, _unit in METRICS}
    for key, _label in ROWS:
        ratios = document["ratios"][key]
        assert set(ratios) == ROW_METRICS[key]
        for metric, found in ratios.items():
            raw = key in RAW_REFERENCE and metric in RAW_METRICS  # the raw rows' figures
            lossy = key in LOSS_REFERENCE  # the lossy row: also over its loss-free row
            wanted = (
                {"kernel"} | ({"raw_tun"} if raw else set()) | ({"loss_free"} if lossy else set())
            )
            assert set(found) == wanted
            if lossy:
                loss_free = document["rows"][LOSS_REFERENCE[key]][metric]["median"]
                assert found["loss_free"] == pytest.approx(
                    document["rows"][key][metric]["median"] / loss_free
                )
            reference = document["rows"][KERNEL][metric]["median"]
            assert found["kernel"] == pytest.approx(
                document["rows"][key][metric]["median"] / reference
            )
            if raw:
                ceiling = document["rows"][RAW_REFERENCE[key]][metric]["median"]
                assert found["raw_tun"] == pytest.approx(
                    document["rows"][key][metric]["median"] / ceiling
                )
    memory = document["connections"]
    assert memory["count"] == 50
    memory_units = {key: unit for key, _label, unit in MEMORY_METRICS}
    assert set(memory) - {"count"} == set(memory_units)
    for metric, unit in memory_units.items():
        _check_figure(memory[metric], unit, 5)
    # every connection holds at least its TCB: well above 500 bytes under tracemalloc
    assert min(memory["traced_per_connection"]["samples"]) > 500
    per_connection = memory["traced_per_connection"]["median"]
    assert memory["traced_total"]["median"] == pytest.approx(per_connection * 50 / 1e6, rel=0.05)


def test_an_interrupted_bench_leaves_no_namespace(kernel: None) -> None:  # noqa: F811
    process = _bench(["--quick", "--no-netsim", *TINY])
    try:
        assert process.stdout is not None
        # interrupt it in the middle of its first row, with pystack's host up
        assert process.stdout.readline().startswith("measuring: ")
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "pystack bench: interrupted (namespaces removed)"
    assert "Traceback" not in stderr
    assert _left_behind(process.pid) == []


def test_without_root_it_says_why_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netns, "require_root", lambda: "not root")
    assert cli.main(["bench", "--quick"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "pystack bench: not root; run as root, or with --netsim-only (no root needed)\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--repeat", "3"], "--repeat: at least 5 samples, not 3"),
        (["--size", "10"], "--size: at least 1000 bytes, not 10"),
        (["--count", "0"], "--count: at least 1, not 0"),
        (["--connects", "0"], "--connects: at least 1, not 0"),
        (["--datagrams", "1"], "--datagrams: at least 2, not 1"),
        (["--connections", "0"], "--connections: at least 1, not 0"),
    ],
)
def test_bad_sizes_get_one_line_and_exit_2(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *option]) == 2
    assert capsys.readouterr().err == f"pystack bench: {message}\n"


def test_help_names_every_option_row_and_figure(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse re-wraps the text
    options = ["--quick", "--repeat", "--size", "--count", "--connects", "--datagrams"]
    options += ["--connections", "--json", "--netsim-only", "--no-netsim", "--netsim-bytes"]
    options += ["--netsim-cells", "--netsim-seeds", "--multiflow", "--multiflow-bytes"]
    for option in options:
        assert option in text
    for _key, label in ROWS:
        assert label.split(",")[0] in text
    for _key, label, _unit in (*METRICS, *MEMORY_METRICS):
        assert label.split(" per ")[0].split(" for ")[0] in text
    assert "65520" in text and "multiflow" in text and "Jain fairness" in text
    assert bench.MIN_REPEAT == 5


def test_run_takes_mtu_and_no_offload_for_tun_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--mtu", "9000", "x.py"]) == 2
    assert "--mtu: only with --link tun or tap" in capsys.readouterr().err
    assert cli.main(["run", "--link", "tun", "--netns", "n", "--mtu", "70000", "x.py"]) == 2
    assert "--mtu: must be 68..65535, not 70000" in capsys.readouterr().err


def test_netsim_only_runs_one_cell_without_root_and_writes_its_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netns, "require_root", lambda: "not root")
    output = tmp_path / "netsim.json"
    options = ["--netsim-only", "--netsim-cells", "1024:0.01", "--netsim-bytes", "65536"]
    options += ["--netsim-seeds", "2", "--multiflow", "1,2", "--multiflow-bytes", "65536"]
    assert cli.main(["bench", *options, "--json", str(output)]) == 0
    text = capsys.readouterr().out
    assert "netsim window-vs-loss grid, 65536 bytes per cell" in text
    assert "median [min-max] over 2 seed pairs" in text
    assert "/8341" in text  # smoltcp's figure for 1024 bytes at 1% loss, beside pystack's
    assert "netsim multiflow" in text and "/3450" in text and "/6967" in text
    document = json.loads(output.read_text())
    assert set(document) == {"netsim"}
    assert set(document["netsim"]) == {"grid", "multiflow"}
    grid = document["netsim"]["grid"]
    assert grid["transfer"] == 65536 and grid["comparable"] is False
    assert grid["seeds"] == {"pairs": [[0, 1], [2, 3]], "rng": "random.Random"}
    first, second = grid["cells"]
    assert (first["seeds"], second["seeds"]) == ([0, 1], [2, 3])
    for cell in (first, second):
        assert cell["buffer"] == 1024 and cell["loss"] == 0.01
        assert cell["smoltcp"] == 8340.90
        assert cell["received"] >= 65536
        assert cell["virtual_seconds"] > 0
        assert cell["goodput"] == pytest.approx(cell["received"] / cell["virtual_seconds"])
        assert cell["ratio"] == pytest.approx(cell["goodput"] / cell["smoltcp"])
        assert cell["frames_a_to_b"] > 0 and cell["frames_b_to_a"] > 0
    multiflow = document["netsim"]["multiflow"]
    assert multiflow["transfer"] == 65536 and multiflow["comparable"] is False
    one, two = multiflow["runs"]
    assert (one["flows"], two["flows"]) == (1, 2)
    assert two["smoltcp"] == {
        "agg_thru": 6966.98,
        "min_thru": 3448.67,
        "max_thru": 3518.30,
        "fairness": 0.9999,
        "drops": 0.4427,
    }
    for run in (one, two):
        assert len(run["received"]) == run["flows"]
        assert min(run["received"]) >= 65536
        duration = run["virtual_seconds"]
        assert run["agg_thru"] == pytest.approx(sum(run["received"]) / duration)
        assert run["min_thru"] == pytest.approx(min(run["received"]) / duration)
        assert run["max_thru"] == pytest.approx(max(run["received"]) / duration)
        assert 0 < run["fairness"] <= 1 and 0 <= run["drops"] < 1
        assert run["of_ceiling"] == pytest.approx(run["agg_thru"] / run["ceiling"])


def test_netsim_cell_is_repeatable_and_loss_free_cell_is_window_limited() -> None:
    first = netsim.run_cell(512, 0.02, transfer=20_000)
    again = netsim.run_cell(512, 0.02, transfer=20_000)
    assert (first.received, first.virtual_seconds, first.lost) == (
        again.received,
        again.virtual_seconds,
        again.lost,
    )
    assert first.lost > 0 and first.seeds == (0, 1)
    other = netsim.run_cell(512, 0.02, transfer=20_000, seed=1)
    assert other.seeds == (2, 3)  # another seed pair: other frames are lost
    clean = netsim.run_cell(1024, 0.0, transfer=20_000)
    assert clean.lost == 0
    # a 1024-byte window over a 100 ms round trip carries at most 10240 bytes/s
    assert clean.goodput <= 1024 / 0.1


def test_bottleneck_queues_at_its_rate_and_drops_at_its_tail() -> None:
    bottleneck = netsim.Bottleneck(bandwidth=25_000_000, capacity=3100)
    assert bottleneck.admit(1514, 0) == 60  # 1514 bytes at 25 MB/s: 60.56 us, truncated
    # 60 us queued = 1500 bytes, + 1514 <= 3100: it leaves behind the first
    assert bottleneck.admit(1514, 0) == 120
    assert bottleneck.admit(1514, 0) is None  # 120 us queued = 3000 bytes, + 1514 > 3100
    assert (bottleneck.pushes, bottleneck.tail_drops) == (3, 1)


def test_multiflow_ceiling_and_rtts_follow_netsim_md() -> None:
    # NETSIM.md section 3: min(25 MB/s, sum of 256 KiB / RTT_i) is 3.22, 6.34, 12.2 MB/s
    assert netsim.multiflow_ceiling(1) == pytest.approx(3.22e6, rel=0.005)
    assert netsim.multiflow_ceiling(2) == pytest.approx(6.34e6, rel=0.005)
    assert netsim.multiflow_ceiling(4) == pytest.approx(12.2e6, rel=0.005)
    assert netsim.multiflow_ceiling(16) == 25_000_000
    assert len(netsim.MULTIFLOW_RTT_MS) == 64
    assert netsim.MULTIFLOW_RTT_MS[0] == (52, 111) and netsim.MULTIFLOW_RTT_MS[63] == (144, 127)
    assert netsim.jain([5, 5, 5]) == 1.0
    assert netsim.jain([1, 0]) == 0.5


def test_multiflow_shares_one_bottleneck_per_direction() -> None:
    result = netsim.run_multiflow(2, transfer=30_000)
    assert min(result.received) >= 30_000
    # every frame of both flows crossed the two shared bottlenecks: a frame sent by either
    # flow's A or B is one push, so the pushes equal the frames the four stacks sent
    assert result.flows == 2 and result.virtual_seconds > 0
    assert result.ceiling == netsim.multiflow_ceiling(2)
    assert result.smoltcp == netsim.SMOLTCP_MULTIFLOW[2]
    with pytest.raises(ValueError, match=r"flows must be 1\.\.64"):
        netsim.run_multiflow(65)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--netsim-cells", "1000:0.01"], "--netsim-cells: '1000:0.01' is not a cell of the grid"),
        (["--netsim-cells", "x"], "--netsim-cells: not BUFFER:LOSS: 'x'"),
        (["--netsim-bytes", "5"], "--netsim-bytes: at least 1000 bytes, not 5"),
        (["--netsim-seeds", "0"], "--netsim-seeds: 1..100, not 0"),
        (["--multiflow", "3"], "--multiflow: '3' is not one of 1,2,4,16,32,64"),
        (["--multiflow-bytes", "5"], "--multiflow-bytes: at least 1000 bytes, not 5"),
    ],
)
def test_bad_netsim_options_get_one_line_and_exit_2(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--netsim-only", *option]) == 2
    assert capsys.readouterr().err == f"pystack bench: {message}\n"


# The raw-TUN endpoint, driven through a pipe instead of a TUN device.
CLIENT_IP, SERVER_IP = 0x0A000001, 0x0A000002


def _syn(dport: int, options: tuple[object, ...]) -> bytes:
    segment = TCPSegment(40000, dport, 5000, 0, SYN, 64240, b"", options)  # type: ignore[arg-type]
    tcp = segment.build(CLIENT_IP, SERVER_IP)
    return IPv4Packet(CLIENT_IP, SERVER_IP, 6, tcp).build()


@pytest.mark.parametrize("offered", [True, False])
def test_raw_endpoint_answers_a_syn_with_mss_and_window_scale_only_when_offered(
    offered: bool,
) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # keeps frame bounds
    try:
        endpoint = raw_tcp.RawEndpoint(ours.fileno(), 1500, offload=False, size=0)
        options = (mss_option(1460), wscale_option(7)) if offered else (mss_option(1460),)
        packet = _syn(raw_tcp.DISCARD, options)
        endpoint.accept(packet, memoryview(packet)[20:])
        reply = IPv4Packet.parse(theirs.recv(4096))
        # full checksums: the IPv4 header's and the TCP segment's (with the pseudo-header)
        segment = TCPSegment.parse(reply.payload, reply.src, reply.dst)
    finally:
        ours.close()
        theirs.close()
    assert (reply.src, reply.dst) == (SERVER_IP, CLIENT_IP)
    assert segment.flags == SYN | ACK and segment.ack == 5001
    assert segment.mss == 1460
    assert segment.wscale == (raw_tcp.WINDOW_SHIFT if offered else None)
    assert not segment.sack_permitted and segment.timestamp is None


def test_raw_endpoint_sends_chargen_as_tso_super_frames_with_offloads() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    theirs.setblocking(False)
    try:
        endpoint = raw_tcp.RawEndpoint(ours.fileno(), 1500, offload=True, size=100_000)
        packet = _syn(raw_tcp.CHARGEN, (mss_option(1460), wscale_option(7)))
        endpoint.accept(packet, memoryview(packet)[20:])
        synack = theirs.recv(4096)
        assert synack[:10] == bytes(10)  # a plain virtio-net header: nothing to offload
        endpoint.acknowledged(1001, 65535)  # the peer's window: 65535 << 7
        endpoint.pump()
        frames = []
        while True:
            try:
                frames.append(theirs.recv(70000))
            except BlockingIOError:
                break
    finally:
        ours.close()
        theirs.close()
    flags, gso_type, header_length, gso_size, start, offset = raw_tcp._vnet.unpack_from(frames[0])
    assert (flags, gso_type) == (raw_tcp.NEEDS_CSUM, raw_tcp.GSO_TCPV4)
    assert (header_length, gso_size, start, offset) == (40, 1460, 20, 16)
    ip = IPv4Packet.parse(frames[0][10:])
    assert len(ip.payload) - 20 == 1460 * (raw_tcp.SUPER_FRAME // 1460)  # whole segments
    # CHECKSUM_PARTIAL: the TCP checksum field holds the pseudo-header sum, not the checksum
    length = len(ip.payload)
    pseudo = (SERVER_IP >> 16) + (SERVER_IP & 0xFFFF) + (CLIENT_IP >> 16) + (CLIENT_IP & 0xFFFF)
    assert int.from_bytes(ip.payload[16:18], "big") == fold(pseudo + 6 + length)
    assert not verify(ip.payload, pseudo + 6 + length)
    sent = sum(len(IPv4Packet.parse(f[10:]).payload) - 20 for f in frames)
    assert sent == 100_000  # the whole transfer at once: the window allows it
