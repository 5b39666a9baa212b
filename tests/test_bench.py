"""``pystack bench``: it runs (quick form), removes every namespace it made, and its JSON holds every
figure with its spread and its ratios to the references of the same run. Speed is never asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pystack import bench, cli, netns
from pystack.bench import netsim
from pystack.bench.kernel import METRICS, ROWS
from tests.helpers.kernel import kernel  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
# The figures each row has: the raw-TUN ceiling only receives and echoes.
EXPECTED = {key: {"in", "out", "rr", "ping"} for key, _label in ROWS}
EXPECTED["raw_tun_1500"] = {"in", "rr"}


def _check_figure(figure: dict[str, object], unit: str, repeat: int) -> None:
    assert set(figure) == {"median", "min", "max", "samples", "unit"}
    assert figure["unit"] == unit
    samples = figure["samples"]
    assert isinstance(samples, list) and len(samples) == repeat
    assert all(isinstance(s, float) and math.isfinite(s) and s > 0 for s in samples)
    assert figure["min"] == min(samples) and figure["max"] == max(samples)
    assert min(samples) <= figure["median"] <= max(samples)  # type: ignore[operator]


def test_quick_bench_runs_cleans_up_and_writes_every_figure(kernel: None, tmp_path: Path) -> None:  # noqa: F811
    output = tmp_path / "bench.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "pystack", "bench", "--quick", "--no-netsim", "--json", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
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
    # The bench's namespaces are pystack-<pid>-<n> and pystack-bench-<pid>, after its process.
    pid = process.pid
    left = [n for n in netns.list_namespaces() if n.endswith(f"-{pid}") or f"-{pid}-" in n]
    assert left == []
    document = json.loads(output.read_text())
    assert set(document) == {"config", "codec", "rows", "ratios"}
    config = document["config"]
    assert config["quick"] is True and config["repeat"] == 5
    assert set(document["codec"]) == {
        "tcp_segment_1460_parse_build_us",
        "ipv4_packet_parse_build_us",
    }
    units = {key: unit for key, _label, unit in METRICS}
    assert set(document["rows"]) == set(EXPECTED)
    for key, label in ROWS:
        row = document["rows"][key]
        assert row["label"] == label
        assert set(row) - {"label"} == EXPECTED[key]
        for metric in EXPECTED[key]:
            _check_figure(row[metric], units[metric], 5)
    for key in EXPECTED:
        ratios = document["ratios"][key]
        assert set(ratios) == EXPECTED[key]
        for metric, found in ratios.items():
            wanted = {"kernel", "raw_tun"} if metric in EXPECTED["raw_tun_1500"] else {"kernel"}
            assert set(found) == wanted
            reference = document["rows"]["kernel_veth_1500"][metric]["median"]
            assert found["kernel"] == pytest.approx(
                document["rows"][key][metric]["median"] / reference
            )


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
    ],
)
def test_bad_sizes_get_one_line_and_exit_2(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *option]) == 2
    assert capsys.readouterr().err == f"pystack bench: {message}\n"


def test_help_names_every_option_and_row(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    text = capsys.readouterr().out
    for option in ("--quick", "--repeat", "--size", "--count", "--json"):
        assert option in text
    for _key, label in ROWS:
        assert label.split(",")[0] in text
    assert bench.MIN_REPEAT == 5


def test_netsim_only_runs_one_cell_without_root_and_writes_its_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netns, "require_root", lambda: "not root")
    output = tmp_path / "netsim.json"
    options = ["--netsim-only", "--netsim-cells", "1024:0.01", "--netsim-bytes", "65536"]
    assert cli.main(["bench", *options, "--json", str(output)]) == 0
    text = capsys.readouterr().out
    assert "netsim window-vs-loss grid, 65536 bytes per cell" in text
    assert "/8341" in text  # smoltcp's figure for 1024 bytes at 1% loss, beside pystack's
    document = json.loads(output.read_text())
    assert set(document) == {"netsim"}
    grid = document["netsim"]
    assert grid["transfer"] == 65536 and grid["comparable"] is False
    assert grid["seeds"] == {"a_to_b": 0, "b_to_a": 1, "rng": "random.Random"}
    assert grid["multiflow"] is None
    (cell,) = grid["cells"]
    assert cell["buffer"] == 1024 and cell["loss"] == 0.01
    assert cell["smoltcp"] == 8340.90
    assert cell["received"] >= 65536
    assert cell["virtual_seconds"] > 0
    assert cell["goodput"] == pytest.approx(cell["received"] / cell["virtual_seconds"])
    assert cell["ratio"] == pytest.approx(cell["goodput"] / cell["smoltcp"])
    assert cell["frames_a_to_b"] > 0 and cell["frames_b_to_a"] > 0


def test_netsim_cell_is_repeatable_and_loss_free_cell_is_window_limited() -> None:
    first = netsim.run_cell(512, 0.02, transfer=20_000)
    again = netsim.run_cell(512, 0.02, transfer=20_000)
    assert (first.received, first.virtual_seconds, first.lost) == (
        again.received,
        again.virtual_seconds,
        again.lost,
    )
    assert first.lost > 0
    clean = netsim.run_cell(1024, 0.0, transfer=20_000)
    assert clean.lost == 0
    # a 1024-byte window over a 100 ms round trip carries at most 10240 bytes/s
    assert clean.goodput <= 1024 / 0.1


def test_bottleneck_queues_at_its_rate_and_drops_at_its_tail() -> None:
    bottleneck = netsim.Bottleneck(bandwidth=25_000_000, capacity=3100)
    assert bottleneck.admit(1514, 0) == 60  # 1514 bytes at 25 MB/s: 60.56 us, truncated
    assert (
        bottleneck.admit(1514, 0) == 120
    )  # 60 us queued = 1500 bytes, + 1514 <= 3100: behind the first
    assert bottleneck.admit(1514, 0) is None  # 120 us queued = 3000 bytes, + 1514 > 3100
    assert (bottleneck.pushes, bottleneck.tail_drops) == (3, 1)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--netsim-cells", "1000:0.01"], "--netsim-cells: '1000:0.01' is not a cell of the grid"),
        (["--netsim-cells", "x"], "--netsim-cells: not BUFFER:LOSS: 'x'"),
        (["--netsim-bytes", "5"], "--netsim-bytes: at least 1000 bytes, not 5"),
    ],
)
def test_bad_netsim_options_get_one_line_and_exit_2(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--netsim-only", *option]) == 2
    assert capsys.readouterr().err == f"pystack bench: {message}\n"
