"""Every counter name and every malformed-packet reason, declared once with its meaning.

``Statistics.counters`` (``pystack/stats.py``) accepts only the names in ``COUNTERS``:
counting or reading any other name raises ``KeyError``, so a misspelt name fails at once
instead of reading 0. ``Statistics.malformed`` accepts only the codec reasons in
``MALFORMED_REASONS`` (the first argument of every ``MalformedPacket`` raised in
``pystack/wire``). Names built at run time (TCP states, ICMP types, DHCP message types...) are
generated here from the same tables the code builds them from.

``COUNTER_GROUPS`` keeps the names grouped by layer, in the order a ``--stats`` view shows them.
A new counter is one line in its group; ``tests/test_counters.py`` fails while a name counted
anywhere in the source is missing here.
Entry points: ``DECLARED``, ``COUNTERS``, ``COUNTER_GROUPS``, ``MALFORMED_REASONS``, ``SESSION_SERVICES``.
"""

from __future__ import annotations

from pystack.stats import DeclaredNames
from pystack.tcp.state import TCPState
from pystack.wire import dhcp, dns, icmpv4

# ICMP types with a name (RFC 792); the others are counted by number alone.
_ICMP_TYPE_NAMES = {
    icmpv4.ECHO_REPLY: "echo reply",
    icmpv4.DESTINATION_UNREACHABLE: "destination unreachable",
    icmpv4.SOURCE_QUENCH: "source quench",
    icmpv4.REDIRECT: "redirect",
    icmpv4.ECHO_REQUEST: "echo request",
    icmpv4.TIME_EXCEEDED: "time exceeded",
    icmpv4.PARAMETER_PROBLEM: "parameter problem",
}


def _icmp_type(kind: int) -> str:
    name = _ICMP_TYPE_NAMES.get(kind)
    return f"type {kind} ({name})" if name else f"type {kind}"


# The session services (``pystack/services``) count ``<service name>.<event>``.
SESSION_SERVICES = ("http", "https", "mqtt", "tlsecho")
_SESSION_EVENTS = {
    "refused": "connections aborted at once: max_connections sessions were open, all active",
    "evicted": "sessions reset to make room for a new connection (the least progress first)",
    "handshake_timeouts": "connections closed: the TLS handshake did not finish in time",
    "internal_errors": "sessions ended by an exception in the service's own code",
    "tls_handshakes": "TLS handshakes completed",
    "tls_truncated": "TLS streams ended by a FIN without close_notify",
    "tls_errors": "TLS sessions ended by a TLS error (handshake or record)",
}
_HTTP_EVENTS = {
    "requests": "requests whose head was parsed (a response follows)",
    "bad_requests": "requests that could not be framed (answered 4xx, then closed)",
    "bad_bodies": "requests with a malformed chunked body (the connection is closed)",
    "incomplete": "connections the client ended inside a request",
    "idle_closed": "idle keep-alive connections closed by the server",
    "timeouts": "request heads not complete in time (408) and responses nobody read (reset)",
    "body_timeouts": "request bodies slower than the minimum rate (408, or closed)",
    "tls_rejected": "connections closed at once: they sent TLS to the plain HTTP port",
}
_MQTT_EVENTS = {
    "connects": "CONNECTs accepted",
    "refused_protocol": "CONNECTs refused: unacceptable protocol name or level",
    "refused_identifier": "CONNECTs refused: identifier rejected",
    "connect_timeouts": "connections closed without a CONNECT in time",
    "keepalive_expired": "clients closed after 1.5 keep-alive periods of silence",
    "idle_closed": "keep-alive 0 clients closed after the idle bound without traffic",
    "disconnects": "DISCONNECTs received",
    "takeovers": "sessions taken over by a new connection with the same client identifier",
    "sessions_forgotten": "disconnected persistent sessions dropped to make room",
    "protocol_errors": "connections closed for a protocol violation",
    "wills": "will messages published after an abnormal disconnect",
    "published": "messages published to the broker (PUBLISH and wills)",
    "delivered": "QoS 1 messages sent to subscribers",
    "dropped": "messages dropped because a subscriber's queue was full",
    "retained_dropped": "retained messages refused: the retained store is full",
    "bad_filters": "SUBSCRIBE topic filters refused as invalid",
    "subscriptions_refused": "SUBSCRIBE topic filters refused: too many subscriptions",
    "unknown_acks": "PUBACK, PUBREC or PUBCOMP for no message in flight",
}
_TLSECHO_EVENTS = {
    "timeouts": "sessions closed after the idle timeout without data",
}
_SERVICE_EVENTS = {
    "http": {**_SESSION_EVENTS, **_HTTP_EVENTS},
    "https": {**_SESSION_EVENTS, **_HTTP_EVENTS},
    "mqtt": {**_SESSION_EVENTS, **_MQTT_EVENTS},
    "tlsecho": {**_SESSION_EVENTS, **_TLSECHO_EVENTS},
}
assert tuple(_SERVICE_EVENTS) == SESSION_SERVICES


COUNTER_GROUPS: dict[str, dict[str, str]] = {
    "link": {
        "link.outbox_overflow": "frames not queued for the link: the outbox was full",
    },
    "arp": {
        "arp.received": "ARP packets received (well-formed)",
        "arp.requests_sent": "ARP requests sent to resolve a neighbour",
        "arp.replies_sent": "ARP replies sent to a request for our address",
        "arp.gratuitous_sent": "gratuitous ARP announcements sent",
        "arp.not_for_us": "ARP packets about other hosts' addresses (not answered)",
        "arp.address_changed": "known neighbours seen with a new MAC address",
        "arp.address_conflicts": "ARP packets from another host claiming our address",
        "arp.pending_released": "packets sent after their neighbour was resolved",
        "arp.expired": "cache entries removed after going stale",
        "arp.evicted": "cache entries evicted to make room",
        "arp.resolution_failed": "neighbours given up on after all retries",
    },
    "ipv4": {
        "ipv4.received": "IPv4 packets received (well-formed, the link's and looped back)",
        "ipv4.sent": "IPv4 packets sent (before fragmentation)",
        "ipv4.fragments_received": "fragments taken into reassembly",
        "ipv4.reassembled": "datagrams reassembled from fragments",
        "ipv4.fragments_sent": "fragments sent for packets larger than the MTU",
        "ipv4.segmentation_offloaded": "oversized TCP packets handed to the link to segment",
        "ipv4.offloaded_frames_received": "frames whose checksums the link already verified",
        "ipv4.unconfigured_accepted": "unicast UDP accepted while unconfigured (DHCP replies)",
        "ipv4.address_changes": "interface address changes (DHCP or set)",
    },
    "icmp": {
        "icmp.echo_requests_sent": "echo requests sent (ping)",
        "icmp.echo_replies_sent": "echo replies sent",
        "icmp.errors_suppressed": "ICMP errors not sent (RFC 1122 3.2.2 forbids them)",
        "icmp.errors_unclaimed": "ICMP errors about a protocol nobody listens for",
        **{
            f"icmp.received.type{kind}": f"ICMP messages of {_icmp_type(kind)} received"
            for kind in range(256)
        },
        **{
            f"icmp.errors_sent.type{kind}": f"ICMP errors of {_icmp_type(kind)} sent"
            for kind in sorted(icmpv4.ERROR_TYPES)
        },
    },
    "igmp": {
        "igmp.received": "IGMP messages received (well-formed)",
        **{
            f"igmp.queries_received.v{version}": f"IGMPv{version} membership queries received"
            for version in (1, 2, 3)
        },
        "igmp.queries_not_for_us": "group-specific queries for groups we are not in",
        "igmp.reports_sent": "membership reports sent",
        "igmp.reports_heard": "other hosts' reports for groups we have no report pending for",
        "igmp.reports_suppressed": "our pending reports cancelled by another host's report",
        "igmp.leaves_sent": "leave group messages sent",
        "igmp.leaves_heard": "leave group messages from other hosts (ignored)",
        "igmp.groups_joined": "multicast groups joined",
        "igmp.groups_left": "multicast groups left",
    },
    "tcp": {
        "tcp.segments_received": "TCP segments received (well-formed, unicast)",
        "tcp.segments_sent": "TCP segments sent",
        "tcp.active_opens": "connections opened by connect()",
        "tcp.passive_opens": "connections opened by a SYN to a listener",
        "tcp.refused": "connect() attempts answered with RST (ECONNREFUSED)",
        "tcp.resets_sent": "RST segments sent",
        "tcp.resets_received": "acceptable RST segments received",
        "tcp.bytes_received": "payload bytes delivered to receive buffers",
        "tcp.bytes_discarded": "payload bytes received after shutdown(SHUT_RD) (discarded)",
        "tcp.bytes_acked": "bytes of our data acknowledged by peers",
        "tcp.out_of_order_segments": "segments that arrived ahead of RCV.NXT",
        "tcp.urgent_received": "segments with URG set (the data is delivered inline)",
        "tcp.retransmits": "segments retransmitted (any cause)",
        "tcp.timeouts": "retransmission timer expiries",
        "tcp.syn_retransmits": "retransmission timeouts during the handshake",
        "tcp.duplicate_acks": "duplicate ACKs received (RFC 5681)",
        "tcp.fast_retransmits": "fast retransmits (entries into loss recovery)",
        "tcp.partial_acks": "partial ACKs during loss recovery (RFC 6582)",
        "tcp.recoveries_completed": "loss recoveries completed",
        "tcp.window_probes": "zero-window probes sent",
        "tcp.sws_override_sends": "sends under SWS avoidance forced by the override timeout",
        "tcp.keepalive_probes": "keep-alive probes sent",
        "tcp.keepalive_timeouts": "connections dropped after unanswered keep-alive probes",
        "tcp.persist_timeouts": "connections dropped after unanswered zero-window probes",
        "tcp.fin_wait_2_timeouts": "connections closed after the FIN-WAIT-2 timeout",
        "tcp.closed_with_unread_data": "close() with unread data (the connection is reset)",
        "tcp.challenge_acks_sent": "challenge ACKs sent (RFC 5961)",
        "tcp.challenge_acks_suppressed": "challenge ACKs not sent: rate limit",
        "tcp.invalid_acks_sent": "ACKs sent to segments out of window or failing PAWS",
        "tcp.invalid_acks_suppressed": "ACKs to unacceptable segments not sent: rate limit",
        "tcp.unsent_acks_sent": "ACKs sent to segments acknowledging unsent data",
        "tcp.unsent_acks_suppressed": "ACKs to ACKs of unsent data not sent: rate limit",
        "tcp.reply_resets_sent": "RSTs sent to segments for no connection or with a bad ACK",
        "tcp.reply_resets_suppressed": "RSTs to segments for no connection not sent: rate limit",
        "tcp.paws_disordered_acks": "reordered ACKs accepted despite PAWS (their SACK is used)",
        "tcp.wscale_clamped": "window scale options above 14 (14 is used, RFC 7323 2.3)",
        "tcp.syn_cookies_sent": "SYN-ACKs sent with a SYN cookie (SYN queue or table under pressure)",
        "tcp.time_wait_recycled": "TIME-WAIT entries ended early to make room in a full table",
        "tcp.closing_recycled": "closed connections still finishing, reset to make room in a full table",
        "tcp.connections_refused": "SYNs and cookie ACKs answered with RST: table or memory full",
        "tcp.syn_cookies_accepted": "connections established from a valid SYN cookie",
        "tcp.icmp_errors": "ICMP errors applied to a connection",
        "tcp.path_mtu_lowered": "connections whose MSS was lowered by ICMP fragmentation needed",
        **{
            f"tcp.state.{state.name.lower()}": f"connections that entered {state.value}"
            for state in TCPState
        },
    },
    "udp": {
        "udp.received": "UDP datagrams received (well-formed)",
        "udp.delivered": "UDP datagrams queued to an endpoint",
        "udp.sent": "UDP datagrams sent",
        "udp.send_no_route": "sends refused: no route to the destination",
        "udp.send_bad_source": "sends refused: the bound address is not the interface's",
        "udp.send_too_large": "sends refused (ENOMEM): more than one IPv4 packet carries",
        "udp.endpoints_opened": "UDP endpoints opened",
        "udp.icmp_errors": "ICMP errors recorded on a connected endpoint",
        "udp.icmp_errors_ignored": "ICMP errors for an endpoint that did not record them",
    },
    "usocket": {
        "usocket.accept_queue_full": "connections aborted: the listening socket's backlog was full",
        "usocket.callback_queue_full": "socket callbacks lost: micropython.schedule's queue full",
    },
    "dns": {
        "dns.queries_sent": "DNS queries sent (retransmissions included)",
        "dns.retransmissions": "DNS queries retransmitted after a timeout",
        "dns.lookups_resolved": "lookups answered with addresses",
        "dns.lookups_failed": "lookups that failed (no such name, timeout, error)",
        "dns.too_many_lookups": "lookups refused: too many in flight",
        "dns.cache_hits": "lookups answered from the cache",
        "dns.cache_evictions": "cache entries evicted to make room",
        "dns.cname_requery": "queries sent again for the target of an unresolved alias",
        "dns.cname_limit": "lookups that followed too many aliases",
        "dns.error_rcode": "responses with an error RCODE other than NXDOMAIN",
        "dns.unexpected_port": "responses to a port no lookup waits on (ignored)",
        "dns.wrong_server": "responses from an address the query did not go to (ignored)",
        "dns.wrong_id": "responses with the wrong ID (ignored)",
        "dns.wrong_question": "responses that do not echo the question (ignored)",
        "dns.servers_from_dhcp": "times the DNS servers were taken from a DHCP lease",
        "dns.source_port_busy": "random source ports found in use (another is tried)",
        "dns.send_failed": "queries the UDP layer refused to send",
    },
    "dns.server": {
        "dns.server.queries": "messages received by the DNS server",
        "dns.server.responses_ignored": "responses received by the DNS server (ignored)",
        "dns.server.nxdomain": "queries answered NXDOMAIN",
        "dns.server.truncated": "answers truncated to 512 bytes (TC set)",
        **{
            f"dns.server.rcode_{rcode}": f"error responses with RCODE {rcode} ({name})"
            for rcode, name in enumerate(dns.RCODE_NAMES)
            if rcode
        },
    },
    "dhcp": {
        **{
            f"dhcp.{name.lower()}_sent": f"DHCP{name} messages sent by the client"
            for name in dhcp.MESSAGE_TYPE_NAMES.values()
        },
        "dhcp.offers_received": "DHCPOFFERs taken by the client",
        "dhcp.acks_received": "DHCPACKs taken by the client",
        "dhcp.naks_received": "DHCPNAKs taken by the client (it starts over)",
        "dhcp.request_gave_up": "DHCPREQUESTs unanswered after every attempt (back to DISCOVER)",
        "dhcp.lease_expired": "leases that ran out (the address is dropped)",
        "dhcp.send_failed": "client messages the UDP layer refused to send",
    },
    "dhcp.server": {
        **{
            f"dhcp.server.{name.lower()}_sent": f"DHCP{name} messages sent by the server"
            for name in dhcp.MESSAGE_TYPE_NAMES.values()
        },
        "dhcp.server.ignored_silent": "messages ignored while the server is silenced",
        "dhcp.server.other_server_chosen": "offers withdrawn: the client chose another server",
        "dhcp.server.released": "leases released by their client (DHCPRELEASE)",
        "dhcp.server.declined": "addresses declined by a client (DHCPDECLINE)",
        "dhcp.server.send_failed": "replies that could not be sent",
    },
    "services": {
        f"{service}.{event}": meaning
        for service, events in _SERVICE_EVENTS.items()
        for event, meaning in events.items()
    },
}

COUNTERS: dict[str, str] = {
    name: meaning for group in COUNTER_GROUPS.values() for name, meaning in group.items()
}
assert len(COUNTERS) == sum(map(len, COUNTER_GROUPS.values())), "a counter is declared twice"


# The reason of every ``MalformedPacket`` the codecs raise (``pystack/wire``), by layer.
MALFORMED_REASONS: dict[str, str] = {
    "ethernet.truncated": "frame shorter than an Ethernet header",
    "ethernet.not_ethertype": "802.3 length field where an EtherType belongs",
    "arp.truncated": "ARP packet shorter than its fixed part",
    "arp.unsupported": "ARP for other than Ethernet and IPv4",
    "arp.bad_operation": "ARP operation neither request nor reply",
    "address.bad_length": "IPv4 address field not 4 bytes long",
    "ipv4.truncated": "IPv4 packet shorter than its header or total length",
    "ipv4.bad_version": "IP version not 4",
    "ipv4.bad_header_length": "IPv4 header length below 20 bytes",
    "ipv4.bad_total_length": "IPv4 total length smaller than the header",
    "ipv4.bad_checksum": "IPv4 header checksum mismatch",
    "ipv4.reserved_flag": "IPv4 reserved flag set",
    "ipv4.fragment_too_large": "fragment reaching past 65535 bytes",
    "icmp.truncated": "ICMP message shorter than its header",
    "icmp.bad_checksum": "ICMP checksum mismatch",
    "icmp.bad_quote": "ICMP error without a valid quoted IPv4 header",
    "igmp.truncated": "IGMP message shorter than 8 bytes",
    "igmp.bad_checksum": "IGMP checksum mismatch",
    "igmp.bad_group": "IGMP group address not a multicast address",
    "igmp.bad_query_length": "IGMP query longer than 8 bytes, shorter than an IGMPv3 query",
    "tcp.truncated": "TCP segment shorter than its header",
    "tcp.bad_data_offset": "TCP data offset outside the segment",
    "tcp.bad_flags": "TCP SYN together with FIN or RST",
    "tcp.bad_option": "TCP option of a wrong or missing length",
    "tcp.bad_checksum": "TCP checksum mismatch",
    "udp.truncated": "UDP datagram shorter than its header",
    "udp.bad_length": "UDP length field disagrees with the packet",
    "udp.bad_checksum": "UDP checksum mismatch",
    "dns.truncated": "DNS message ending inside a name, question or record",
    "dns.bad_label_type": "DNS label of a reserved type",
    "dns.bad_pointer": "DNS compression pointer not strictly backwards, or into the header",
    "dns.pointer_loop": "DNS name with too many compression pointers",
    "dns.name_too_long": "DNS name longer than 255 bytes",
    "dns.bad_rdata_length": "DNS record data of the wrong length for its type",
    "dns.trailing_bytes": "bytes after the last DNS record",
    "dhcp.truncated": "DHCP message shorter than its fixed part",
    "dhcp.bad_op": "DHCP op neither BOOTREQUEST nor BOOTREPLY",
    "dhcp.bad_hardware_length": "DHCP hardware address length above 16",
    "dhcp.bad_cookie": "no DHCP magic cookie (plain BOOTP)",
    "dhcp.option_truncated": "DHCP option running past the end",
    "dhcp.bad_option_length": "DHCP option of the wrong length for its code",
    "dhcp.missing_end": "DHCP options without the end option",
    "dhcp.option_overload_unsupported": "DHCP option overload (option 52), not supported",
    "dhcp.bad_message_type": "DHCP message type option of value 0",
    "dhcp.bad_max_message_size": "DHCP maximum message size below 576",
}

# What ``Statistics`` is built with (``Stack`` and every other owner of counters pass this).
DECLARED = DeclaredNames(COUNTERS, MALFORMED_REASONS)
