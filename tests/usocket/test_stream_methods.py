"""The py/stream.c methods every modlwip socket has (USOCKET.md 3 "Stream methods"), on UDP."""

from __future__ import annotations

from typing import Any

PEER = ("10.0.0.1", 7)  # the simulated peer's UDP echo


def _connected(sim: Any) -> Any:
    s = sim.socket.socket(sim.socket.AF_INET, sim.socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect(PEER)
    return s


def test_write_sends_and_read_gets_the_echo(sim: Any) -> None:
    s = _connected(sim)
    assert s.write(b"hello") == 5
    assert s.read(5) == b"hello"


def test_write_with_max_len_and_offset(sim: Any) -> None:
    s = _connected(sim)
    assert s.write(b"abcdef", 3) == 3
    assert s.recv(10) == b"abc"
    assert s.write(b"abcdef", 2, 3) == 3
    assert s.recv(10) == b"cde"


def test_read_loops_until_n_bytes(sim: Any) -> None:
    s = _connected(sim)
    s.write(b"12")
    s.write(b"345")
    assert s.read(5) == b"12345"


def test_readinto_fills_the_buffer(sim: Any) -> None:
    s = _connected(sim)
    s.write(b"wxyz")
    buffer = bytearray(4)
    assert s.readinto(buffer) == 4 and buffer == bytearray(b"wxyz")


def test_readline_reads_a_byte_per_call_up_to_the_newline(sim: Any) -> None:
    # One recv(1) per byte: on UDP each call takes one datagram (the rest of it is lost).
    s = _connected(sim)
    s.write(b"a")
    s.write(b"b")
    s.write(b"\n")
    assert s.readline() == b"ab\n"


def test_nonblocking_read_and_readline_return_none_when_nothing_waits(sim: Any) -> None:
    s = _connected(sim)
    s.setblocking(False)
    assert s.read(10) is None
    assert s.readline() is None
    assert s.readinto(bytearray(3)) is None


def test_timeout_in_read_raises_etimedout(sim: Any) -> None:
    s = _connected(sim)
    s.settimeout(0.05)
    try:
        s.read(1)
    except OSError as error:
        assert error.args == (110,)
    else:
        raise AssertionError("read did not time out")


def test_write_on_an_unconnected_udp_socket_raises_einval(sim: Any) -> None:
    s = sim.socket.socket(sim.socket.AF_INET, sim.socket.SOCK_DGRAM)
    try:
        s.write(b"x")
    except OSError as error:
        assert error.args == (22,)
    else:
        raise AssertionError("write without connect succeeded")
