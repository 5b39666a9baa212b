"""``DHCPClient`` alone: a scripted server, explicit times, a seeded rng, no stack.

``server_sends(kind, ...)`` builds the reply a server would send to the client's current xid;
``expect_sent(kind)`` takes the one datagram the client queued and checks its type.
"""

from __future__ import annotations

import itertools
import random

import pytest

from pystack.counters import DECLARED
from pystack.dhcp.client import DHCPClient, DHCPClientSettings, DHCPState, Lease
from pystack.stats import DropReason, Statistics
from pystack.wire import dhcp
from pystack.wire.addresses import LIMITED_BROADCAST, ip_from_str
from pystack.wire.dhcp import DHCPMessage, DHCPOption

MAC = b"\x02\x00\x00\x00\x00\x07"
SERVER = ip_from_str("192.0.2.1")
OFFERED = ip_from_str("192.0.2.50")


class Machine:
    def __init__(self, seed: int = 7, settings: DHCPClientSettings | None = None) -> None:
        self.statistics = Statistics(DECLARED)
        self.changes: list[tuple[Lease | None, float]] = []
        self.client = DHCPClient(
            settings or DHCPClientSettings(),
            MAC,
            random.Random(seed),
            self.statistics,
            lambda lease, now: self.changes.append((lease, now)),
        )

    def expect_sent(self, kind: int) -> tuple[DHCPMessage, int]:
        out = self.client.take_outbox()
        assert len(out) == 1, out
        message = DHCPMessage.parse(out[0][0])
        assert message.message_type == kind
        return message, out[0][1]

    def expect_nothing(self) -> None:
        assert self.client.take_outbox() == []

    def server_sends(
        self, kind: int, now: float, *options: DHCPOption, xid: int | None = None, **fields: object
    ) -> None:
        message = DHCPMessage(
            dhcp.BOOTREPLY,
            self.client._xid if xid is None else xid,
            dhcp.chaddr_for(MAC),
            (dhcp.message_type_option(kind), *options),
            **fields,  # type: ignore[arg-type]
        )
        self.client.process(message.build(), now)

    def wait(self) -> float:
        """Jump to the next deadline and fire it; returns that time."""
        deadline = self.client.next_deadline()
        assert deadline is not None
        self.client.run_timers(deadline)
        return deadline

    def offer(self, now: float) -> None:
        server_id = dhcp.address_option(dhcp.OPTION_SERVER_ID, SERVER)
        self.server_sends(dhcp.OFFER, now, server_id, yiaddr=OFFERED)

    def ack(self, now: float, *options: DHCPOption, lease: int = 1000) -> None:
        self.server_sends(
            dhcp.ACK,
            now,
            dhcp.address_option(dhcp.OPTION_SERVER_ID, SERVER),
            dhcp.seconds_option(dhcp.OPTION_LEASE_TIME, lease),
            *options,
            yiaddr=OFFERED,
        )

    def bind(self) -> None:
        self.client.start(0.0)
        self.expect_sent(dhcp.DISCOVER)
        self.offer(0.1)
        self.expect_sent(dhcp.REQUEST)
        self.ack(0.2)
        assert self.client.state is DHCPState.BOUND


def test_selecting_retransmits_after_4_8_16_32_64_64_seconds_plus_minus_one() -> None:
    machine = Machine(seed=11)
    machine.client.start(0.0)
    first, destination = machine.expect_sent(dhcp.DISCOVER)
    assert destination == LIMITED_BROADCAST
    times = [0.0]
    for _ in range(7):
        times.append(machine.wait())
        message, _ = machine.expect_sent(dhcp.DISCOVER)
        assert message.xid == first.xid  # the same transaction
        assert message.secs == int(times[-1])
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for gap, base in zip(gaps, (4, 8, 16, 32, 64, 64, 64), strict=True):
        assert base - 1 <= gap <= base + 1
    again = Machine(seed=11)
    again.client.start(0.0)
    replay = [0.0] + [again.wait() for _ in range(7)]
    assert replay == times  # seeded: exactly repeatable
    other = Machine(seed=12)
    other.client.start(0.0)
    assert [0.0] + [other.wait() for _ in range(7)] != times


def test_requesting_gives_up_after_five_requests_and_discovers_again() -> None:
    machine = Machine()
    machine.client.start(0.0)
    discover, _ = machine.expect_sent(dhcp.DISCOVER)
    machine.offer(1.0)
    request, destination = machine.expect_sent(dhcp.REQUEST)
    assert (request.xid, destination) == (discover.xid, LIMITED_BROADCAST)
    for _ in range(4):
        machine.wait()
        machine.expect_sent(dhcp.REQUEST)
    assert machine.client.state is DHCPState.REQUESTING
    machine.wait()
    new, _ = machine.expect_sent(dhcp.DISCOVER)
    assert machine.client.state is DHCPState.SELECTING and new.xid != discover.xid
    assert machine.statistics.counters["dhcp.request_gave_up"] == 1


def test_requesting_nak_restarts_after_the_restart_delay() -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    machine.offer(0.5)
    machine.expect_sent(dhcp.REQUEST)
    machine.server_sends(dhcp.NAK, 0.7, dhcp.address_option(dhcp.OPTION_SERVER_ID, SERVER))
    assert machine.client.state is DHCPState.INIT
    assert machine.client.next_deadline() == 1.7
    machine.expect_nothing()
    assert machine.wait() == 1.7
    machine.expect_sent(dhcp.DISCOVER)
    assert machine.changes == []  # never had an address


def test_ack_binds_and_reports_the_lease() -> None:
    machine = Machine()
    machine.bind()
    [(lease, when)] = machine.changes
    assert lease is not None and when == 0.2
    # RFC 2131 4.4.1: the lease counts from when the REQUEST was sent (0.1), not from the ACK
    assert (lease.obtained_at, lease.renewal_at, lease.rebinding_at) == (0.1, 500.1, 875.1)
    assert lease.prefix_length == 24  # no mask given: 192.0.2.50 is a class C address
    assert machine.client.next_deadline() == 500.1


def test_inconsistent_t1_t2_fall_back_to_the_defaults() -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    machine.offer(0.0)
    machine.expect_sent(dhcp.REQUEST)
    machine.ack(
        0.0,
        dhcp.seconds_option(dhcp.OPTION_RENEWAL_TIME, 900),
        dhcp.seconds_option(dhcp.OPTION_REBINDING_TIME, 800),
        dhcp.address_option(dhcp.OPTION_SUBNET_MASK, 0xFFFF00FF),  # not contiguous: ignored
    )
    lease = machine.client.lease
    assert lease is not None and (lease.renewal_at, lease.rebinding_at) == (500.0, 875.0)
    assert lease.prefix_length == 24


def test_infinite_lease_never_renews() -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    machine.offer(0.0)
    machine.expect_sent(dhcp.REQUEST)
    machine.ack(0.0, lease=dhcp.INFINITE_LEASE)
    assert machine.client.state is DHCPState.BOUND
    assert machine.client.next_deadline() is None


def test_rebinding_ack_from_another_server_is_taken() -> None:
    machine = Machine()
    machine.bind()
    assert machine.wait() == 500.1
    renew, destination = machine.expect_sent(dhcp.REQUEST)
    assert (destination, renew.ciaddr) == (SERVER, OFFERED)
    while machine.client.state is DHCPState.RENEWING:
        machine.wait()
        machine.expect_sent(dhcp.REQUEST)
    assert machine.client.state is DHCPState.REBINDING
    other = ip_from_str("192.0.2.2")
    machine.server_sends(
        dhcp.ACK,
        900.0,
        dhcp.address_option(dhcp.OPTION_SERVER_ID, other),
        dhcp.seconds_option(dhcp.OPTION_LEASE_TIME, 1000),
        yiaddr=OFFERED,
    )
    assert machine.client.state is DHCPState.BOUND
    assert machine.client.lease is not None and machine.client.lease.server == other
    assert len(machine.changes) == 1  # same address: the interface is left alone


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ({"xid": 1}, DropReason.DHCP_NOT_OURS),
        ({"kind": dhcp.ACK}, DropReason.DHCP_UNEXPECTED),
        ({"yiaddr": 0}, DropReason.DHCP_UNEXPECTED),
        ({"server_id": None}, DropReason.DHCP_UNEXPECTED),
    ],
)
def test_selecting_ignores_what_is_not_a_usable_offer(
    mutation: dict[str, object], reason: DropReason
) -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    kind = mutation.get("kind", dhcp.OFFER)
    server = mutation.get("server_id", SERVER)
    options = () if server is None else (dhcp.address_option(dhcp.OPTION_SERVER_ID, SERVER),)
    machine.server_sends(
        kind,  # type: ignore[arg-type]
        0.5,
        *options,
        xid=mutation.get("xid"),  # type: ignore[arg-type]
        yiaddr=mutation.get("yiaddr", OFFERED),
    )
    assert machine.statistics.drops[reason] == 1
    assert machine.client.state is DHCPState.SELECTING
    machine.expect_nothing()


def test_other_mac_request_op_and_malformed_bytes_are_dropped() -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    xid = machine.client._xid
    wrong_mac = DHCPMessage(
        dhcp.BOOTREPLY, xid, dhcp.chaddr_for(b"\x02" * 6), (dhcp.message_type_option(dhcp.OFFER),)
    )
    machine.client.process(wrong_mac.build(), 1.0)
    request_op = wrong_mac._replace(op=dhcp.BOOTREQUEST, chaddr=dhcp.chaddr_for(MAC))
    machine.client.process(request_op.build(), 1.0)
    machine.client.process(b"\x02" * 100, 1.0)
    assert machine.statistics.drops[DropReason.DHCP_NOT_OURS] == 2
    assert machine.statistics.drops[DropReason.DHCP_MALFORMED] == 1
    assert machine.statistics.malformed["dhcp.truncated"] == 1


def test_requesting_nak_from_another_server_is_ignored() -> None:
    machine = Machine()
    machine.client.start(0.0)
    machine.expect_sent(dhcp.DISCOVER)
    machine.offer(0.5)
    machine.expect_sent(dhcp.REQUEST)
    machine.server_sends(dhcp.NAK, 0.6, dhcp.address_option(dhcp.OPTION_SERVER_ID, 12345))
    assert machine.client.state is DHCPState.REQUESTING
    assert machine.statistics.drops[DropReason.DHCP_UNEXPECTED] == 1


def test_stop_sends_release_and_start_begins_again() -> None:
    machine = Machine()
    machine.bind()
    machine.client.stop(10.0)
    release, destination = machine.expect_sent(dhcp.RELEASE)
    assert (destination, release.ciaddr, release.server_id) == (SERVER, OFFERED, SERVER)
    assert release.client_id == b"\x01" + MAC
    assert machine.changes[-1] == (None, 10.0)
    assert machine.client.state is DHCPState.STOPPED and machine.client.next_deadline() is None
    machine.client.start(11.0)
    machine.expect_sent(dhcp.DISCOVER)


def test_stop_without_release_is_silent() -> None:
    machine = Machine()
    machine.bind()
    machine.client.stop(10.0, release=False)
    machine.expect_nothing()
    assert machine.client.lease is None
