"""Multicast: IGMPv2 joins, leaves and queries as seen on the wire, group membership, delivery.

The peer is the multicast router and the other hosts: it reads the reports and leaves the stack
sends (parsed with the IGMP codec) and sends queries and other hosts' reports.
"""

from __future__ import annotations

import errno

import pytest

from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.udp.endpoint import UDPEndpoint
from pystack.wire import igmp
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.igmp import IGMPMessage
from pystack.wire.ipv4 import PROTO_IGMP, IPv4Packet
from tests.helpers.frames import PEER_IP, STACK_IP, read_ipv4
from tests.ip.peer import Peer
from tests.sim.topology import A_IP
from tests.udp.helpers import KINDS, hosts, udp_packet

GROUP = 0xEF010203  # 239.1.2.3
OTHER_GROUP = 0xEF0A0A0A  # 239.10.10.10
ROUTER_ALERT = b"\x94\x04\x00\x00"


def igmp_sent(peer: Peer) -> list[tuple[IPv4Packet, IGMPMessage]]:
    """The IGMP messages the stack has sent since the last call, each checked for RFC 2236 2."""
    result = []
    for packet in peer.sent_packets(dst=None):
        if packet.protocol != PROTO_IGMP:
            continue
        assert packet.ttl == 1 and packet.options == ROUTER_ALERT
        assert packet.src == STACK_IP
        result.append((packet, IGMPMessage.parse(packet.payload)))
    return result


def peer_igmp(peer: Peer, message: IGMPMessage, destination: int, source: int = PEER_IP) -> None:
    packet = IPv4Packet(
        source, destination, PROTO_IGMP, message.build(), ttl=1, options=ROUTER_ALERT
    )
    peer.peer_sends_packet(
        packet, dst=b"\x01\x00\x5e" + (destination & 0x7FFFFF).to_bytes(3, "big")
    )


def joined(kind: LinkKind = LinkKind.IP) -> tuple[Peer, UDPEndpoint]:
    peer = Peer(kind)
    endpoint = peer.stack.udp.open(0, 5000)
    endpoint.join(GROUP, 0, peer.now)
    peer.poll()
    return peer, endpoint


@pytest.mark.parametrize("kind", KINDS)
def test_join_reports_at_once_and_repeats_once(kind: LinkKind) -> None:
    peer = Peer(kind)
    endpoint = peer.stack.udp.open(0, 5000)
    endpoint.join(GROUP, 0, peer.now)
    peer.poll()
    [frame] = peer.sent_frames()
    if kind is LinkKind.ETHERNET:  # RFC 1112 6.4: 01:00:5e and the group's low 23 bits
        assert EthernetFrame.parse(frame).dst.hex(":") == "01:00:5e:01:02:03"
    first = read_ipv4(frame, kind is LinkKind.ETHERNET)
    assert IGMPMessage.parse(first.payload) == IGMPMessage.v2_report(GROUP)
    assert GROUP in peer.stack.ip.multicast_groups
    assert peer.stack.udp.igmp.memberships() == {GROUP: 1}
    repeat = peer.stack.next_deadline()
    assert repeat is not None and 0.0 < repeat <= 10.0  # RFC 2236 8.10
    peer.at(repeat)
    [(packet, message)] = igmp_sent(peer)
    assert (packet.dst, message) == (GROUP, IGMPMessage.v2_report(GROUP))
    peer.at(100.0)
    assert igmp_sent(peer) == []  # two unsolicited reports in all
    assert peer.stack.counters.counters["igmp.reports_sent"] == 2


def test_first_report_is_a_v2_report_to_the_group() -> None:
    peer = Peer()
    peer.stack.udp.open(0, 5000).join(GROUP, 0, peer.now)
    peer.poll()
    [(packet, message)] = igmp_sent(peer)
    assert packet.dst == GROUP and message == IGMPMessage.v2_report(GROUP)


def test_last_leave_sends_a_leave_to_all_routers_and_drops_the_group() -> None:
    peer, endpoint = joined()
    igmp_sent(peer)
    endpoint.leave(GROUP, 0, peer.now)
    peer.poll()
    [(packet, message)] = igmp_sent(peer)
    assert (packet.dst, message) == (igmp.ALL_ROUTERS, IGMPMessage.leave(GROUP))
    assert GROUP not in peer.stack.ip.multicast_groups
    assert peer.stack.next_deadline() is None  # the pending repeat went with the group
    peer.peer_sends_packet(udp_packet(PEER_IP, GROUP, 1, 5000, b"late"))
    assert peer.dropped() == {DropReason.IPV4_NOT_FOR_US: 1}


def test_membership_is_counted_and_only_the_last_leave_leaves() -> None:
    peer = Peer()
    first = peer.stack.udp.open(0, 5000)
    second = peer.stack.udp.open(0, 5001)
    first.join(GROUP, 0, peer.now)
    second.join(GROUP, STACK_IP, peer.now)
    first.join(GROUP, 0, peer.now)  # lwIP counts joins: two joins need two leaves
    peer.poll()
    assert len(igmp_sent(peer)) == 1  # one report: the group was new only once
    assert peer.stack.udp.igmp.memberships() == {GROUP: 3}
    first.leave(GROUP, 0, peer.now)
    second.leave(GROUP, 0, peer.now)
    peer.poll()
    assert igmp_sent(peer) == [] and peer.stack.udp.igmp.is_member(GROUP)
    first.leave(GROUP, 0, peer.now)
    peer.poll()
    assert [m for _, m in igmp_sent(peer)] == [IGMPMessage.leave(GROUP)]


def test_closing_an_endpoint_leaves_its_groups() -> None:
    peer, endpoint = joined()
    igmp_sent(peer)
    endpoint.close(peer.now)
    peer.poll()
    assert [m for _, m in igmp_sent(peer)] == [IGMPMessage.leave(GROUP)]
    assert not peer.stack.udp.igmp.is_member(GROUP)


@pytest.mark.parametrize(
    ("group", "interface"),
    [(0x0A000001, 0), (igmp.ALL_SYSTEMS, 0), (0xFFFFFFFF, 0), (GROUP, 0x0A000063)],
)
def test_bad_joins_raise_einval(group: int, interface: int) -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 5000)
    with pytest.raises(OSError) as caught:
        endpoint.join(group, interface, peer.now)
    assert caught.value.errno == errno.EINVAL
    assert peer.stack.ip.multicast_groups == {igmp.ALL_SYSTEMS}


def test_leaving_a_group_not_joined_raises_einval() -> None:
    peer, _endpoint = joined()
    other = peer.stack.udp.open(0, 5001)
    with pytest.raises(OSError) as caught:
        other.leave(GROUP, 0, peer.now)
    assert caught.value.errno == errno.EINVAL


def test_general_query_is_answered_after_a_random_delay_within_max_response_time() -> None:
    peer, endpoint = joined()
    endpoint.join(OTHER_GROUP, 0, peer.now)
    peer.at(30.0)  # the unsolicited repeats are done
    igmp_sent(peer)
    peer_igmp(peer, IGMPMessage.query(0, 50), igmp.ALL_SYSTEMS)  # 5 s
    assert igmp_sent(peer) == []  # not at once
    reports: dict[int, float] = {}
    while (deadline := peer.stack.next_deadline()) is not None:
        peer.at(deadline)
        for packet, message in igmp_sent(peer):
            reports[message.group] = peer.now
            assert message == IGMPMessage.v2_report(packet.dst)
    assert set(reports) == {GROUP, OTHER_GROUP}
    assert all(30.0 < when <= 35.0 for when in reports.values())
    assert reports[GROUP] != reports[OTHER_GROUP]  # a separate random delay each


def test_group_specific_query_is_answered_for_that_group_only() -> None:
    peer, endpoint = joined()
    endpoint.join(OTHER_GROUP, 0, peer.now)
    peer.at(30.0)
    igmp_sent(peer)
    peer_igmp(peer, IGMPMessage.query(OTHER_GROUP, 10), OTHER_GROUP)
    peer.at(31.0)
    assert [m for _, m in igmp_sent(peer)] == [IGMPMessage.v2_report(OTHER_GROUP)]


def test_query_shortens_a_longer_pending_delay_but_never_lengthens_it() -> None:
    peer, _endpoint = joined()
    repeat = peer.stack.next_deadline()
    assert repeat is not None
    peer_igmp(peer, IGMPMessage.query(0, 255), igmp.ALL_SYSTEMS)  # 25.5 s: longer, ignored
    assert peer.stack.next_deadline() == repeat
    peer_igmp(peer, IGMPMessage.query(0, 1), igmp.ALL_SYSTEMS)  # 0.1 s: shorter, reset
    deadline = peer.stack.next_deadline()
    assert deadline is not None and deadline <= 0.1


def test_another_hosts_report_suppresses_ours_and_then_no_leave_is_sent() -> None:
    peer, endpoint = joined()
    igmp_sent(peer)
    assert peer.stack.next_deadline() is not None  # the repeat is pending
    peer_igmp(peer, IGMPMessage.v2_report(GROUP), GROUP, source=0x0A000003)
    assert peer.stack.next_deadline() is None
    assert peer.stack.counters.counters["igmp.reports_suppressed"] == 1
    endpoint.leave(GROUP, 0, peer.now)
    peer.poll()
    assert igmp_sent(peer) == []  # RFC 2236 3: not the last reporter, so no leave


def test_igmpv1_query_switches_to_v1_reports_and_no_leaves() -> None:
    peer, endpoint = joined()
    peer.at(30.0)
    igmp_sent(peer)
    peer_igmp(peer, IGMPMessage.query(0, 0), igmp.ALL_SYSTEMS)
    deadline = peer.stack.next_deadline()
    assert deadline is not None and deadline <= 40.0  # v1: 10 s
    peer.at(deadline)
    assert [m for _, m in igmp_sent(peer)] == [IGMPMessage.v1_report(GROUP)]
    endpoint.leave(GROUP, 0, peer.now)
    peer.poll()
    assert igmp_sent(peer) == []
    assert peer.stack.udp.igmp.version1_mode(peer.now)
    assert not peer.stack.udp.igmp.version1_mode(30.0 + 400.0)  # RFC 2236 8.11


def test_bad_and_unknown_igmp_messages_are_dropped_by_name() -> None:
    peer, _endpoint = joined()
    broken = IGMPMessage.v2_report(GROUP).build()[:7]
    peer.peer_sends_packet(IPv4Packet(PEER_IP, GROUP, PROTO_IGMP, broken, ttl=1))
    peer_igmp(peer, IGMPMessage(0x22, 0, 0, bytes(8)), igmp.ALL_SYSTEMS)  # an IGMPv3 report
    bad_sum = bytearray(IGMPMessage.query().build())
    bad_sum[3] ^= 1
    peer.peer_sends_packet(IPv4Packet(PEER_IP, igmp.ALL_SYSTEMS, PROTO_IGMP, bytes(bad_sum), ttl=1))
    assert peer.dropped() == {
        DropReason.IGMP_MALFORMED: 1,
        DropReason.IGMP_UNHANDLED: 1,
        DropReason.IGMP_BAD_CHECKSUM: 1,
    }


def test_igmpv3_query_is_answered_as_a_v2_query() -> None:
    peer, _endpoint = joined()
    peer.at(30.0)
    igmp_sent(peer)
    peer_igmp(peer, IGMPMessage(0x11, 20, 0, bytes.fromhex("027d0000")), igmp.ALL_SYSTEMS)
    peer.at(32.0)
    assert [m for _, m in igmp_sent(peer)] == [IGMPMessage.v2_report(GROUP)]


@pytest.mark.parametrize("kind", KINDS)
def test_multicast_datagram_reaches_every_endpoint_on_the_port_once_joined(kind: LinkKind) -> None:
    net = hosts(kind)
    member = net.b.udp.open(0, 5000, reuse=True)
    bystander = net.b.udp.open(0, 5000, reuse=True)  # never joined: Linux's IP_MULTICAST_ALL
    bound_to_group = net.b.udp.open(GROUP, 5000, reuse=True)
    other_port = net.b.udp.open(0, 5001)
    sender = net.a.udp.open()
    sender.send_to(b"before", (GROUP, 5000), net.now)
    net.sim.run_for(0.1)
    assert member.pending == 0
    assert net.b.counters.drops[DropReason.IPV4_NOT_FOR_US] >= 1
    member.join(GROUP, 0, net.now)
    sender.send_to(b"after", (GROUP, 5000), net.now)
    net.sim.run_for(0.1)
    for endpoint in (member, bystander, bound_to_group):
        assert endpoint.receive() == (b"after", (A_IP, sender.port))
    assert other_port.pending == 0


def test_multicast_is_sent_with_ttl_1_unless_told() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open()
    endpoint.send_to(b"x", (GROUP, 5000), peer.now)
    endpoint.multicast_ttl = 8
    endpoint.send_to(b"y", (GROUP, 5000), peer.now)
    peer.poll()
    assert [p.ttl for p in peer.sent_packets(dst=None)] == [1, 8]


def test_igmp_timer_drives_the_simulation_clock() -> None:
    net = hosts()
    net.a.udp.open(0, 5000).join(GROUP, 0, net.now)
    net.sim.settle()
    deadline = net.sim.next_deadline()
    assert deadline is not None and 0.0 < deadline <= 10.0
    net.sim.run_for(11.0)
    assert net.a.counters.counters["igmp.reports_sent"] == 2
