"""``--record FILE``: the writer, and the reader ``pystack show`` uses.

A recording is JSON lines (``docs/record-format.md``): a header, then one object per event that
the tracer's hooks see (packets with their bytes, drops, impairment actions, state changes, TCP
variables), then a ``counters`` line per stack, and an ``end`` line. ``Recorder.record`` is the
``TraceOptions.record`` callable; it runs under the stack thread's lock like every trace hook.
Before the file would pass ``limit`` bytes the recorder writes one ``truncated`` line and
records nothing more.

Entry points: ``Recorder``, ``read_recording``, ``RecordingError``, ``FORMAT``, ``VERSION``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

FORMAT = "pystack-record"
VERSION = 1
DEFAULT_LIMIT = 200 * 1000 * 1000  # bytes a recording may take before it stops (200 MB)
READ_LIMIT = 2_000_000  # records pystack show reads from one recording (the rest is counted)


class RecordingError(Exception):
    """A file that is not a readable recording, with a one-line message for people."""


def pystack_version() -> str:
    try:
        return metadata.version("pystack-net")
    except metadata.PackageNotFoundError:
        return "unknown"


class Recorder:
    """Writes a recording to ``path`` (``OSError`` if it cannot be created)."""

    def __init__(
        self,
        path: str,
        *,
        command: Sequence[str] = (),
        seed: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.path = path
        self.limit = limit
        self.written = 0
        self.stopped = False
        self._origin: float | None = None
        self._last = 0.0
        self._file: IO[str] | None = open(path, "w", encoding="ascii")  # noqa: SIM115
        self._line(
            {
                "t": 0.0,
                "kind": "header",
                "format": FORMAT,
                "version": VERSION,
                "pystack": pystack_version(),
                "command": list(command),
                "seed": seed,
                "limit": limit,
            }
        )

    def record(self, record: dict[str, Any]) -> None:
        """One event (a ``Tracer`` record): its ``now`` becomes ``t``, seconds since the first
        event recorded."""
        if self.stopped or self._file is None:
            return
        now = record.pop("now", None)
        if isinstance(now, float):
            if self._origin is None:
                self._origin = now
            self._last = now - self._origin
        self._line({"t": round(self._last, 6), **record})

    def counters(self, host: str, address: str, counters: Mapping[str, int]) -> None:
        """The ``counters`` line of one stack (its non-zero counters), written at the end."""
        self.record(
            {
                "kind": "counters",
                "host": host,
                "addr": address,
                "counters": {name: value for name, value in sorted(counters.items()) if value},
            }
        )

    def statistics(
        self, host: str, address: str, snapshot: Mapping[str, Mapping[str, int]]
    ) -> None:
        """The ``counters`` line of a stack from its ``Stack.statistics()``: counters by name,
        drops as ``drop.REASON``, malformed packets as ``malformed.REASON``, ``link.*``."""
        flat: dict[str, int] = dict(snapshot.get("counters", {}))
        for group in ("drops", "malformed", "link"):
            prefix = "drop" if group == "drops" else group
            for name, value in snapshot.get(group, {}).items():
                flat[f"{prefix}.{name}"] = value
        self.counters(host, address, flat)

    def close(self) -> None:
        if self._file is None:
            return
        if not self.stopped:
            self._line({"t": round(self._last, 6), "kind": "end"})
        self._file.close()
        self._file = None

    def _line(self, record: Mapping[str, Any]) -> None:
        assert self._file is not None
        text = json.dumps(record, separators=(",", ":")) + "\n"
        # room is kept for the truncated line, so the file never grows past the limit
        if self.written + len(text) > self.limit - 200 and record.get("kind") != "header":
            self.stopped = True
            text = (
                json.dumps(
                    {
                        "t": round(self._last, 6),
                        "kind": "truncated",
                        "limit": self.limit,
                        "note": f"recording stopped: it reached its limit of {self.limit} bytes",
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )
        self._file.write(text)
        self.written += len(text)


@dataclass
class Recording:
    """A recording as read back: its header and its records, in order."""

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False  # the writer stopped at its limit
    unread: int = 0  # records past READ_LIMIT, not read


def looks_like_recording(start: bytes) -> bool:
    return start.lstrip().startswith(b"{")


def read_recording(path: str | Path, limit: int = READ_LIMIT) -> Recording:
    """Reads and checks a recording (``RecordingError`` with the line number if it is not one;
    a last line cut off mid-way, as a killed run leaves it, is ignored)."""
    try:
        with open(path, encoding="utf-8") as file:
            return _read_lines(file, str(path), limit)
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a pystack recording (not text)") from None


def _read_lines(lines: Iterable[str], name: str, limit: int) -> Recording:
    recording: Recording | None = None
    pending: tuple[int, str] | None = None  # a line that did not parse: fatal unless the last
    for number, line in enumerate(lines, 1):
        if pending is not None:
            raise RecordingError(f"{name}: line {pending[0]}: {pending[1]}")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pending = (number, "not a JSON object")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise RecordingError(f"{name}: line {number}: not a record (no kind)")
        if recording is None:
            if record.get("kind") != "header" or record.get("format") != FORMAT:
                raise RecordingError(f"{name}: not a pystack recording (no header line)")
            if record.get("version") != VERSION:
                raise RecordingError(
                    f"{name}: recording format version {record.get('version')!r}, "
                    f"this pystack reads {VERSION}"
                )
            recording = Recording(record)
            continue
        if not isinstance(record.get("t"), (int, float)):
            raise RecordingError(f"{name}: line {number}: a record without its time t")
        if record["kind"] == "truncated":
            recording.truncated = True
        if len(recording.records) >= limit:
            recording.unread += 1
            continue
        recording.records.append(record)
    if recording is None:
        if pending is not None:
            raise RecordingError(f"{name}: not a pystack recording (no header line)")
        raise RecordingError(f"{name}: empty file")
    return recording
