"""Draw the picture of every lesson in docs/lessons: run its "The picture" commands (a run with
``--record``, then ``pystack show``), open the page in headless Chromium and save a screenshot as
docs/lessons/pictures/<lesson>.png, linked from the lesson under its commands.

    .venv/bin/python tools/lesson_pictures.py          # every lesson
    .venv/bin/python tools/lesson_pictures.py 03       # the lessons whose file name starts so

Runs are on virtual time with a fixed seed, so a picture changes only when pystack's behaviour
or the drawing does. Needs chromium (``make tools`` installs it as root).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "docs" / "lessons"
PICTURES = LESSONS / "pictures"
BLOCK = re.compile(r"### The picture\n\n(?:.*?\n)??```sh\n(.*?)```\n", re.S)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def picture_commands(text: str) -> list[list[str]]:
    """The commands of a lesson's picture block, ``.venv/bin/pystack`` replaced by this Python."""
    match = BLOCK.search(text)
    if match is None:
        raise SystemExit("no ```sh block under '### The picture'")
    commands = []
    for line in match.group(1).splitlines():
        words = shlex.split(line)
        if words and words[0].endswith("pystack"):
            commands.append([sys.executable, "-m", "pystack", *words[1:]])
    return commands


def draw(lesson: Path, browser: str) -> Path:
    target = PICTURES / f"{lesson.stem}.png"
    with tempfile.TemporaryDirectory(prefix="pystack-picture-") as work:
        directory = Path(work)
        recording = ROOT / "lesson.jsonl"  # the name the lesson shows (and its header records)
        if recording.exists():
            raise SystemExit(f"{recording} exists: move it away first")
        try:
            for words in picture_commands(lesson.read_text()):
                if words[3] == "show":
                    words += ["-o", str(directory / "lesson.html")]
                subprocess.run(words, cwd=ROOT, check=True, capture_output=True, text=True)
        finally:
            recording.unlink(missing_ok=True)
        page = directory / "lesson.html"
        subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={directory / 'profile'}",
                f"--screenshot={target}",
                "--window-size=1400,1600",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return target


def link(lesson: Path) -> None:
    """The image under the picture's commands (once)."""
    text = lesson.read_text()
    image = f"![The ladder diagram pystack show draws for this lesson](pictures/{lesson.stem}.png)"
    if image in text:
        return
    match = BLOCK.search(text)
    assert match is not None
    lesson.write_text(text[: match.end()] + "\n" + image + "\n" + text[match.end() :])


def main(arguments: list[str]) -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(
            "lesson_pictures: chromium is not installed (make tools installs it)", file=sys.stderr
        )
        return 1
    PICTURES.mkdir(exist_ok=True)
    for lesson in sorted(LESSONS.glob("[0-9]*.md")):
        if arguments and not any(lesson.name.startswith(prefix) for prefix in arguments):
            continue
        print(draw(lesson, browser).relative_to(ROOT))
        link(lesson)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
