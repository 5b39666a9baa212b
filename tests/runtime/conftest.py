"""Fixtures for the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.scripts import ScriptRunner


@pytest.fixture
def script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ScriptRunner:
    return ScriptRunner(tmp_path, capsys)
