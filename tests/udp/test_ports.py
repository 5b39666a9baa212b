"""The port table: ephemeral ports from the seeded rng, EADDRINUSE, SO_REUSEADDR, limits, close."""

from __future__ import annotations

import dataclasses
import errno
import random

import pytest

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.udp.settings import UDPSettings
from tests.helpers.frames import STACK_IP

LOCALHOST = 0x7F000001


def make_stack(seed: int = 1, **udp: object) -> Stack:
    link, _wire = MemoryLink.pair(LinkKind.IP, 1500, capacity=64)
    settings = dataclasses.replace(UDPSettings(), **udp)
    return Stack(StackConfig(address="10.0.0.2/24", udp=settings), link, rng=random.Random(seed))


def errno_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(OSError) as caught:
        call()
    return caught.value.errno or 0


def test_ephemeral_port_is_reproducible_from_the_seed_and_in_the_lwip_range() -> None:
    first = make_stack(seed=5).udp.open()
    again = make_stack(seed=5).udp.open()
    assert first.local == again.local
    assert first.address == 0 and 49152 <= first.port <= 65535
    ports = {make_stack(seed=seed).udp.open().port for seed in range(20)}
    assert len(ports) > 10  # the start of the scan is random, not fixed


def test_ephemeral_ports_skip_ports_in_use_until_the_range_is_exhausted() -> None:
    udp = make_stack(ephemeral_ports=(50000, 50002)).udp
    ports = {udp.open().port for _ in range(3)}
    assert ports == {50000, 50001, 50002}
    assert errno_of(udp.open) == errno.EADDRINUSE


def test_ephemeral_port_avoids_a_port_bound_explicitly() -> None:
    udp = make_stack(ephemeral_ports=(50000, 50001)).udp
    udp.open(0, 50000)
    assert udp.open().port == 50001


@pytest.mark.parametrize(
    ("first", "second"),
    [(0, 0), (0, STACK_IP), (STACK_IP, 0), (STACK_IP, STACK_IP), (LOCALHOST, LOCALHOST)],
)
def test_overlapping_binds_raise_eaddrinuse(first: int, second: int) -> None:
    udp = make_stack().udp
    udp.open(first, 7000)
    assert errno_of(lambda: udp.open(second, 7000)) == errno.EADDRINUSE


def test_distinct_specific_addresses_share_a_port() -> None:
    udp = make_stack().udp
    udp.open(STACK_IP, 7000)
    assert udp.open(LOCALHOST, 7000).local == (LOCALHOST, 7000)


def test_reuse_on_both_sides_shares_the_port() -> None:
    udp = make_stack().udp
    udp.open(0, 7000, reuse=True)
    udp.open(0, 7000, reuse=True)
    udp.open(STACK_IP, 7000, reuse=True)
    assert len(udp.endpoints()) == 3


@pytest.mark.parametrize(("old", "new"), [(True, False), (False, True)])
def test_reuse_on_one_side_only_is_still_a_clash(old: bool, new: bool) -> None:
    udp = make_stack().udp
    udp.open(0, 7000, reuse=old)
    assert errno_of(lambda: udp.open(0, 7000, reuse=new)) == errno.EADDRINUSE


def test_close_frees_the_port_and_twice_is_fine() -> None:
    udp = make_stack().udp
    endpoint = udp.open(0, 7000)
    endpoint.close()
    endpoint.close()
    assert endpoint.closed and udp.endpoints() == []
    assert udp.open(0, 7000).port == 7000


def test_a_closed_endpoint_refuses_every_operation_with_ebadf() -> None:
    endpoint = make_stack().udp.open(0, 7000)
    endpoint.close()
    assert errno_of(lambda: endpoint.send_to(b"x", (STACK_IP, 9), 0.0)) == errno.EBADF
    assert errno_of(lambda: endpoint.send(b"x", 0.0)) == errno.EBADF
    assert errno_of(lambda: endpoint.connect((STACK_IP, 9))) == errno.EBADF
    assert errno_of(lambda: endpoint.join(0xEF000001, 0, 0.0)) == errno.EBADF
    assert endpoint.receive() is None and endpoint.pending == 0


def test_the_endpoint_limit_raises_enomem_and_closing_makes_room() -> None:
    udp = make_stack(max_endpoints=2).udp
    first = udp.open()
    udp.open()
    assert errno_of(udp.open) == errno.ENOMEM
    first.close()
    udp.open()


def test_bad_addresses_and_ports_are_value_errors() -> None:
    udp = make_stack().udp
    for address, port in [(-1, 0), (1 << 32, 0), (0, 65536), (0, -1)]:
        with pytest.raises(ValueError):
            udp.open(address, port)
    endpoint = udp.open()
    with pytest.raises(ValueError):
        endpoint.connect((0, 70000))
    with pytest.raises(ValueError):
        endpoint.send_to(b"", (STACK_IP, 65536), 0.0)
    with pytest.raises(ValueError):
        endpoint.set_queue_limit(0)


def test_tcp_and_udp_port_spaces_are_separate() -> None:
    stack = make_stack()
    stack.tcp.listen(7000)
    assert stack.udp.open(0, 7000).port == 7000


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        UDPSettings(ephemeral_ports=(60000, 50000))
    with pytest.raises(ValueError):
        UDPSettings(receive_queue=0)
    with pytest.raises(ValueError):
        UDPSettings(multicast_ttl=0)
