"""docs/script-format.md and scripts/examples/ stay true: every example runs and passes.

Each ```pkt block of the reference is a whole script; it is loaded as a file would be (so the
header, ``set`` lines and comments count) and run on the pystack target. The example scripts
must pass too, and follow the corpus header convention (purpose line, then ``# rfc:`` or
``# policy:``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pystack.script.files import find_scripts, load_script, parse_script_file
from pystack.script.targets import PystackTarget

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "script-format.md"
BLOCKS = re.findall(r"```pkt\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
EXAMPLES = find_scripts([str(ROOT / "scripts" / "examples")])


def test_the_reference_has_runnable_examples_of_every_line_kind() -> None:
    text = "".join(BLOCKS)
    for construct in ("< S", "> S.", "< udp", "> udp", "< icmp echo", "> icmp echo-reply",
                      "< icmp unreachable", "> icmp unreachable", "udp recvfrom", " = E",
                      "expect state", "expect info", "expect counter", "expect error",
                      "tolerance", "end strict", "set ", "~", "\n*"):  # fmt: skip
        assert construct in text, construct


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_every_example_in_the_reference_passes(number: int) -> None:
    script = parse_script_file(BLOCKS[number], f"docs/script-format.md block {number + 1}")
    PystackTarget().run(script)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: Path(path).name)
def test_every_example_script_passes_and_has_the_header(path: str) -> None:
    script = load_script(path)
    first, second = script.text.splitlines()[:2]
    assert first.startswith("# ") and second.startswith(("# rfc: ", "# policy: "))
    PystackTarget().run(script)
