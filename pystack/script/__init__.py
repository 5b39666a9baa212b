"""Scripted-peer tests: TCP conversations written as packetdrill-like lines and run in virtual time.

``notation.py`` is the grammar (parser; ``formatting.py`` the formatter), ``events.py`` the values
of the lines, ``matching.py`` what their numbers mean on the wire, ``application.py`` the
socket-side calls (TCP and UDP), ``runner.py`` the execution, ``report.py`` traces and failure
reports, ``settings.py`` what ``set`` lines do to pystack. For ``pystack script``: ``files.py``
loads ``.pkt`` files, ``targets.py`` is what scripts run against, ``expected.py`` reads the
expected-outcome files and ``batch.py`` judges outcomes and writes the Markdown report. The
format is documented in docs/script-format.md. Typical use::

    from pystack.script import run_script
    run_script('''
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <...>
    ''')
"""

from __future__ import annotations

from pystack.script.notation import ScriptSyntaxError, format_line, parse_line, parse_script
from pystack.script.report import ScriptFailure, ScriptResult, TraceEntry
from pystack.script.runner import ScriptRunner, run_script

__all__ = [
    "ScriptFailure",
    "ScriptResult",
    "ScriptRunner",
    "ScriptSyntaxError",
    "TraceEntry",
    "format_line",
    "parse_line",
    "parse_script",
    "run_script",
]
