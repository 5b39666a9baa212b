"""IGMPv2 host side (RFC 2236): group membership of the interface, reports, leaves, queries.

``IGMPHost`` keeps one reference-counted membership per group (the UDP endpoints that joined it)
and mirrors the joined groups into ``IPv4Layer.multicast_groups``, which is what makes the IP
layer accept datagrams to a group. Ethernet needs no filter programming: the interface already
accepts every multicast MAC and filters by IP group.

Per group, the RFC 2236 6 state machine: joining sends an unsolicited report at once and repeats
it after a random delay within the Unsolicited Report Interval; a query (general, or for the
group) starts a random delay within its Max Response Time, after which a report goes out; another
host's report for the group cancels ours (and clears the "last reporter" flag); leaving sends a
Leave Group to 224.0.0.2 when we were the last reporter. An IGMPv1 query puts the host in v1 mode
for the Version 1 Router Present Timeout: v1 reports, no leaves (RFC 2236 4).

It lives in ``ip/`` because IGMP is part of IP (RFC 1112), is created by the UDP layer (its only
user) and registers itself as ``ip.handlers[2]``. Sans-IO: delays come from the injected rng,
time from ``now``; reports leave through ``ip.send_packet``.
Entry points: ``IGMPHost.join``, ``leave``, ``process_packet``, ``run_timers``, ``next_deadline``.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pystack.stats import DropReason, Statistics
from pystack.wire import igmp
from pystack.wire.errors import MalformedPacket
from pystack.wire.igmp import IGMPMessage
from pystack.wire.ipv4 import PROTO_IGMP, IPv4Packet

if TYPE_CHECKING:
    from pystack.ip.interface import IPv4Layer

ROUTER_ALERT = b"\x94\x04\x00\x00"  # RFC 2113 IP option; RFC 2236 2 asks for it on every message
IGMP_TTL = 1  # RFC 2236 2: all IGMP messages are sent with TTL 1


@dataclass(frozen=True, slots=True)
class IGMPSettings:
    unsolicited_reports: int = 2  # RFC 2236 3: the report on join "repeated once or twice"
    unsolicited_report_interval: float = 10.0  # RFC 2236 8.10
    version1_router_present_timeout: float = 400.0  # RFC 2236 8.11
    max_groups: int = 256  # groups joined at once (lwIP MEMP_NUM_IGMP_GROUP; past it: ENOMEM)


class _Membership:
    __slots__ = ("deadline", "last_reporter", "unsolicited_left", "users")

    def __init__(self) -> None:
        self.users = 0
        self.deadline: float | None = None  # when the delayed report goes out (Delaying Member)
        self.last_reporter = False  # RFC 2236 6: "flag that we were the last host to report"
        self.unsolicited_left = 0  # unsolicited repeats still to send after joining


class IGMPHost:
    def __init__(
        self, ip: IPv4Layer, statistics: Statistics, settings: IGMPSettings, rng: random.Random
    ) -> None:
        self.ip = ip
        self.statistics = statistics
        self.settings = settings
        self.rng = rng
        self._groups: dict[int, _Membership] = {}
        self._version1_until = float("-inf")
        ip.handlers[PROTO_IGMP] = self.process_packet

    # -- membership ------------------------------------------------------------------------------
    def join(self, group: int, interface: int, now: float) -> None:
        """One more user of ``group`` on ``interface`` (0 or our address); OSError as lwIP maps
        its ERR_VAL (EINVAL) and ERR_MEM (ENOMEM)."""
        self._check(group, interface)
        membership = self._groups.get(group)
        if membership is None:
            if len(self._groups) >= self.settings.max_groups:
                raise OSError(errno.ENOMEM, "too many multicast groups")
            membership = self._groups[group] = _Membership()
            self.ip.multicast_groups.add(group)
            self.statistics.count("igmp.groups_joined")
            reports = self.settings.unsolicited_reports
            if reports > 0:  # RFC 2236 3: report at once, in case we are the first member
                membership.unsolicited_left = reports - 1
                self._report(group, membership, now)
        membership.users += 1

    def leave(self, group: int, interface: int, now: float) -> None:
        """One user fewer; the last one takes the interface out of the group."""
        self._check(group, interface)
        membership = self._groups.get(group)
        if membership is None:
            raise OSError(errno.EINVAL, "not a member of the group")
        membership.users -= 1
        if membership.users > 0:
            return
        del self._groups[group]
        self.ip.multicast_groups.discard(group)
        self.statistics.count("igmp.groups_left")
        # RFC 2236 3: leave only if we were the last to report; never to an IGMPv1 router.
        if membership.last_reporter and not self.version1_mode(now):
            self._send(IGMPMessage.leave(group), igmp.ALL_ROUTERS, now)
            self.statistics.count("igmp.leaves_sent")

    def _check(self, group: int, interface: int) -> None:
        if group >> 28 != 0xE or group == igmp.ALL_SYSTEMS:
            raise OSError(errno.EINVAL, "not a multicast group one can join")
        if interface not in (0, self.ip.address):
            raise OSError(errno.EINVAL, "no interface with that address")

    def is_member(self, group: int) -> bool:
        return group in self._groups

    def memberships(self) -> dict[int, int]:
        """Group -> number of users."""
        return {group: membership.users for group, membership in self._groups.items()}

    def version1_mode(self, now: float) -> bool:
        return now < self._version1_until

    # -- input -----------------------------------------------------------------------------------
    def process_packet(self, packet: IPv4Packet, now: float, broadcast: bool) -> None:
        try:
            message = IGMPMessage.parse(packet.payload, verify_checksum=not self.ip.trusted_frame)
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason, packet)
            return
        self.statistics.count("igmp.received")
        if message.is_query:
            self._process_query(message, now)
        elif message.type in (igmp.V2_MEMBERSHIP_REPORT, igmp.V1_MEMBERSHIP_REPORT):
            self._process_report(message)
        elif message.type == igmp.LEAVE_GROUP:
            self.statistics.count("igmp.leaves_heard")  # RFC 2236 3: for routers; hosts ignore
        else:
            self.statistics.drop(DropReason.IGMP_UNHANDLED, packet)

    def _process_query(self, message: IGMPMessage, now: float) -> None:
        self.statistics.count(f"igmp.queries_received.v{message.query_version}")
        if message.query_version == 1:  # RFC 2236 4: an IGMPv1 router is present
            self._version1_until = now + self.settings.version1_router_present_timeout
        max_delay = message.max_response_seconds
        if message.group:
            membership = self._groups.get(message.group)
            targets = [membership] if membership is not None else []
        else:
            targets = list(self._groups.values())
        for membership in targets:
            # RFC 2236 3: start a random delay in (0, Max Response Time]; a running timer is
            # reset only when the query asks for a quicker answer than it would give.
            if membership.deadline is None or membership.deadline - now > max_delay:
                membership.deadline = now + self.rng.uniform(0.0, max_delay)
        if not targets:
            self.statistics.count("igmp.queries_not_for_us")

    def _process_report(self, message: IGMPMessage) -> None:
        membership = self._groups.get(message.group)
        if membership is None or membership.deadline is None:
            self.statistics.count("igmp.reports_heard")
            return
        # RFC 2236 6, Delaying Member + "report received": stop the timer, clear the flag.
        membership.deadline = None
        membership.unsolicited_left = 0
        membership.last_reporter = False
        self.statistics.count("igmp.reports_suppressed")

    # -- output and timers -----------------------------------------------------------------------
    def _report(self, group: int, membership: _Membership, now: float) -> None:
        """Send a report now, then schedule the next unsolicited repeat if one is left."""
        if self.version1_mode(now):
            message = IGMPMessage.v1_report(group)
        else:
            message = IGMPMessage.v2_report(group)
        self._send(message, group, now)  # RFC 2236 3: a report goes to the group itself
        self.statistics.count("igmp.reports_sent")
        membership.last_reporter = True
        membership.deadline = None
        if membership.unsolicited_left > 0:
            membership.unsolicited_left -= 1
            interval = self.settings.unsolicited_report_interval
            membership.deadline = now + self.rng.uniform(0.0, interval)

    def _send(self, message: IGMPMessage, destination: int, now: float) -> None:
        ip = self.ip
        packet = IPv4Packet(
            ip.address,
            destination,
            PROTO_IGMP,
            message.build(),
            ttl=IGMP_TTL,
            identification=ip.next_identification(),
            options=ROUTER_ALERT,
        )
        ip.send_packet(packet, now)

    def run_timers(self, now: float) -> None:
        for group, membership in list(self._groups.items()):
            if membership.deadline is not None and membership.deadline <= now:
                self._report(group, membership, now)

    def next_deadline(self) -> float | None:
        if not self._groups:  # (asked after every poll; almost always no group)
            return None
        deadlines = [m.deadline for m in self._groups.values() if m.deadline is not None]
        return min(deadlines) if deadlines else None
