"""Expected-outcome files: which scripts a target is known to fail, and why.

One file per target (``scripts/expected/pystack.txt``, ``scripts/expected/kernel.txt``). A script
not listed must pass; a listed one is expected to fail (``XFAIL``), and passing it is news
(``XPASS``) just as failing an unlisted one is (``FAIL``). Format, a line per listed script::

    # comments and blank lines are ignored
    tcp/rfc5961/rst-in-window.pkt  xfail  linux   Linux answers with a challenge ACK only ...
    PATH                           xfail  CATEGORY REASON (the rest of the line)

``PATH`` is relative to the corpus root, the directory above the file's own (for
``scripts/expected/kernel.txt``: ``scripts/``), written with ``/``. ``CATEGORY`` says whose
choice the failure is: ``rfc`` (the target breaks a MUST or SHOULD of the cited RFC), ``policy``
(the RFC leaves a choice and the target chose differently from the script), ``linux`` (the
script encodes Linux's behaviour where it differs from pystack's). ``REASON`` must be given.

Without ``--expect`` the file for a script is found by looking for ``expected/<target>.txt`` in
the script's directory and each directory above it (``find_expected``).
Entry points: ``ExpectedOutcomes``, ``load_expected``, ``find_expected``, ``CATEGORIES``,
``ExpectedFileError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

CATEGORIES = ("rfc", "policy", "linux")
DIRECTORY = "expected"  # the directory an expected-outcome file lives in, in the corpus root
MAX_SIZE = 1 << 20


class ExpectedFileError(ValueError):
    """A bad expected-outcome file; ``str()`` is one ``path:line: message`` line."""

    def __init__(self, path: str, message: str, line: int = 0) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class Expectation:
    """One listed script: expected to fail, for ``reason`` (of ``category``)."""

    path: str  # as written, relative to the corpus root
    category: str
    reason: str
    source: str  # "FILE:LINE" of the entry, for messages
    line: int = 0


@dataclass(frozen=True)
class ExpectedOutcomes:
    """One expected-outcome file: its corpus root and its entries by normalized path."""

    path: str
    root: str
    entries: Mapping[str, Expectation] = field(default_factory=dict)

    def lookup(self, script: str) -> Expectation | None:
        """The entry for the script at ``script`` (any path to it), or None."""
        relative = os.path.relpath(os.path.realpath(script), os.path.realpath(self.root))
        if relative.startswith(os.pardir + os.sep):
            return None
        return self.entries.get(relative.replace(os.sep, "/"))

    def missing(self) -> list[Expectation]:
        """Entries that name no existing file (stale entries, typos)."""
        return [
            entry
            for entry in self.entries.values()
            if not os.path.isfile(os.path.join(self.root, entry.path))
        ]


def parse_expected(text: str, path: str, root: str) -> ExpectedOutcomes:
    entries: dict[str, Expectation] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.strip()
        if not body or body.startswith("#"):
            continue
        words = body.split(maxsplit=3)
        if len(words) < 4 or words[1] != "xfail":
            raise ExpectedFileError(
                path, "expected 'PATH xfail CATEGORY REASON' (CATEGORY: rfc, policy, linux)", number
            )
        script, _, category, reason = words
        if category not in CATEGORIES:
            raise ExpectedFileError(
                path, f"unknown category {category!r} (rfc, policy or linux)", number
            )
        normal = os.path.normpath(script).replace(os.sep, "/")
        if os.path.isabs(script) or normal.startswith("../"):
            raise ExpectedFileError(
                path, f"{script}: give the path relative to the corpus root {root}", number
            )
        if normal in entries:
            first = entries[normal].line
            raise ExpectedFileError(
                path, f"{script} is listed twice (first on line {first})", number
            )
        entries[normal] = Expectation(normal, category, reason, f"{path}:{number}", number)
    return ExpectedOutcomes(path, root, entries)


def load_expected(path: str) -> ExpectedOutcomes:
    """Read the file at ``path``; its corpus root is the directory above the file's own."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SIZE + 1)
    except OSError as error:
        raise ExpectedFileError(path, error.strerror or type(error).__name__) from None
    if len(data) > MAX_SIZE:
        raise ExpectedFileError(path, f"larger than {MAX_SIZE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ExpectedFileError(path, f"not UTF-8 text (byte {error.start})") from None
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return parse_expected(text, path, root)


def find_expected(script: str, target: str) -> str | None:
    """The nearest ``expected/<target>.txt`` in the script's directory or one above it."""
    directory = os.path.dirname(os.path.abspath(script))
    while True:
        candidate = os.path.join(directory, DIRECTORY, f"{target}.txt")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
