"""Wrong types and values given to usocket: the exceptions MicroPython's modlwip raises.

modlwip converts arguments with ``mp_obj_get_int`` (TypeError for anything but an int),
``mp_obj_get_float`` (TypeError for a str), ``mp_get_buffer_raise`` (TypeError "object with
buffer protocol required"; MicroPython's str has the read-only buffer protocol, so str data is
accepted) and ``lwip_parse_inet_addr`` (USOCKET.md 3 bind: a tuple or list of another length,
or a host that is not a numeric IPv4 address: ValueError; no tuple or list at all:
``mp_obj_get_array_fixed_n``'s TypeError). Argument counts are checked by the function objects
(TypeError). Each case names the method and the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.usocket.conftest import SIM_PEER, WAIT, Simulation

ECHO = (SIM_PEER, 7)

CASES: list[tuple[str, Callable[[Any], Any], type[BaseException]]] = [
    # recv / recvfrom (USOCKET.md 3 recv: bufsize and flags are ints)
    ("recv(None)", lambda s: s.recv(None), TypeError),
    ('recv("1")', lambda s: s.recv("1"), TypeError),
    ("recv(1.5)", lambda s: s.recv(1.5), TypeError),
    ("recv(10, None)", lambda s: s.recv(10, None), TypeError),
    ('recv(10, "peek")', lambda s: s.recv(10, "peek"), TypeError),
    ("recvfrom(None)", lambda s: s.recvfrom(None), TypeError),
    ("recv()", lambda s: s.recv(), TypeError),
    ("recv(1, 0, 0)", lambda s: s.recv(1, 0, 0), TypeError),
    # sendto / send data (mp_get_buffer_raise)
    ("sendto(5, addr)", lambda s: s.sendto(5, ECHO), TypeError),
    ("sendto(None, addr)", lambda s: s.sendto(None, ECHO), TypeError),
    ("sendto([1, 2], addr)", lambda s: s.sendto([1, 2], ECHO), TypeError),
    ("sendto(b'x')", lambda s: s.sendto(b"x"), TypeError),
    # sendto / connect / bind addresses (lwip_parse_inet_addr)
    ('sendto(b"x", ("10.0.0.1",))', lambda s: s.sendto(b"x", (SIM_PEER,)), ValueError),
    ('sendto(b"x", ("10.0.0.1", 7, 0))', lambda s: s.sendto(b"x", (SIM_PEER, 7, 0)), ValueError),
    ('sendto(b"x", "10.0.0.1")', lambda s: s.sendto(b"x", SIM_PEER), TypeError),
    ("sendto(b'x', None)", lambda s: s.sendto(b"x", None), TypeError),
    ('sendto(b"x", ("no.such.host", 7))', lambda s: s.sendto(b"x", ("no.such", 7)), ValueError),
    ('sendto(b"x", ("10.0.0.256", 7))', lambda s: s.sendto(b"x", ("10.0.0.256", 7)), ValueError),
    ('sendto(b"x", ("10.0.0.1", "7"))', lambda s: s.sendto(b"x", (SIM_PEER, "7")), TypeError),
    ('connect(("10.0.0.1",))', lambda s: s.connect((SIM_PEER,)), ValueError),
    ('connect(("example.com", 7))', lambda s: s.connect(("example.com", 7)), ValueError),
    ('bind(("10.0.0.1", "80"))', lambda s: s.bind((SIM_PEER, "80")), TypeError),
    ('bind(("", None))', lambda s: s.bind(("", None)), TypeError),
    ("bind((None, 80))", lambda s: s.bind((None, 80)), TypeError),
    ('bind(("10.0.0.x", 80))', lambda s: s.bind(("10.0.0.x", 80)), ValueError),
    ('bind("10.0.0.2:80")', lambda s: s.bind("10.0.0.2:80"), TypeError),
    ("bind(80)", lambda s: s.bind(80), TypeError),
    ("bind(())", lambda s: s.bind(()), ValueError),
    # settimeout (mp_obj_get_float) / setblocking
    ('settimeout("x")', lambda s: s.settimeout("x"), TypeError),
    ('settimeout("1.5")', lambda s: s.settimeout("1.5"), TypeError),
    ('settimeout(b"1")', lambda s: s.settimeout(b"1"), TypeError),
    ("settimeout([1])", lambda s: s.settimeout([1]), TypeError),
    ("settimeout()", lambda s: s.settimeout(), TypeError),
    ("setblocking()", lambda s: s.setblocking(), TypeError),
    # setsockopt (exactly 4 arguments; optname and int values via mp_obj_get_int)
    ("setsockopt with 3 args", lambda s: s.setsockopt(1, 4), TypeError),
    ("setsockopt with 5 args", lambda s: s.setsockopt(1, 4, 1, 0), TypeError),
    ('setsockopt(1, "SO_REUSEADDR", 1)', lambda s: s.setsockopt(1, "SO_REUSEADDR", 1), TypeError),
    ('setsockopt(1, SO_REUSEADDR, "yes")', lambda s: s.setsockopt(1, 4, "yes"), TypeError),
    ("setsockopt(1, SO_BROADCAST, None)", lambda s: s.setsockopt(1, 0x20, None), TypeError),
    ("IP_ADD_MEMBERSHIP with an int", lambda s: s.setsockopt(0, 0x400, 12345678), TypeError),
    ("IP_ADD_MEMBERSHIP with 7 bytes", lambda s: s.setsockopt(0, 0x400, bytes(7)), ValueError),
    ("IP_DROP_MEMBERSHIP with 9 bytes", lambda s: s.setsockopt(0, 0x401, bytes(9)), ValueError),
    # makefile takes 1 to 3 arguments (the socket included)
    ("makefile(1, 2, 3)", lambda s: s.makefile("rb", 0, None), TypeError),
]


@pytest.mark.parametrize(
    ("call", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_argument_raises_what_micropython_raises(
    sim: Simulation, call: Callable[[Any], Any], expected: type[BaseException]
) -> None:
    s = sim.new_socket()
    with pytest.raises(expected) as caught:
        call(s)
    assert type(caught.value) is expected  # not a subclass standing in for it


def test_bad_input_leaves_the_socket_usable(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    for _, call, expected in CASES:
        with pytest.raises(expected):
            call(s)
    s.settimeout(WAIT)
    s.sendto(b"still fine", ECHO)
    assert s.recv(100) == b"still fine"


def test_send_with_an_int_on_a_connected_socket_raises_typeerror(sim: Simulation) -> None:
    s = sim.new_socket()
    s.connect(ECHO)
    with pytest.raises(TypeError, match="buffer protocol"):
        s.send(1234)  # not 1234 zero bytes, as CPython's bytes(1234) would make
    with pytest.raises(TypeError, match="buffer protocol"):
        s.sendto(3, ECHO)


def test_buffer_types_are_all_accepted_as_data(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.connect(ECHO)
    for data in (b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), "str"):
        s.send(data)
        assert s.recv(100) == (data.encode() if isinstance(data, str) else bytes(data))


def test_bad_timeout_is_rejected_before_it_changes_anything(sim: Simulation) -> None:
    s = sim.new_socket()
    s.setblocking(False)
    with pytest.raises(TypeError):
        s.settimeout("5")
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert caught.value.args == (11,)  # still non-blocking


def test_timeout_accepts_ints_floats_and_bools(sim: Simulation) -> None:
    """mp_obj_get_float takes any number; settimeout(True) is 1 s, settimeout(False) 0."""
    s = sim.new_socket()
    for value in (1, 0.5, True):
        s.settimeout(value)
    s.settimeout(False)
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert caught.value.args == (11,)


def test_poll_bad_arguments(sim: Simulation) -> None:
    poller = sim.select.poll()
    s = sim.new_socket()
    with pytest.raises(TypeError):
        poller.register()
    with pytest.raises(OSError):
        poller.register(None)
    poller.register(s)
    with pytest.raises(TypeError):
        poller.modify(s)


def test_getaddrinfo_bad_arguments(sim: Simulation) -> None:
    getaddrinfo = sim.socket.getaddrinfo
    with pytest.raises(TypeError):
        getaddrinfo(SIM_PEER)  # 2 to 6 positional arguments
    with pytest.raises(TypeError):
        getaddrinfo(None, 80)
    with pytest.raises(TypeError):
        getaddrinfo(SIM_PEER, "http")
