"""usocket at the stack's connection limit: a script that closes every socket it has can open
as many again at once (lwIP recycles TIME-WAIT pcbs the same way), and only a table full of
connections the script still holds makes ``connect`` fail with ENOMEM (lwIP's ERR_MEM).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest

from pystack.tcp.settings import TCPSettings
from tests.usocket.conftest import SIM_PEER, WAIT, Simulation

LIMIT = 16


@pytest.fixture
def small() -> Iterator[Simulation]:
    simulation = Simulation(seed=1, host_tcp=TCPSettings(max_connections=LIMIT))
    try:
        yield simulation
    finally:
        simulation.close()


def _open_echoing(sim: Simulation, count: int) -> list[Any]:
    sockets = []
    for index in range(count):
        s = sim.new_socket(sim.socket.SOCK_STREAM)
        s.settimeout(WAIT)
        s.connect((SIM_PEER, 7))
        s.send(bytes([index]))
        assert s.recv(1) == bytes([index])
        sockets.append(s)
    return sockets


def test_closing_every_socket_lets_a_script_open_as_many_again_at_once(small: Simulation) -> None:
    counters = small.host.counters
    for _ in range(3):
        for s in _open_echoing(small, LIMIT):
            s.close()
    # Each round after the first found the table full of the last round's closing or
    # TIME-WAIT entries and recycled them: never ENOMEM.
    recycled = counters.counters.get("tcp.time_wait_recycled", 0) + counters.counters.get(
        "tcp.closing_recycled", 0
    )
    assert recycled == 2 * LIMIT
    assert len(small.host.tcp.connections) == LIMIT


def test_a_table_full_of_open_sockets_fails_connect_with_enomem(small: Simulation) -> None:
    held = _open_echoing(small, LIMIT)
    extra = small.new_socket(small.socket.SOCK_STREAM)
    extra.settimeout(WAIT)
    with pytest.raises(OSError) as caught:
        extra.connect((SIM_PEER, 7))
    assert caught.value.errno == errno.ENOMEM
    held[0].close()  # its entry becomes recyclable at once: a new socket connects
    again = small.new_socket(small.socket.SOCK_STREAM)
    again.settimeout(WAIT)
    again.connect((SIM_PEER, 7))
    again.send(b"x")
    assert again.recv(1) == b"x"
