"""Scripted-peer tests of TCP connection management and hardening (RFC 9293, 5961, 6528, 1337).

Each test is one behaviour, written as a trace in the notation of ``pystack/script/notation.py``:
pystack is 10.0.0.2 (port 8080 when it listens), the scripted peer 10.0.0.1:9000. The shared
opening below leaves a connection ESTABLISHED at 0.01 s with no options negotiated (peer MSS
1460, no window scale, SACK or timestamps), so the lines after it stay short.
"""

from __future__ import annotations

import textwrap
from typing import Any

from pystack.script import ScriptResult, ScriptRunner
from pystack.tcp.connection import TCPConnection
from pystack.tcp.layer import TCPLayer

PASSIVE_OPEN = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460>
    +0 > S. 0:0(0) ack 1 <mss 1460>
    +0.01 < . 1:1(0) ack 1 win 65535
    +0 accept
    +0 expect state ESTABLISHED
"""


def connection_of(result: ScriptResult) -> TCPConnection:
    """The script's current connection, as pystack's own type (for its attributes)."""
    connection = result.connection
    assert isinstance(connection, TCPConnection)
    return connection


def transitions(connection: TCPConnection) -> list[tuple[float, str, str, str]]:
    """The connection's recorded state changes as (time, old, new, cause)."""
    return [(round(t.time, 6), t.old.value, t.new.value, t.cause) for t in connection.transitions]


def run_recording(
    text: str, isn: int | None = None, **options: Any
) -> tuple[ScriptResult, list[TCPConnection]]:
    """Run a script (like ``tests.helpers.scripts.run``) and also return every connection
    pystack created, in order, even those the application never accepted.

    ``isn`` fixes pystack's ISN for every connection: a script numbers pystack's sequence space
    from its latest SYN, so connections handled side by side must share one ISN.
    """
    runner = ScriptRunner(textwrap.dedent(text), **options)
    layer = runner.stack.tcp
    assert isinstance(layer, TCPLayer)
    if isn is not None:
        layer.sequence.isn = lambda *arguments: isn  # type: ignore[method-assign]
    created: list[TCPConnection] = []
    original = layer.new_connection

    def recording(*arguments: Any, **keywords: Any) -> TCPConnection | None:
        connection = original(*arguments, **keywords)
        if connection is not None:
            created.append(connection)
        return connection

    layer.new_connection = recording  # type: ignore[method-assign]
    return runner.run(), created
