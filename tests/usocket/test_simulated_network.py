"""usocket datagrams on the simulated network, checked against the stacks' own counters.

The conformance suite shows that a 20,000-byte datagram and a broadcast arrive; here the host and
peer statistics show how: the datagram really went as IPv4 fragments both ways, the broadcast
really went to 10.0.0.255, and a datagram for a port nobody holds is counted as a drop.
"""

from __future__ import annotations

import errno

import pytest

from pystack.stats import DropReason
from tests.usocket.conftest import SIM_PEER, WAIT, Simulation


def test_20000_byte_echo_is_fragmented_and_reassembled_both_ways(sim: Simulation) -> None:
    host, peer = sim.host.counters.counters, sim.peer.counters.counters
    payload = bytes(range(256)) * 78 + b"tail" * 8
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.sendto(payload, (SIM_PEER, 7))
    assert s.recv(65535) == payload
    pieces = -(-(len(payload) + 8) // 1480)  # 1500-byte MTU: 1480 bytes of IPv4 payload each
    assert host["ipv4.fragments_sent"] == pieces == 14
    assert peer["ipv4.fragments_received"] == pieces and peer["ipv4.reassembled"] == 1
    assert peer["ipv4.fragments_sent"] == pieces
    assert host["ipv4.fragments_received"] == pieces and host["ipv4.reassembled"] == 1


def test_subnet_and_limited_broadcast_reach_the_peer(sim: Simulation) -> None:
    module = sim.socket
    first = sim.peer_endpoint(6600)
    s = sim.new_socket()
    s.setsockopt(module.SOL_SOCKET, module.SO_BROADCAST, 1)
    s.bind(("", 6601))
    assert s.sendto(b"hello subnet", ("10.0.0.255", 6600)) == 12
    assert sim.peer_receive(first) == (b"hello subnet", ("10.0.0.2", 6601))
    assert s.sendto(b"hello all", ("255.255.255.255", 6600)) == 9
    assert sim.peer_receive(first) == (b"hello all", ("10.0.0.2", 6601))


def test_datagram_to_a_closed_peer_port_is_counted_as_no_listener(sim: Simulation) -> None:
    drops = sim.peer.counters.drops
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.sendto(b"anyone?", (SIM_PEER, 6700))
    assert sim.wait_until(lambda: drops[DropReason.UDP_NO_LISTENER] == 1)
    s.sendto(b"ping", (SIM_PEER, 7))  # the socket still works afterwards
    assert s.recv(10) == b"ping"


def test_connected_socket_filter_counts_peer_mismatch(sim: Simulation) -> None:
    drops = sim.host.counters.drops
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6800))
    s.connect((SIM_PEER, 7))
    stranger = sim.peer_endpoint(0)
    sim.peer_send(stranger, b"not from 7", 6800)
    assert sim.wait_until(lambda: drops[DropReason.UDP_PEER_MISMATCH] == 1)
    with pytest.raises(OSError) as caught:
        s.recv(100, sim.socket.MSG_DONTWAIT)
    assert caught.value.errno == errno.EAGAIN


def test_closing_a_socket_frees_its_port(sim: Simulation) -> None:
    first = sim.new_socket()
    first.bind(("", 6900))
    first.close()
    second = sim.new_socket()
    second.bind(("", 6900))  # no EADDRINUSE: close released the endpoint
    peer = sim.peer_endpoint(0)
    sim.peer_send(peer, b"to the new owner", 6900)
    second.settimeout(WAIT)
    assert second.recv(100) == b"to the new owner"
