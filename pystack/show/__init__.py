"""``pystack show``: a recording (``--record``) or a pcap/pcapng capture as a ladder diagram.

``recording`` writes and reads recordings (``docs/record-format.md``), ``pcapread`` reads
captures, ``ladder`` turns either into columns, arrows, state labels and series (and the plain
text ladder), ``html`` draws the self-contained page. ``load`` picks the reader by the file's
first bytes; ``ShowError`` carries a one-line message for every file it cannot read.

Entry points: ``load``, ``ShowError``, ``Recorder``, ``render_html``, ``text_ladder``.
"""

from __future__ import annotations

from pathlib import Path

from pystack.show.html import render_html
from pystack.show.ladder import Ladder, from_capture, from_recording, text_ladder
from pystack.show.pcapread import CaptureError, is_capture, read_capture
from pystack.show.recording import Recorder, RecordingError, looks_like_recording, read_recording

__all__ = ["Ladder", "Recorder", "ShowError", "load", "render_html", "text_ladder"]


class ShowError(Exception):
    """A file ``pystack show`` cannot read; the message is one line."""


def load(path: str) -> Ladder:
    """The ladder of a recording or a capture at ``path``."""
    try:
        with open(path, "rb") as file:
            start = file.read(16)
    except OSError as error:
        raise ShowError(f"{path}: {error.strerror or error}") from None
    name = Path(path).name
    try:
        if is_capture(start):
            packets, skipped = read_capture(path)
            return from_capture(packets, skipped, name)
        if looks_like_recording(start):
            return from_recording(read_recording(path), name)
    except (CaptureError, RecordingError) as error:
        raise ShowError(str(error)) from None
    except OSError as error:
        raise ShowError(f"{path}: {error.strerror or error}") from None
    if not start:
        raise ShowError(f"{path}: empty file")
    raise ShowError(f"{path}: neither a pystack recording nor a pcap/pcapng capture")
