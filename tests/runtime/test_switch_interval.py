"""``pystack run`` sets CPython's thread switch interval for the run only (``fast_thread_switches``)
and restores it on every way out: a script that ends, one that raises, a network that fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack.cli import main
from pystack.runtime import network
from pystack.runtime.network import SWITCH_INTERVAL, fast_thread_switches

ORIGINAL = 0.004  # neither CPython's default nor SWITCH_INTERVAL, to see it restored


@pytest.fixture
def original_interval() -> Iterator[float]:
    saved = sys.getswitchinterval()
    sys.setswitchinterval(ORIGINAL)
    try:
        yield ORIGINAL
    finally:
        sys.setswitchinterval(saved)


def test_the_interval_is_set_inside_and_restored_after(original_interval: float) -> None:
    with fast_thread_switches():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == pytest.approx(original_interval)


def test_the_interval_is_restored_when_the_block_raises(original_interval: float) -> None:
    with pytest.raises(KeyboardInterrupt), fast_thread_switches(0.001):
        assert sys.getswitchinterval() == pytest.approx(0.001)
        raise KeyboardInterrupt
    assert sys.getswitchinterval() == pytest.approx(original_interval)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, *options: str) -> int:
    seen: list[float] = []
    start = network.ScriptNetwork.start

    def recording_start(self: network.ScriptNetwork) -> object:
        seen.append(sys.getswitchinterval())
        return start(self)

    monkeypatch.setattr(network.ScriptNetwork, "start", recording_start)
    monkeypatch.setenv("MICROPYPATH", ".frozen")
    monkeypatch.setenv("HOME", str(tmp_path))
    script = tmp_path / "main.py"
    script.write_text(source)
    status = main(["run", *options, str(script)])
    assert seen == [pytest.approx(SWITCH_INTERVAL)]  # the network starts inside the scope
    return status


def test_pystack_run_restores_the_interval_after_a_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, original_interval: float
) -> None:
    assert _run(tmp_path, monkeypatch, "print('hello')\n") == 0
    assert sys.getswitchinterval() == pytest.approx(original_interval)


def test_pystack_run_restores_the_interval_after_a_failing_script(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    original_interval: float,
) -> None:
    assert _run(tmp_path, monkeypatch, "raise ValueError('no')\n") == 1
    assert "ValueError" in capsys.readouterr().err
    assert sys.getswitchinterval() == pytest.approx(original_interval)


def test_pystack_run_restores_the_interval_when_the_network_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    original_interval: float,
) -> None:
    # (a namespace name the network refuses; without root the refusal is the missing root)
    assert _run(tmp_path, monkeypatch, "print('never')\n", "--link", "tun", "--netns", "a b") == 1
    assert "namespace" in capsys.readouterr().err
    assert sys.getswitchinterval() == pytest.approx(original_interval)
