"""Datagrams to 127.0.0.1 and to our own address never touch the link."""

from __future__ import annotations

import errno
import random

import pytest

from pystack.stats import DropReason
from tests.helpers.frames import STACK_IP
from tests.ip.peer import Peer

LOCALHOST = 0x7F000001


@pytest.mark.parametrize("destination", [LOCALHOST, STACK_IP, 0x7F000102])
def test_datagram_to_ourselves_round_trips(destination: int) -> None:
    peer = Peer()
    udp = peer.stack.udp
    server = udp.open(0, 7000)
    client = udp.open()
    client.send_to(b"ping", (destination, 7000), peer.now)
    peer.poll()
    data, source = server.receive() or (b"", (0, 0))
    # 127.x.y.z destinations get 127.0.0.1 as the source (as Linux)
    source_address = LOCALHOST if destination >> 24 == 127 else STACK_IP
    assert (data, source) == (b"ping", (source_address, client.port))
    server.send_to(b"pong", source, peer.now)
    peer.poll()
    assert client.receive() == (b"pong", (source_address, 7000))
    peer.expect_nothing()  # nothing on the wire


def test_endpoint_bound_to_localhost_takes_only_loopback() -> None:
    peer = Peer()
    udp = peer.stack.udp
    local = udp.open(LOCALHOST, 7000)
    client = udp.open()
    client.send_to(b"loop", (LOCALHOST, 7000), peer.now)
    client.send_to(b"self", (STACK_IP, 7000), peer.now)
    peer.poll()
    assert local.receive() == (b"loop", (LOCALHOST, client.port))
    assert local.receive() is None
    assert peer.drops[DropReason.UDP_NO_LISTENER] == 1


def test_loopback_carries_the_largest_datagram_unfragmented() -> None:
    peer = Peer()
    udp = peer.stack.udp
    server = udp.open(0, 7000)
    data = random.Random(1).randbytes(65507)
    udp.open().send_to(data, (LOCALHOST, 7000), peer.now)
    peer.poll()
    received = server.receive()
    assert received is not None and received[0] == data
    assert peer.counters["ipv4.fragments_sent"] == 0


def test_connected_to_a_closed_local_port_gets_econnrefused() -> None:
    peer = Peer()
    client = peer.stack.udp.open()
    client.connect((LOCALHOST, 7001))
    client.send(b"anyone?", peer.now)
    peer.poll()
    assert client.take_error() == errno.ECONNREFUSED
    assert peer.drops[DropReason.UDP_NO_LISTENER] == 1


def test_stack_reports_loopback_work_as_due_at_once() -> None:
    peer = Peer()
    server = peer.stack.udp.open(0, 7000)
    peer.stack.udp.open().send_to(b"x", (LOCALHOST, 7000), peer.now)
    assert peer.stack.next_deadline() == peer.now
    peer.poll()
    assert server.pending == 1
