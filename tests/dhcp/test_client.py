"""The DHCP client on a stack, against the sim server: RFC 2131 4.4's states with explicit times.

Lease 1000 s unless a test says otherwise: T1 at 500 s, T2 at 875 s, expiry at 1000 s (counted
from the first REQUEST, sent at t=0). In RENEWING and REBINDING the client waits half the time
left (to T2, to expiry), at least 60 s (RFC 2131 4.4.5), so the retransmissions of a client whose
server went silent fall at 500, 687.5, 781.25, 841.25, then 875 (T2: broadcast), 937.5, 997.5.
"""

from __future__ import annotations

import pytest

from pystack.dhcp.client import DHCPClientSettings, DHCPState
from pystack.stats import DropReason
from pystack.wire import dhcp
from pystack.wire.addresses import LIMITED_BROADCAST, ip_from_str
from pystack.wire.dhcp import DHCPMessage
from tests.dhcp.network import FIRST, SERVER, DHCPNetwork

SECOND = ip_from_str("10.0.0.3")


@pytest.fixture
def network() -> DHCPNetwork:
    return DHCPNetwork()


def _types(network: DHCPNetwork) -> list[int | None]:
    return [sent.message.message_type for sent in network.sent]


def test_init_discover_offer_request_ack_bound(network: DHCPNetwork) -> None:
    network.bind()
    assert network.clock.now() == 0.0
    assert [(old.value, new.value) for _, old, new in network.dhcp.client.transitions] == [
        ("init", "selecting"),
        ("selecting", "requesting"),
        ("requesting", "bound"),
    ]
    assert _types(network) == [dhcp.DISCOVER, dhcp.REQUEST]
    discover, request = (sent.message for sent in network.sent)
    # RFC 2131 4.1: from 0.0.0.0 to the limited broadcast until bound; the REQUEST keeps the xid
    assert all(s.source == 0 and s.destination == LIMITED_BROADCAST for s in network.sent)
    assert request.xid == discover.xid
    assert (request.requested_ip, request.server_id, request.ciaddr) == (FIRST, SERVER, 0)
    assert discover.parameter_request_list[:3] == (1, 3, 6)
    assert len(discover.build()) == dhcp.MINIMUM_LENGTH
    lease = network.dhcp.lease
    assert lease is not None
    assert (lease.address, lease.prefix_length, lease.router, lease.dns_servers) == (
        FIRST, 24, SERVER, (SERVER,),
    )  # fmt: skip
    assert (lease.renewal_at, lease.rebinding_at, lease.expires_at) == (500.0, 875.0, 1000.0)


def test_bound_interface_has_the_address_and_pings_the_server(network: DHCPNetwork) -> None:
    assert network.client.address == 0
    network.bind()
    ip = network.client.ip
    assert (ip.address, ip.settings.prefix_length, ip.settings.gateway) == (FIRST, 24, SERVER)
    assert ip.directed_broadcast == ip_from_str("10.0.0.255")
    assert ip.routes.lookup(ip_from_str("192.0.2.1")).gateway == SERVER  # type: ignore[union-attr]
    network.client.ping(SERVER, 7, 1, b"hello", now=network.clock.now())
    network.simulation.run_for(1.0)
    replies = network.client.take_echo_replies()
    assert [(r.source, r.sequence, r.data) for r in replies] == [(SERVER, 1, b"hello")]
    network.server_stack.ping(FIRST, 8, 1, b"back", now=network.clock.now())
    network.simulation.run_for(1.0)
    assert [r.source for r in network.server_stack.take_echo_replies()] == [FIRST]


def test_unconfigured_client_accepts_the_offer_unicast_to_yiaddr(network: DHCPNetwork) -> None:
    network.bind()
    # The server unicast OFFER and ACK to 10.0.0.2 at our MAC (no broadcast flag asked).
    assert network.client.counters.counters["ipv4.unconfigured_accepted"] == 2
    assert not network.sent[0].message.broadcast


def test_broadcast_flag_asks_for_broadcast_replies() -> None:
    network = DHCPNetwork(client=DHCPClientSettings(broadcast_flag=True))
    network.bind()
    assert network.sent[0].message.broadcast
    assert network.client.counters.counters["ipv4.unconfigured_accepted"] == 0


def test_bound_renews_at_t1_with_a_unicast_request(network: DHCPNetwork) -> None:
    network.bind()
    network.simulation.run_for(499.0)
    assert network.dhcp.state is DHCPState.BOUND and len(network.sent) == 2
    network.simulation.run_for(2.0)
    renew = network.sent[2]
    assert renew.time == 500.0
    assert (renew.source, renew.destination) == (FIRST, SERVER)  # RFC 2131 4.3.2: unicast
    assert renew.message.ciaddr == FIRST
    assert renew.message.requested_ip is None and renew.message.server_id is None
    assert renew.message.xid != network.sent[1].message.xid
    assert network.dhcp.state is DHCPState.BOUND
    lease = network.dhcp.lease
    assert lease is not None and (lease.renewal_at, lease.expires_at) == (1000.0, 1500.0)


def test_renewing_retransmits_then_rebinds_at_t2_when_the_server_is_silent(
    network: DHCPNetwork,
) -> None:
    network.bind()
    network.server.silent = True
    network.simulation.run_for(900.0)
    renewals = network.sent[2:]
    assert [s.time for s in renewals] == [500.0, 687.5, 781.25, 841.25, 875.0]
    assert [s.destination for s in renewals] == [SERVER] * 4 + [LIMITED_BROADCAST]
    assert all(s.source == FIRST and s.message.ciaddr == FIRST for s in renewals)
    assert network.dhcp.state is DHCPState.REBINDING
    assert network.client.address == FIRST  # still ours until the lease runs out
    network.server.silent = False
    network.simulation.run_for(40.0)  # the next broadcast, at 937.5, reaches the server
    assert network.sent[-1].time == 937.5 and network.sent[-1].destination == LIMITED_BROADCAST
    assert network.dhcp.state is DHCPState.BOUND
    lease = network.dhcp.lease
    # RFC 2131 4.4.1: counted from the first REQUEST of the exchange (875), not the answered one
    assert lease is not None and lease.expires_at == 1875.0


def test_lease_expiry_unconfigures_and_starts_over(network: DHCPNetwork) -> None:
    network.bind()
    network.server.silent = True
    network.simulation.run_for(999.0)
    assert network.sent[-1].time == 997.5 and network.client.address == FIRST
    network.simulation.run_for(1.0)
    assert network.dhcp.state is DHCPState.SELECTING and network.dhcp.lease is None
    ip = network.client.ip
    assert (ip.address, ip.directed_broadcast, ip.configured) == (0, None, False)
    assert ip.routes.lookup(SERVER) is None  # no subnet, no default route
    assert network.client.counters.counters["dhcp.lease_expired"] == 1
    discover = network.sent[-1]
    assert (discover.time, discover.source, discover.message.message_type) == (
        1000.0, 0, dhcp.DISCOVER,
    )  # fmt: skip
    network.server.silent = False
    network.simulation.run_for(10.0)  # the retransmission 4 +- 1 s later is answered
    assert network.dhcp.state is DHCPState.BOUND and network.client.address == FIRST


def test_nak_while_renewing_drops_the_address_and_restarts(network: DHCPNetwork) -> None:
    network.bind()
    # The server forgets us and offers 10.0.0.2 to another client: our renewal gets a NAK.
    assert network.server.revoke(FIRST)
    other = DHCPMessage(
        dhcp.BOOTREQUEST, 99, dhcp.chaddr_for(b"\x02\x99\x99\x99\x99\x99"),
        (dhcp.message_type_option(dhcp.DISCOVER),
         dhcp.address_option(dhcp.OPTION_REQUESTED_IP, FIRST)),
    )  # fmt: skip
    offer = DHCPMessage.parse(network.server.process(other.build(), network.clock.now())[0].payload)
    request = other._replace(
        options=(
            dhcp.message_type_option(dhcp.REQUEST),
            dhcp.address_option(dhcp.OPTION_REQUESTED_IP, offer.yiaddr),
            dhcp.address_option(dhcp.OPTION_SERVER_ID, SERVER),
        )
    )
    assert network.server.process(request.build(), network.clock.now())  # the ACK: it is theirs
    network.simulation.run_for(500.0)
    assert network.dhcp.state is DHCPState.INIT and network.client.address == 0
    assert network.client.counters.counters["dhcp.naks_received"] == 1
    network.simulation.run_for(1.5)  # restart_delay: a new DISCOVER 1 s after the NAK
    assert [s.time for s in network.sent[-3:]] == [500.0, 501.0, 501.0]
    assert _types(network)[-2:] == [dhcp.DISCOVER, dhcp.REQUEST]
    assert network.dhcp.state is DHCPState.BOUND and network.client.address == SECOND


def test_stop_releases_the_lease_and_start_gets_it_back(network: DHCPNetwork) -> None:
    network.bind()
    network.dhcp.stop(network.clock.now())
    network.simulation.settle()
    release = network.sent[-1]
    assert release.message.message_type == dhcp.RELEASE
    assert (release.source, release.destination, release.message.ciaddr) == (FIRST, SERVER, FIRST)
    assert network.server.leases == {}
    assert network.dhcp.state is DHCPState.STOPPED and network.client.address == 0
    assert network.dhcp.next_deadline() is None
    network.dhcp.start(network.clock.now())
    network.bind()
    assert network.client.address == FIRST


def test_hostname_and_client_id_are_sent() -> None:
    settings = DHCPClientSettings(hostname="board", client_id=b"\x00board-1")
    network = DHCPNetwork(client=settings)
    network.bind()
    message = network.sent[0].message
    assert (message.hostname, message.client_id) == ("board", b"\x00board-1")
    assert next(iter(network.server.leases.values())).hostname == "board"


def test_datagrams_not_from_port_67_are_dropped(network: DHCPNetwork) -> None:
    network.bind()
    endpoint = network.server_stack.udp.open(0, 6767)
    endpoint.send_to(b"junk", (FIRST, 68), network.clock.now())
    network.simulation.settle()
    assert network.client.counters.drops[DropReason.DHCP_NOT_OURS] == 1


def test_pool_exhausted_client_keeps_discovering() -> None:
    network = DHCPNetwork(pool=("10.0.0.2", "10.0.0.2"))
    network.server.revoke(FIRST)
    taken = DHCPMessage(
        dhcp.BOOTREQUEST, 5, dhcp.chaddr_for(b"\x02\x55\x55\x55\x55\x55"),
        (dhcp.message_type_option(dhcp.DISCOVER),),
    )  # fmt: skip
    network.server.process(taken.build(), 0.0)  # the only address is offered to someone else
    network.simulation.run_for(30.0)
    assert network.dhcp.state is DHCPState.SELECTING
    assert network.server_stack.counters.drops[DropReason.DHCP_POOL_EXHAUSTED] >= 3
    network.simulation.run_for(110.0)  # the other's offer (60 s) ran out; a DISCOVER at ~124 s
    assert network.dhcp.state is DHCPState.BOUND
