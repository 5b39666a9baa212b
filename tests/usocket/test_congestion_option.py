"""pystack's TCP_CONGESTION extension of usocket (docs/usocket.md): Linux's option number 13 with
a bytes value at level IPPROTO_TCP chooses a TCP socket's congestion control; every other use of
option 13 keeps modlwip's "not implemented" warning, so lwIP scripts see no change."""

from __future__ import annotations

from typing import Any

import pytest

from pystack.tcp.congestion import Cubic, NewReno
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from tests.usocket.conftest import SIM_PEER, WAIT, Simulation

TCP_CONGESTION = 13  # Linux's number; not exported by the socket module (lwIP has no such name)


def stream(sim: Simulation) -> Any:
    return sim.new_socket(sim.socket.SOCK_STREAM)


def host_connections(sim: Simulation) -> list[TCPConnection]:
    return sim.thread.call(
        lambda: [c for c in sim.host.tcp.connections.values() if c.state is not TCPState.CLOSED]
    )


def test_usocket_tcp_congestion_before_connect(sim: Simulation, capsys: Any) -> None:
    module = sim.socket
    assert not hasattr(module, "TCP_CONGESTION")  # the module looks as on a board
    s = stream(sim)
    s.settimeout(WAIT)
    assert s.setsockopt(module.IPPROTO_TCP, TCP_CONGESTION, b"cubic") is None
    s.connect((SIM_PEER, 7))
    s.send(b"ping")
    assert s.recv(10) == b"ping"
    (connection,) = host_connections(sim)
    assert isinstance(connection.congestion, Cubic)
    s.setsockopt(module.IPPROTO_TCP, TCP_CONGESTION, bytearray(b"newreno\0"))  # C-style NUL
    assert type(connection.congestion) is NewReno
    assert capsys.readouterr().out == ""  # no "not implemented" warning for these
    s.close()


def test_usocket_tcp_congestion_unknown_name_is_enoent(sim: Simulation) -> None:
    s = stream(sim)
    with pytest.raises(OSError) as raised:
        s.setsockopt(sim.socket.IPPROTO_TCP, TCP_CONGESTION, b"vegas")
    assert raised.value.args == (2,)  # ENOENT, as Linux
    with pytest.raises(OSError):
        s.setsockopt(sim.socket.IPPROTO_TCP, TCP_CONGESTION, b"\xff")
    s.close()


@pytest.mark.parametrize(
    ("level", "value", "kind"),
    [
        (6, 1, "stream"),  # an int value: not pystack's extension
        (1, b"cubic", "stream"),  # SOL_SOCKET: not IPPROTO_TCP
        (6, b"cubic", "datagram"),  # not a TCP socket
    ],
)
def test_usocket_option_13_otherwise_keeps_modlwips_warning(
    sim: Simulation, capsys: Any, level: int, value: object, kind: str
) -> None:
    module = sim.socket
    s = sim.new_socket(module.SOCK_DGRAM if kind == "datagram" else module.SOCK_STREAM)
    assert s.setsockopt(level, TCP_CONGESTION, value) is None
    assert capsys.readouterr().out == "Warning: lwip.setsockopt() not implemented\n"
    s.close()


def test_usocket_listening_socket_passes_its_choice_to_accepted_connections(
    sim: Simulation,
) -> None:
    module = sim.socket
    server = stream(sim)
    server.setsockopt(module.IPPROTO_TCP, TCP_CONGESTION, b"cubic")
    server.bind(("127.0.0.1", 5000))
    server.listen(1)
    client = stream(sim)
    client.settimeout(WAIT)
    client.connect(("127.0.0.1", 5000))
    server.settimeout(WAIT)
    accepted, _ = server.accept()
    kinds = {c.local_port: type(c.congestion) for c in host_connections(sim)}
    assert kinds[5000] is Cubic  # the accepted side
    assert NewReno in kinds.values()  # the client side kept the stack's default
    for s in (accepted, client, server):
        s.close()
