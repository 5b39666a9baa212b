"""Script files (``files.py``), the ``pystack`` target and expected-outcome files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pystack.script import ScriptFailure
from pystack.script import events as ev
from pystack.script.expected import (
    ExpectedFileError,
    find_expected,
    load_expected,
    parse_expected,
)
from pystack.script.files import (
    ScriptFile,
    ScriptFileError,
    find_scripts,
    load_script,
    parse_script_file,
)
from pystack.script.targets import TARGETS, PystackTarget, TargetUnavailable, make_target

HANDSHAKE = """\
# a passive open
# rfc: RFC 9293 3.5
set sack off
set mss 1000

0 listen 8080
+0 < S 0:0(0) win 65535 <mss 1460,sackOK>
+0 > S. 0:0(0) ack 1 <mss 1000>
"""


def test_settings_are_taken_out_of_the_lines() -> None:
    script = parse_script_file(HANDSHAKE, "h.pkt")
    assert script.path == "h.pkt" and script.text == HANDSHAKE
    assert dict(script.settings) == {"sack": "off", "mss": "1000"}
    assert [line.number for line in script.lines] == [6, 7, 8]
    assert not any(isinstance(line.event, ev.Setting) for line in script.lines)
    with pytest.raises(TypeError):
        script.settings["sack"] = "on"  # type: ignore[index]


def test_the_pystack_target_runs_a_file_with_its_settings() -> None:
    target = make_target("pystack")
    assert target.name == "pystack" and isinstance(target, PystackTarget)
    result = target.run(parse_script_file(HANDSHAKE, "h.pkt"))
    assert "> S. 0:0(0) ack 1 win 65535 <mss 1000>" in result.trace
    without = HANDSHAKE.replace("set sack off\n", "")
    with pytest.raises(ScriptFailure):  # now pystack offers SACK: the line's options differ
        target.run(parse_script_file(without, "h.pkt"))


def test_an_unknown_target_is_unavailable_by_name() -> None:
    with pytest.raises(TargetUnavailable, match=r"target 'nope' is not available in this build"):
        make_target("nope")
    assert "pystack" in TARGETS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 listen 80\n+0 < S 0:0(0) win x\n", "x.pkt:2: win: expected a number, got 'x'"),
        ("0 listen 80\nset sack off\n", "x.pkt:2: 'set sack' must come before the first line"),
        ("set sack off\nset sack on\n0 listen 80\n", "x.pkt:2: 'set sack' given twice"),
        ("# only a comment\n", "x.pkt: no events: a script needs at least one timed line"),
        ("tolerance 0.1\n", "x.pkt: no events"),
    ],
)
def test_errors_are_one_path_line_message_line(text: str, message: str) -> None:
    with pytest.raises(ScriptFileError) as error:
        parse_script_file(text, "x.pkt")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_loading_reports_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ScriptFileError, match=r"missing.pkt: No such file or directory$"):
        load_script(str(tmp_path / "missing.pkt"))
    binary = tmp_path / "binary.pkt"
    binary.write_bytes(b"0 listen 80\n\xff\xfe\n")
    with pytest.raises(ScriptFileError, match=r"binary.pkt:2: not UTF-8 text \(byte 12\)$"):
        load_script(str(binary))
    good = tmp_path / "good.pkt"
    good.write_text(HANDSHAKE)
    assert isinstance(load_script(str(good)), ScriptFile)


def test_directories_are_walked_for_pkt_files_in_sorted_order(tmp_path: Path) -> None:
    for name in ("b/z.pkt", "b/a.pkt", "a.pkt", "c/notes.txt", ".hidden/x.pkt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0 listen 80\n")
    found = find_scripts([str(tmp_path), str(tmp_path / "a.pkt")])
    relative = [str(Path(path).relative_to(tmp_path)) for path in found]
    assert relative == ["a.pkt", "b/a.pkt", "b/z.pkt", "a.pkt"]
    with pytest.raises(ScriptFileError, match="no such file or directory"):
        find_scripts([str(tmp_path / "nothing")])
    with pytest.raises(ScriptFileError, match=r"no \*.pkt scripts in this directory"):
        find_scripts([str(tmp_path / "c")])


# expected-outcome files -----------------------------------------------------------------------
def test_an_expected_file_lists_failures_by_path_under_the_corpus_root(tmp_path: Path) -> None:
    (tmp_path / "expected").mkdir()
    (tmp_path / "tcp").mkdir()
    (tmp_path / "tcp" / "a.pkt").write_text("0 listen 80\n")
    path = tmp_path / "expected" / "pystack.txt"
    path.write_text(
        "# pystack's known failures\n\n"
        "tcp/a.pkt  xfail  policy  pystack keeps the default window\n"
        "tcp/gone.pkt xfail rfc stale\n"
    )
    outcomes = load_expected(str(path))
    assert outcomes.root == str(tmp_path)
    entry = outcomes.lookup(str(tmp_path / "tcp" / "a.pkt"))
    assert entry is not None
    assert (entry.category, entry.reason) == ("policy", "pystack keeps the default window")
    assert entry.source == f"{path}:3"
    assert outcomes.lookup(str(tmp_path / "tcp" / "b.pkt")) is None
    assert outcomes.lookup("/elsewhere/tcp/a.pkt") is None
    assert [entry.path for entry in outcomes.missing()] == ["tcp/gone.pkt"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.pkt xfail policy\n", "e.txt:1: expected 'PATH xfail CATEGORY REASON'"),
        ("a.pkt fail policy why\n", "e.txt:1: expected 'PATH xfail CATEGORY REASON'"),
        ("a.pkt xfail taste why\n", "e.txt:1: unknown category 'taste' (rfc, policy or linux)"),
        ("a.pkt xfail rfc x\n./a.pkt xfail linux y\n", "e.txt:2: ./a.pkt is listed twice"),
        ("../a.pkt xfail rfc x\n", "e.txt:1: ../a.pkt: give the path relative to the corpus"),
    ],
)
def test_bad_expected_files_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ExpectedFileError) as error:
        parse_expected(text, "e.txt", "/corpus")
    assert str(error.value).startswith(message)


def test_the_nearest_expected_file_is_found(tmp_path: Path) -> None:
    script = tmp_path / "tcp" / "handshake" / "a.pkt"
    script.parent.mkdir(parents=True)
    script.write_text("0 listen 80\n")
    assert find_expected(str(script), "pystack") in (None, *_outside(tmp_path))
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "pystack.txt").write_text("")
    assert find_expected(str(script), "pystack") == str(tmp_path / "expected" / "pystack.txt")
    nearer = tmp_path / "tcp" / "expected" / "pystack.txt"
    nearer.parent.mkdir()
    nearer.write_text("")
    assert find_expected(str(script), "pystack") == str(nearer)
    assert find_expected(str(script), "kernel") in (None, *_outside(tmp_path))


def _outside(directory: Path) -> list[str]:
    """Files above the test's directory that the search could legitimately find."""
    return [
        str(parent / "expected" / name)
        for parent in directory.parents
        for name in ("pystack.txt", "kernel.txt")
    ]
