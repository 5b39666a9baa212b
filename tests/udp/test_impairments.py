"""UDP over an impaired link: loss and duplication never damage a datagram, corruption is caught
by the checksums, reordering is passed through, and receive-queue overflow is counted."""

from __future__ import annotations

import random

import pytest

from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.udp.endpoint import UDPEndpoint
from tests.sim.topology import B_IP, TwoHosts
from tests.udp.helpers import KINDS, hosts

COUNT = 300


def numbered(number: int) -> bytes:
    """Datagram ``number``: its number, then reproducible bytes of a size that varies with it."""
    size = 1 + number * 37 % 3000  # some go in fragments
    return number.to_bytes(4, "big") + random.Random(number).randbytes(size)


def take_all(endpoint: UDPEndpoint) -> list[bytes]:
    """Every queued datagram's data, oldest first."""
    taken = []
    while (datagram := endpoint.receive()) is not None:
        taken.append(datagram[0])
    return taken


def blast(
    net: TwoHosts, receiver: UDPEndpoint, count: int, interval: float, max_size: int = 5000
) -> list[bytes]:
    """Send ``count`` numbered datagrams (cut to ``max_size``) from ``a`` ``interval`` apart;
    return what arrived."""
    sender = net.a.udp.open()
    received: list[bytes] = []
    for number in range(count):
        sender.send_to(numbered(number)[:max_size], (B_IP, receiver.port), net.now)
        net.sim.run_for(interval)
        received += take_all(receiver)
    net.sim.run_for(1.0)
    return received + take_all(receiver)


@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_duplication_deliver_only_intact_datagrams(kind: LinkKind) -> None:
    net = hosts(kind, "loss=10%,dup=10%,seed=11")
    receiver = net.b.udp.open(0, 9000)
    received = blast(net, receiver, COUNT, 0.01)
    numbers = [int.from_bytes(data[:4], "big") for data in received]
    for number, data in zip(numbers, received, strict=True):
        assert data == numbered(number), f"datagram {number} damaged"
    assert len(set(numbers)) < COUNT  # some were lost
    assert len(numbers) > len(set(numbers))  # some came twice
    assert receiver.pending == 0


def test_corruption_is_caught_and_never_delivered() -> None:
    # One flipped bit per frame, and one frame per datagram: the checksums catch every such
    # error. (Across fragments two flips can cancel out: the Internet checksum's known blind
    # spot, so the datagrams here stay below the MTU.)
    net = hosts(LinkKind.IP, "out.corrupt=20%,seed=5")
    receiver = net.b.udp.open(0, 9000)
    received = blast(net, receiver, COUNT, 0.01, max_size=1400)
    for data in received:
        assert data == numbered(int.from_bytes(data[:4], "big"))[:1400]
    assert len(received) < COUNT
    drops = net.b.counters.drops
    caught = drops[DropReason.UDP_BAD_CHECKSUM] + drops[DropReason.IPV4_BAD_CHECKSUM]
    assert caught > 0


def test_reordering_passes_datagrams_through_in_a_new_order() -> None:
    net = hosts(LinkKind.IP, "reorder=30%,seed=3")
    receiver = net.b.udp.open(0, 9000)
    receiver.set_queue_limit(COUNT)
    sender = net.a.udp.open()
    for number in range(COUNT):
        sender.send_to(numbered(number)[:8], (B_IP, 9000), net.now)
        net.sim.run_for(0.001)
    net.sim.run_for(1.0)
    numbers = [int.from_bytes(data[:4], "big") for data in take_all(receiver)]
    assert sorted(numbers) == list(range(COUNT))
    assert numbers != sorted(numbers)


def test_a_burst_overflows_the_four_slot_queue_and_is_counted() -> None:
    net = hosts(LinkKind.IP, "delay=5ms,seed=1")
    receiver = net.b.udp.open(0, 9000)
    sender = net.a.udp.open()
    for number in range(10):  # all arrive before anyone reads
        sender.send_to(numbered(number)[:20], (B_IP, 9000), net.now)
    net.sim.run_for(0.1)
    assert receiver.pending == 4
    assert net.b.counters.drops[DropReason.UDP_QUEUE_FULL] == 6
    assert take_all(receiver) == [numbered(n)[:20] for n in range(4)]
