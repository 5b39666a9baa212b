"""The lessons in docs/lessons/ print what they say they print.

Each lesson names its command in its first ```sh block (the line starting ``.venv/bin/pystack``).
The test runs that command (as ``python -m pystack``, from the repository root) and compares its
stderr and stdout with the committed golden files ``docs/lessons/traces/<lesson>.trace`` and
``<lesson>.out``, byte for byte; then every excerpt the lesson quotes is looked up in that output:

- a ```trace block: its lines appear in the run's output (stderr, or stdout for ``pystack
  demo``) in this order, lines next to each other in the block next to each other in the output;
  a line ``...`` in the block stands for lines left out;
- a ```trace-events block: the same, against only the ``*`` lines (``--trace=events``), as
  ``grep -F ' * '`` would print them.

``PYSTACK_UPDATE_GOLDEN=1 pytest tests/test_lessons.py`` rewrites the golden files from a run
(the excerpts in the lessons are still checked and must be edited by hand).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "docs" / "lessons"
GOLDEN = LESSONS / "traces"
COMMAND_PREFIX = ".venv/bin/pystack"
UPDATE = bool(os.environ.get("PYSTACK_UPDATE_GOLDEN"))
GAP = "..."

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def lesson_files() -> list[Path]:
    return sorted(LESSONS.glob("[0-9][0-9]-*.md"))


def blocks(text: str, kind: str) -> list[str]:
    """The bodies of the fenced blocks whose info string is ``kind``."""
    return [body for info, body in _FENCE.findall(text) if info.strip() == kind]


def lesson_command(text: str) -> list[str]:
    """The lesson's command: the ``.venv/bin/pystack`` line of its first ```sh block."""
    for body in blocks(text, "sh"):
        for line in body.splitlines():
            if line.startswith(COMMAND_PREFIX + " "):
                return shlex.split(line)[1:]
    raise AssertionError("no ```sh block with a .venv/bin/pystack command")


def run_lesson(arguments: list[str]) -> tuple[str, str]:
    """(stdout, stderr) of ``pystack ARGUMENTS`` run from the repository root."""
    environment = dict(os.environ, NO_COLOR="1")
    environment.pop("MICROPYPATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "pystack", *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    return done.stdout, done.stderr


def events_only(output: str) -> str:
    """The ``*`` lines of a trace (``grep -F ' * '``)."""
    return "".join(line for line in output.splitlines(keepends=True) if " * " in line)


def find_excerpt(excerpt: str, output: str) -> str | None:
    """None when ``excerpt`` (with ``...`` gaps) is in ``output``, else what is missing."""
    lines = output.splitlines()
    position = 0
    chunks: list[list[str]] = [[]]
    for line in excerpt.splitlines():
        if line.strip() == GAP:
            chunks.append([])
        else:
            chunks[-1].append(line)
    for chunk in filter(None, chunks):
        size = len(chunk)
        for start in range(position, len(lines) - size + 1):
            if lines[start : start + size] == chunk:
                position = start + size
                break
        else:
            return "\n".join(chunk)
    return None


def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"{path} missing: PYSTACK_UPDATE_GOLDEN=1 pytest {__file__}"
    expected = path.read_text()
    assert actual == expected, f"{path.name} differs from the run (see the diff above)"


@pytest.mark.parametrize("lesson", lesson_files(), ids=lambda path: path.stem)
def test_lesson_prints_its_golden_trace_and_every_excerpt(lesson: Path) -> None:
    text = lesson.read_text()
    stdout, stderr = run_lesson(lesson_command(text))
    check_golden(GOLDEN / f"{lesson.stem}.trace", stderr)
    check_golden(GOLDEN / f"{lesson.stem}.out", stdout)
    excerpts = [(body, False) for body in blocks(text, "trace")]
    excerpts += [(body, True) for body in blocks(text, "trace-events")]
    assert excerpts, "a lesson quotes at least one ```trace block"
    for body, events in excerpts:
        assert body.strip(), f"{lesson.name}: an empty excerpt"
        missing = [
            find_excerpt(body, events_only(out) if events else out) for out in (stderr, stdout)
        ]
        assert None in missing, f"{lesson.name}: not in the run's output:\n{missing[0]}"


def test_there_are_seven_lessons_and_the_index_links_each() -> None:
    index = (LESSONS / "README.md").read_text()
    names = [path.name for path in lesson_files()]
    assert len(names) >= 7
    for name in names:
        assert f"]({name})" in index, f"docs/lessons/README.md does not link {name}"


def test_a_lesson_run_twice_prints_the_same_trace() -> None:
    text = (LESSONS / "03-retransmission.md").read_text()
    arguments = lesson_command(text)
    first = run_lesson(arguments)
    second = run_lesson(arguments)
    assert first == second
    assert "[retransmit: RTO]" in first[1]


def test_traces_name_no_path() -> None:
    for path in GOLDEN.glob("*"):
        text = path.read_text()
        assert str(ROOT) not in text, f"{path.name} names the checkout's path"
        assert "/scripts/" not in text, f"{path.name} names the script's path"


def test_find_excerpt_needs_adjacent_lines_and_order() -> None:
    output = "a\nb\nc\nd\n"
    assert find_excerpt("a\nb", output) is None
    assert find_excerpt("a\n...\nc", output) is None
    assert find_excerpt("a\nc", output) == "a\nc"
    assert find_excerpt("c\n...\na", output) == "a"


@pytest.mark.parametrize("lesson", lesson_files(), ids=lambda path: path.stem)
def test_lesson_picture_commands_record_and_draw_and_the_picture_is_linked(
    lesson: Path, tmp_path: Path
) -> None:
    # The commands under "### The picture" run as written (a recording, then pystack show), and
    # the screenshot tools/lesson_pictures.py took of the page is linked from the lesson.
    text = lesson.read_text()
    section = text[text.index("### The picture") :]
    commands = [
        shlex.split(line)[1:]
        for line in blocks(section, "sh")[0].splitlines()
        if line.startswith(COMMAND_PREFIX + " ")
    ]
    assert [words[0] for words in commands] in (["run", "show"], ["demo", "show"])
    record = tmp_path / "lesson.jsonl"
    run = [str(record) if word == "lesson.jsonl" else word for word in commands[0]]
    run_lesson(run)
    stdout, _ = run_lesson(["show", "--text", str(record)])
    assert "--->" in stdout or "<---" in stdout
    picture = f"pictures/{lesson.stem}.png"
    assert f"]({picture})" in section, f"{lesson.name} does not link {picture}"
    assert (LESSONS / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
