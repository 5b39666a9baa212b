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
        [sys.executable, "-m", "pystack", "bench", "--quick", "--json", str(output)],
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
    assert captured.err == "pystack bench: needs root for its network namespaces (not root)\n"
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
