"""``DHCPServer`` alone: the client's messages built by hand, RFC 2131 4.3's answers checked.

Pool 192.0.2.10-192.0.2.12 on 192.0.2.0/24, server 192.0.2.1, lease 600 s, offers held 60 s.
"""

from __future__ import annotations

import pytest

from pystack.counters import DECLARED
from pystack.dhcp.server import DHCPServer, DHCPServerSettings, Reply
from pystack.stats import DropReason, Statistics
from pystack.wire import dhcp
from pystack.wire.addresses import LIMITED_BROADCAST, ip_from_str
from pystack.wire.dhcp import DHCPMessage, DHCPOption

SERVER = ip_from_str("192.0.2.1")
FIRST, SECOND, THIRD = (ip_from_str(f"192.0.2.{n}") for n in (10, 11, 12))
MAC_A = b"\x02\x00\x00\x00\x00\x0a"
MAC_B = b"\x02\x00\x00\x00\x00\x0b"


@pytest.fixture
def server() -> DHCPServer:
    settings = DHCPServerSettings(
        SERVER, (FIRST, THIRD), 24, router=SERVER, dns_servers=(SERVER,), lease_time=600
    )
    return DHCPServer(settings, Statistics(DECLARED))


def client_sends(
    server: DHCPServer,
    kind: int,
    now: float,
    *options: DHCPOption,
    mac: bytes = MAC_A,
    **fields: object,
) -> list[Reply]:
    message = DHCPMessage(
        dhcp.BOOTREQUEST,
        0x1234,
        dhcp.chaddr_for(mac),
        (dhcp.message_type_option(kind), *options),
        **fields,  # type: ignore[arg-type]
    )
    return server.process(message.build(), now)


def answer(replies: list[Reply]) -> tuple[DHCPMessage, Reply]:
    assert len(replies) == 1
    return DHCPMessage.parse(replies[0].payload), replies[0]


def requested(address: int) -> DHCPOption:
    return dhcp.address_option(dhcp.OPTION_REQUESTED_IP, address)


def server_id(address: int = SERVER) -> DHCPOption:
    return dhcp.address_option(dhcp.OPTION_SERVER_ID, address)


def bind(server: DHCPServer, mac: bytes = MAC_A, now: float = 0.0) -> int:
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, now, mac=mac))
    ack, _ = answer(
        client_sends(server, dhcp.REQUEST, now, requested(offer.yiaddr), server_id(), mac=mac)
    )
    assert ack.message_type == dhcp.ACK
    return ack.yiaddr


def test_discover_gets_an_offer_unicast_to_yiaddr_at_the_mac(server: DHCPServer) -> None:
    offer, reply = answer(client_sends(server, dhcp.DISCOVER, 0.0))
    assert (offer.message_type, offer.op, offer.xid, offer.yiaddr) == (dhcp.OFFER, 2, 0x1234, FIRST)
    assert (offer.server_id, offer.lease_time, offer.renewal_time, offer.rebinding_time) == (
        SERVER, 600, 300, 525,
    )  # fmt: skip
    assert (offer.subnet_mask, offer.routers, offer.dns_servers) == (
        0xFFFFFF00,
        (SERVER,),
        (SERVER,),
    )
    assert reply == Reply(reply.payload, FIRST, 68, MAC_A)  # RFC 2131 4.1
    assert len(reply.payload) == dhcp.MINIMUM_LENGTH


def test_offer_honours_a_free_requested_address(server: DHCPServer) -> None:
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, 0.0, requested(THIRD)))
    assert offer.yiaddr == THIRD
    outside, _ = answer(client_sends(server, dhcp.DISCOVER, 0.0, requested(SERVER), mac=MAC_B))
    assert outside.yiaddr == FIRST  # the server's own address is never handed out


def test_broadcast_flag_gets_a_broadcast_reply(server: DHCPServer) -> None:
    _, reply = answer(client_sends(server, dhcp.DISCOVER, 0.0, flags=dhcp.FLAG_BROADCAST))
    assert (reply.address, reply.port, reply.mac) == (LIMITED_BROADCAST, 68, None)


def test_relayed_discover_goes_back_to_the_relay(server: DHCPServer) -> None:
    relay = ip_from_str("192.0.2.254")
    offer, reply = answer(client_sends(server, dhcp.DISCOVER, 0.0, giaddr=relay))
    assert (reply.address, reply.port, offer.giaddr) == (relay, 67, relay)


def test_selecting_request_is_acked_and_binds(server: DHCPServer) -> None:
    assert bind(server) == FIRST
    lease = next(iter(server.leases.values()))
    assert (lease.address, lease.bound, lease.expires_at, lease.mac) == (FIRST, True, 600.0, MAC_A)
    # the same client asks again later: the same address
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, 10.0))
    assert offer.yiaddr == FIRST


def test_request_for_another_server_withdraws_our_offer(server: DHCPServer) -> None:
    client_sends(server, dhcp.DISCOVER, 0.0)
    assert client_sends(server, dhcp.REQUEST, 0.0, requested(FIRST), server_id(12345)) == []
    assert server.leases == {}


def test_selecting_request_for_an_address_not_offered_is_naked(server: DHCPServer) -> None:
    client_sends(server, dhcp.DISCOVER, 0.0)
    nak, reply = answer(client_sends(server, dhcp.REQUEST, 0.0, requested(SECOND), server_id()))
    assert (nak.message_type, nak.yiaddr, nak.lease_time) == (dhcp.NAK, 0, None)
    assert reply.address == LIMITED_BROADCAST  # RFC 2131 4.1: NAKs are broadcast


def test_offer_expires_and_its_address_goes_to_another_client(server: DHCPServer) -> None:
    client_sends(server, dhcp.DISCOVER, 0.0)
    taken, _ = answer(client_sends(server, dhcp.DISCOVER, 30.0, requested(FIRST), mac=MAC_B))
    assert taken.yiaddr == SECOND
    late, _ = answer(client_sends(server, dhcp.DISCOVER, 61.0, requested(FIRST), mac=MAC_B))
    assert late.yiaddr == FIRST


def test_pool_exhaustion_is_a_counted_drop(server: DHCPServer) -> None:
    for n in range(3):
        bind(server, mac=bytes([2, 0, 0, 0, 1, n]))
    assert client_sends(server, dhcp.DISCOVER, 1.0) == []
    assert server.statistics.drops[DropReason.DHCP_POOL_EXHAUSTED] == 1
    # after the leases run out, addresses come back
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, 601.0))
    assert offer.yiaddr == FIRST


def test_init_reboot(server: DHCPServer) -> None:
    bind(server)
    ack, _ = answer(client_sends(server, dhcp.REQUEST, 5.0, requested(FIRST)))
    assert ack.message_type == dhcp.ACK
    wrong_net, _ = answer(
        client_sends(server, dhcp.REQUEST, 5.0, requested(ip_from_str("198.51.100.7")), mac=MAC_B)
    )
    assert wrong_net.message_type == dhcp.NAK
    taken, _ = answer(client_sends(server, dhcp.REQUEST, 5.0, requested(FIRST), mac=MAC_B))
    assert taken.message_type == dhcp.NAK
    # RFC 2131 4.3.2: no record of the client and a free address in our subnet: silence
    assert client_sends(server, dhcp.REQUEST, 5.0, requested(THIRD), mac=MAC_B) == []
    assert client_sends(server, dhcp.REQUEST, 5.0, mac=MAC_B) == []  # nothing requested


def test_renewing_extends_the_lease_with_a_unicast_ack(server: DHCPServer) -> None:
    bind(server)
    ack, reply = answer(client_sends(server, dhcp.REQUEST, 300.0, ciaddr=FIRST))
    assert (ack.message_type, ack.yiaddr, ack.ciaddr) == (dhcp.ACK, FIRST, FIRST)
    assert (reply.address, reply.mac) == (FIRST, None)  # to ciaddr, through ARP
    assert next(iter(server.leases.values())).expires_at == 900.0


def test_renewing_for_an_address_held_by_another_is_naked(server: DHCPServer) -> None:
    bind(server)
    nak, _ = answer(client_sends(server, dhcp.REQUEST, 10.0, ciaddr=FIRST, mac=MAC_B))
    assert nak.message_type == dhcp.NAK
    assert client_sends(server, dhcp.REQUEST, 10.0, ciaddr=THIRD, mac=MAC_B) == []  # unknown


def test_release_and_decline(server: DHCPServer) -> None:
    bind(server)
    assert client_sends(server, dhcp.RELEASE, 1.0, server_id(), ciaddr=FIRST) == []
    assert server.leases == {}
    assert bind(server, mac=MAC_B) == FIRST
    client_sends(server, dhcp.DECLINE, 2.0, requested(FIRST), server_id(), mac=MAC_B)
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, 3.0, mac=MAC_B))
    assert offer.yiaddr == SECOND  # the declined address is out of the pool for a while
    again, _ = answer(client_sends(server, dhcp.DISCOVER, 603.0, requested(FIRST), mac=MAC_A))
    assert again.yiaddr == FIRST


def test_inform_gets_options_without_a_lease(server: DHCPServer) -> None:
    ack, reply = answer(client_sends(server, dhcp.INFORM, 0.0, ciaddr=THIRD))
    assert (ack.message_type, ack.yiaddr, ack.lease_time, ack.routers) == (
        dhcp.ACK,
        0,
        None,
        (SERVER,),
    )
    assert reply.address == THIRD
    assert client_sends(server, dhcp.INFORM, 0.0) == []


def test_replies_malformed_and_silent(server: DHCPServer) -> None:
    reply = DHCPMessage(
        dhcp.BOOTREPLY, 1, dhcp.chaddr_for(MAC_A), (dhcp.message_type_option(dhcp.OFFER),)
    )
    assert server.process(reply.build(), 0.0) == []
    assert server.process(b"\x01" * 10, 0.0) == []
    assert server.statistics.drops[DropReason.DHCP_UNEXPECTED] == 1
    assert server.statistics.drops[DropReason.DHCP_MALFORMED] == 1
    server.silent = True
    assert client_sends(server, dhcp.DISCOVER, 0.0) == []
    assert server.statistics.counters["dhcp.server.ignored_silent"] == 1


def test_client_id_identifies_the_client_over_its_mac(server: DHCPServer) -> None:
    client_id = DHCPOption(dhcp.OPTION_CLIENT_ID, b"\x00same")
    offer, _ = answer(client_sends(server, dhcp.DISCOVER, 0.0, client_id))
    client_sends(server, dhcp.REQUEST, 0.0, requested(offer.yiaddr), server_id(), client_id)
    moved, _ = answer(client_sends(server, dhcp.DISCOVER, 1.0, client_id, mac=MAC_B))
    assert moved.yiaddr == offer.yiaddr


def test_pool_outside_the_subnet_is_refused() -> None:
    with pytest.raises(ValueError):
        DHCPServer(
            DHCPServerSettings(SERVER, (FIRST, ip_from_str("192.0.3.1"))), Statistics(DECLARED)
        )
