"""``pystack.tcp.invariants``: silent on sound connections, and each check fires on its fault."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pystack.script import run_script
from pystack.tcp.connection import TCPConnection
from pystack.tcp.invariants import connection_problems, layer_problems
from pystack.tcp.state import TCPState

ESTABLISHED_WITH_DATA = """
ignore outbound
0 listen 8080
+0 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,wscale 7>
+0.1 < . 1:1(0) ack 1 win 512
+0 accept
+0 write 3000
+0 < . 1:101(100) ack 1461 win 512
"""


def established() -> tuple[TCPConnection, object]:
    result = run_script(ESTABLISHED_WITH_DATA)
    connection = result.connection
    assert isinstance(connection, TCPConnection)
    return connection, result.stack


def test_a_sound_connection_and_layer_have_no_problems() -> None:
    connection, stack = established()
    assert connection_problems(connection) == []
    assert layer_problems(stack.tcp) == []  # type: ignore[attr-defined]


MASK = 0xFFFFFFFF


def _nxt_beyond_max(c: TCPConnection) -> None:
    c.snd_nxt = (c.snd_max + 5) & MASK


def _una_beyond_nxt(c: TCPConnection) -> None:
    c.snd_una = (c.snd_nxt + 1) & MASK


def _in_flight_beyond_buffer(c: TCPConnection) -> None:
    c.snd_max = (c.snd_una + len(c.send_buffer) + 10) & MASK
    c.snd_nxt = c.snd_max


def _receive_past_window(c: TCPConnection) -> None:
    assert c.rcv_adv is not None
    c.rcv_nxt = (c.rcv_adv + c.receive_buffer.capacity + 1) & MASK


def _wscale(c: TCPConnection) -> None:
    c.snd_wscale = 15


def _snd_wnd(c: TCPConnection) -> None:
    c.snd_wnd = (0xFFFF << c.snd_wscale) + 1


def _receive_buffer(c: TCPConnection) -> None:
    c.receive_buffer.capacity = 10  # holds 100 bytes, now over its bound


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (_nxt_beyond_max, "SND.NXT .* is beyond SND.MAX"),
        (_una_beyond_nxt, "SND.UNA .* is beyond SND.NXT"),
        (_in_flight_beyond_buffer, "in flight, but the send buffer holds only"),
        (_receive_past_window, "data outside the window was taken"),
        (_wscale, "send window shift 15 outside 0..14"),
        (_snd_wnd, "SND.WND .* is more than a scaled window field can say"),
        (_receive_buffer, "receive buffer holds 100 bytes, more than its bound 10"),
    ],
)
def test_each_fault_is_named(fault: Callable[[TCPConnection], None], message: str) -> None:
    connection, stack = established()
    fault(connection)
    problems = connection_problems(connection)
    assert any(re.search(message, problem) for problem in problems), problems
    assert layer_problems(stack.tcp)  # type: ignore[attr-defined]


def test_table_faults_are_named() -> None:
    connection, stack = established()
    layer = stack.tcp  # type: ignore[attr-defined]
    listener = next(iter(layer.listeners.values()))
    listener.accept_queue.extend([connection] * (listener.backlog + 1))
    assert any("more than its backlog" in p for p in layer_problems(layer))
    listener.accept_queue.clear()
    connection.state = TCPState.CLOSED  # a closed connection left in the table
    assert any("CLOSED connection is still in the table" in p for p in layer_problems(layer))
