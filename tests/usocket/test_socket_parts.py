"""The socket facade and its parts (usocket/socket.py over usocket/datagram_part.py and
usocket/stream_part.py): one part per kind, one call on it per socket call, the same methods on
every socket, and the stream registry as a stack application."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from tests.usocket.conftest import Simulation
from usocket.datagram_part import DatagramPart
from usocket.stream_part import StreamPart


def test_each_kind_has_its_part_and_the_same_methods(sim: Simulation) -> None:
    datagram = sim.new_socket()
    stream = sim.new_socket(sim.socket.SOCK_STREAM)
    assert type(datagram._part) is DatagramPart
    assert type(stream._part) is StreamPart
    assert type(datagram) is type(stream) is sim.socket.socket
    assert not hasattr(datagram, "_tcp") and not hasattr(datagram, "_endpoint")


class Recorder:
    """Stands in for a part's method: records its arguments, returns ``result``."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.result = result

    def __call__(self, *arguments: Any) -> Any:
        self.calls.append(arguments)
        return self.result


def test_send_and_recv_are_one_call_on_the_part_with_checked_arguments(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sim.new_socket()
    part = s._part
    send, recv, recvfrom = Recorder(3), Recorder(b"ok"), Recorder((b"ok", (0x0A000001, 7)))
    monkeypatch.setattr(DatagramPart, "send", lambda self, payload: send(payload))
    monkeypatch.setattr(DatagramPart, "recv", lambda self, size, flags: recv(size, flags))
    monkeypatch.setattr(DatagramPart, "recvfrom", lambda self, size, flags: recvfrom(size, flags))
    assert s.send(bytearray(b"abc")) == 3
    assert send.calls == [(b"abc",)]  # the buffer is taken as bytes by the facade
    assert s.recv(10, 2) == b"ok" and recv.calls == [(10, 2)]
    assert s.recvfrom(5) == (b"ok", ("10.0.0.1", 7)) and recvfrom.calls == [(5, 0)]
    with pytest.raises(TypeError):
        s.recv("10")
    assert recv.calls == [(10, 2)]
    part.closed = True
    with pytest.raises(OSError) as raised:
        s.send(b"x")
    assert raised.value.errno == errno.EBADF and send.calls == [(b"abc",)]


def test_timeout_lives_on_the_part_and_accept_passes_it_on(sim: Simulation) -> None:
    module = sim.socket
    listener = sim.new_socket(module.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(2.5)
    assert listener._part.timeout == 2500 and repr(listener).endswith("timeout=2500>")
    port = listener._part.tcp.bound[1]
    client = sim.new_socket(module.SOCK_STREAM)
    client.connect(("127.0.0.1", port))
    accepted, _ = listener.accept()
    sim._sockets.append(accepted)
    assert type(accepted._part) is StreamPart and accepted._part.timeout == 2500


def test_datagram_only_and_stream_only_calls_fail_as_modlwip(sim: Simulation) -> None:
    datagram = sim.new_socket()
    datagram.close()
    with pytest.raises(OSError) as raised:
        datagram.accept()  # EOPNOTSUPP comes before the closed check
    assert raised.value.errno == errno.EOPNOTSUPP
    fresh = sim.new_socket()
    with pytest.raises(NotImplementedError):
        fresh.sendall(b"x")
    fresh.setsockopt(sim.socket.IPPROTO_TCP, sim.socket.TCP_NODELAY, 1)  # ignored
    stream = sim.new_socket(sim.socket.SOCK_STREAM)
    stream.setsockopt(sim.socket.SOL_SOCKET, sim.socket.SO_REUSEADDR, 1)
    assert stream._part.reuse and stream._part.tcp.reuse


def test_stream_registry_is_an_application_of_the_stack(sim: Simulation) -> None:
    registry = sim.context.streams
    assert registry.next_deadline() is None
    listener = sim.new_socket(sim.socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.listen(2)  # (only once)
    steps = [app for app in sim.host.applications if app is registry]
    assert len(steps) == 1
