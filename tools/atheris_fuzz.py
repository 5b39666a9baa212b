"""Drive ``pystack.fuzz.one_input`` with atheris (libFuzzer for Python), when it is installed.

    pip install atheris
    python tools/atheris_fuzz.py [CORPUS_DIR] [libFuzzer options, e.g. -max_total_time=600]

atheris feeds byte strings; ``one_input`` decodes each into a case (socket calls and packets
against a pystack host on virtual time, ``pystack.fuzz.generator``) and raises ``FindingError``
when an invariant breaks, which libFuzzer reports as a crash and saves (``crash-<hash>``). Replay
a saved input with ``python tools/atheris_fuzz.py crash-<hash>``: the finding's case lines are
printed, ready to save as a ``.pkt`` for the script runner. atheris guides by line coverage of
the instrumented modules (``pystack``), where ``pystack fuzz --self`` guides by TCP state
transitions; both can run. Exit status 2 with one line when atheris is not installed.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) == 2 and not argv[1].startswith("-"):
        import os

        if os.path.isfile(argv[1]):
            return replay(argv[1])
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed (pip install atheris); nothing to do", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["pystack"]):
        from pystack.fuzz import one_input
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


def replay(path: str) -> int:
    """Run one saved input; print its finding and its case as script lines."""
    from pystack.fuzz import FindingError, one_input

    with open(path, "rb") as file:
        data = file.read()
    try:
        one_input(data)
    except FindingError as error:
        print(f"# fuzz finding ({error.finding.kind}): {error.finding.message}")
        print("\n".join(error.finding.lines))
        return 1
    print("no finding", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
