"""usocket echo round trips over an impaired simulated link (20% loss, 10% duplication).

UDP promises nothing about arrival, so the test checks what it does promise: every datagram that
comes back is byte-exact and is one that was sent; copies appear only as often as the impairment
duplicated frames; every round trip that never came back is explained by a frame the impairment
lost or a drop the stacks counted. The link's random choices are seeded (seed=3); the timing of
the real-time stack thread is not, so the counts are bounded, not pinned.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.usocket.conftest import SIM_PEER, Simulation

ROUND_TRIPS = 200
REPLY_WAIT_MS = 30  # a lost round trip costs this; a late reply is still collected later
FINAL_WAIT_MS = 300


@pytest.fixture
def impaired() -> Iterator[Simulation]:
    simulation = Simulation(seed=3, impair="loss=20%,dup=10%,seed=3")
    try:
        yield simulation
    finally:
        simulation.close()


def payloads() -> list[bytes]:
    rng = random.Random(3)
    return [b"%05d:" % n + rng.randbytes(rng.randrange(0, 1200)) for n in range(ROUND_TRIPS)]


def test_impaired_echo_round_trips(impaired: Simulation) -> None:
    select = impaired.select
    sent = payloads()
    by_number = {int(p[:5]): p for p in sent}
    s = impaired.new_socket()
    s.setblocking(False)
    s.connect((SIM_PEER, 7))
    poller = select.poll()
    poller.register(s, select.POLLIN)
    received: list[bytes] = []

    def collect(wait_ms: int) -> None:
        while poller.poll(wait_ms):
            while True:
                try:
                    received.append(s.recv(2000))
                except OSError as error:
                    assert error.args == (11,)  # EAGAIN: drained
                    break
            wait_ms = 0

    for payload in sent:
        assert s.send(payload) == len(payload)  # a send never fails because of loss
        collect(REPLY_WAIT_MS)
    collect(FINAL_WAIT_MS)

    # Every datagram that came back is byte-exact and one that was sent.
    for reply in received:
        assert reply == by_number[int(reply[:5])]
    copies = Counter(int(reply[:5]) for reply in received)
    statistics = impaired.host.link.impairment_statistics  # type: ignore[attr-defined]
    outbound, inbound = statistics.outbound, statistics.inbound
    lost = outbound.lost + inbound.lost
    duplicated = outbound.duplicated + inbound.duplicated

    # Duplicates appear, and only as often as frames were duplicated.
    extra = sum(n - 1 for n in copies.values())
    assert extra >= 1, "no duplicate came back"
    assert extra <= duplicated

    # Losses are counted, and every missing round trip is explained by a loss or a counted drop.
    missing = ROUND_TRIPS - len(copies)
    assert missing >= 1 and lost >= 1
    dropped = sum(impaired.host.counters.drops.values()) + sum(
        impaired.peer.counters.drops.values()
    )
    assert missing <= lost + dropped
    assert len(copies) >= ROUND_TRIPS // 3  # 20% loss each way leaves about 64% of round trips
