"""The sans-IO resolver, driven by hand: explicit times, a seeded rng, answers written in tests.

Helpers speak from the test's point of view: ``expect_query`` takes the one datagram the resolver
wants to send, ``server_sends`` hands it an answer for that query.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from pystack.dns.hosts import numeric_address
from pystack.dns.resolver import (
    BAD_NAME,
    EMPTY_NAME,
    MALFORMED,
    NAME_TOO_LONG,
    NO_SERVER,
    NOT_FOUND,
    REFUSED,
    SERVER_FAILURE,
    TIMEOUT,
    TOO_MANY_LOOKUPS,
    TRUNCATED,
    Lookup,
    Resolver,
    ResolverError,
    ResolverSettings,
    getaddrinfo_errno,
)
from pystack.stats import DropReason
from pystack.wire.addresses import ip_from_str
from pystack.wire.dns import (
    CLASS_IN,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_CNAME,
    TYPE_SOA,
    DNSMessage,
    DNSQuestion,
    DNSRecord,
    SOAData,
)

SERVER = (ip_from_str("10.0.0.1"), 53)
SECOND = (ip_from_str("10.0.0.9"), 53)
PEER = ip_from_str("10.0.0.2")
OTHER = ip_from_str("10.0.0.3")


class Sent:
    """One datagram the resolver sent, parsed."""

    def __init__(self, payload: bytes, server: tuple[int, int], source_port: int) -> None:
        self.message = DNSMessage.parse(payload)
        self.server = server
        self.source_port = source_port


def make_resolver(seed: int = 7, **overrides: Any) -> Resolver:
    overrides.setdefault("servers", [SERVER])
    return Resolver(ResolverSettings(**overrides), random.Random(seed))


def expect_sent(resolver: Resolver, now: float) -> list[Sent]:
    return [Sent(*datagram) for datagram in resolver.datagrams_to_send(now)]


def expect_query(resolver: Resolver, now: float) -> Sent:
    sent = expect_sent(resolver, now)
    assert len(sent) == 1, sent
    return sent[0]


def expect_nothing(resolver: Resolver, now: float) -> None:
    assert resolver.datagrams_to_send(now) == []


def a(name: str, address: int, ttl: int = 300) -> DNSRecord:
    return DNSRecord(name, TYPE_A, CLASS_IN, ttl, address)


def cname(name: str, target: str, ttl: int = 300) -> DNSRecord:
    return DNSRecord(name, TYPE_CNAME, CLASS_IN, ttl, target)


def soa(minimum: int, ttl: int = 3600) -> DNSRecord:
    data = SOAData("ns.sim", "hostmaster.sim", 1, 3600, 600, 86400, minimum)
    return DNSRecord("sim", TYPE_SOA, CLASS_IN, ttl, data)


def server_sends(
    resolver: Resolver,
    query: Sent,
    records: list[DNSRecord] | tuple[DNSRecord, ...] = (),
    now: float = 0.0,
    rcode: int = 0,
    **changes: Any,
) -> Lookup | None:
    reply = DNSMessage.answer_for(query.message, records, rcode, recursion_available=True)
    reply = reply._replace(**changes)
    return resolver.process_response(reply.build(), query.server, query.source_port, now)


def reason(lookup: Lookup) -> str:
    assert lookup.done and lookup.error is not None, lookup
    return lookup.error.reason


# --- answered without a query ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.2", "10.0.0.2"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("010.0.0.1", "8.0.0.1"),
        ("4294967295", "255.255.255.255"),
        ("1.2.3.4 trailing", "1.2.3.4"),
        ("0", "0.0.0.0"),
    ],
)
def test_numeric_forms_of_ip4addr_aton(text: str, address: str) -> None:
    assert numeric_address(text) == ip_from_str(address)


@pytest.mark.parametrize(
    "text", ["256.1.1.1", "1.2.3.4.5", "08.1.1.1", "1.2.65536", "1.2.3.", "a.b.c.d", "", " 1.2.3.4"]
)
def test_not_numeric(text: str) -> None:
    assert numeric_address(text) is None


def test_numeric_name_is_done_without_a_datagram() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("10.0.0.2", now=0.0)
    assert (lookup.done, lookup.addresses, lookup.error) == (True, [PEER], None)
    expect_nothing(resolver, 0.0)
    assert resolver.next_deadline() is None


def test_hosts_table_is_case_insensitive_and_localhost_is_loopback() -> None:
    resolver = make_resolver(hosts={"Peer.Sim": PEER})
    assert resolver.resolve("peer.SIM.", 0.0).addresses == [PEER]
    assert resolver.resolve("LocalHost", 0.0).addresses == [ip_from_str("127.0.0.1")]
    expect_nothing(resolver, 0.0)


def test_hosts_table_can_override_localhost() -> None:
    resolver = make_resolver(hosts={"localhost": PEER})
    assert resolver.resolve("localhost", 0.0).addresses == [PEER]


@pytest.mark.parametrize(
    ("name", "why", "errno"),
    [
        ("", EMPTY_NAME, -16),
        (".", EMPTY_NAME, -16),
        ("x" * 300, NAME_TOO_LONG, -16),
        (".".join(["x" * 63] * 4), NAME_TOO_LONG, -16),
        ("a..b", BAD_NAME, -2),
        ("x" * 64 + ".com", BAD_NAME, -2),
    ],
)
def test_bad_names_fail_at_once(name: str, why: str, errno: int) -> None:
    resolver = make_resolver()
    lookup = resolver.resolve(name, 0.0)
    assert reason(lookup) == why
    assert lookup.error is not None and getaddrinfo_errno(lookup.error) == errno
    expect_nothing(resolver, 0.0)


def test_no_server_fails_at_once_with_err_val() -> None:
    resolver = make_resolver(servers=[])
    lookup = resolver.resolve("peer.sim", 0.0)
    assert reason(lookup) == NO_SERVER
    assert lookup.error is not None and getaddrinfo_errno(lookup.error) == -6


def test_errno_mapping() -> None:
    for why in (NOT_FOUND, TIMEOUT, MALFORMED, REFUSED, SERVER_FAILURE, TRUNCATED, BAD_NAME):
        assert getaddrinfo_errno(ResolverError(why, "x")) == -2
    assert getaddrinfo_errno(ResolverError(TOO_MANY_LOOKUPS, "x")) == -1
    assert getaddrinfo_errno(ResolverError(EMPTY_NAME, "")) == -16


# --- the query -------------------------------------------------------------------------------


def test_query_asks_for_a_with_recursion_desired() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("Peer.Sim", 0.0)
    assert not lookup.done
    query = expect_query(resolver, 0.0)
    assert query.server == SERVER
    assert 49152 <= query.source_port <= 65535
    message = query.message
    assert (message.qr, message.rd, message.opcode) == (False, True, 0)
    assert message.questions == (DNSQuestion("peer.sim", TYPE_A, CLASS_IN),)
    expect_nothing(resolver, 0.0)


def test_ids_and_source_ports_are_random_from_the_rng() -> None:
    first, second = make_resolver(seed=1), make_resolver(seed=1)
    first.resolve("one.sim", 0.0)
    first.resolve("two.sim", 0.0)
    one, two = expect_sent(first, 0.0)
    assert (one.message.id, one.source_port) != (two.message.id, two.source_port)
    assert one.source_port != two.source_port
    second.resolve("one.sim", 0.0)
    replay = expect_query(second, 0.0)
    assert (replay.message.id, replay.source_port) == (one.message.id, one.source_port)
    other = make_resolver(seed=2)
    other.resolve("one.sim", 0.0)
    assert expect_query(other, 0.0).source_port != one.source_port


def test_same_name_twice_shares_one_query() -> None:
    resolver = make_resolver()
    first = resolver.resolve("peer.sim", 0.0)
    assert resolver.resolve("PEER.sim.", 0.1) is first
    query = expect_query(resolver, 0.1)
    assert server_sends(resolver, query, [a("peer.sim", PEER)]) is first
    assert first.addresses == [PEER]


# --- answers ---------------------------------------------------------------------------------


def test_answer_resolves_with_every_address_in_order() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    query = expect_query(resolver, 0.0)
    server_sends(resolver, query, [a("PEER.sim", PEER), a("peer.sim", OTHER)], now=0.05)
    assert (lookup.done, lookup.addresses, lookup.error) == (True, [PEER, OTHER], None)
    assert resolver.in_flight() == 0 and resolver.next_deadline() is None
    assert resolver.statistics.counters["dns.lookups_resolved"] == 1


def test_cname_chain_inside_the_answer_is_followed() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("www.sim", 0.0)
    query = expect_query(resolver, 0.0)
    records = [cname("www.sim", "cdn.sim"), cname("cdn.sim", "edge.sim"), a("edge.sim", PEER)]
    server_sends(resolver, query, records)
    assert (lookup.addresses, lookup.canonical_name) == ([PEER], "edge.sim")
    expect_nothing(resolver, 0.0)


def test_unrelated_addresses_in_the_answer_are_not_taken() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("www.sim", 0.0)
    server_sends(resolver, expect_query(resolver, 0.0), [a("evil.sim", OTHER)])
    assert reason(lookup) == NOT_FOUND


def test_cname_only_answer_queries_the_target() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("www.sim", 0.0)
    first = expect_query(resolver, 0.0)
    assert server_sends(resolver, first, [cname("www.sim", "Edge.Other")], now=0.1) is None
    assert not lookup.done
    second = expect_query(resolver, 0.1)
    assert second.message.questions[0].name == "edge.other"
    assert (second.message.id, second.source_port) != (first.message.id, first.source_port)
    # The first query is over: its port no longer accepts anything.
    assert server_sends(resolver, first, [a("www.sim", OTHER)]) is None
    assert resolver.statistics.counters["dns.unexpected_port"] == 1
    server_sends(resolver, second, [a("edge.other", PEER)], now=0.2)
    assert (lookup.addresses, lookup.canonical_name) == ([PEER], "edge.other")
    assert resolver.resolve("www.sim", 1.0).addresses == [PEER]  # cached under the asked name


def test_cname_chain_longer_than_the_bound_fails() -> None:
    resolver = make_resolver(max_cname=3)
    lookup = resolver.resolve("n0.sim", 0.0)
    chain = [cname(f"n{i}.sim", f"n{i + 1}.sim") for i in range(4)] + [a("n4.sim", PEER)]
    server_sends(resolver, expect_query(resolver, 0.0), chain)
    assert reason(lookup) == NOT_FOUND


def test_cname_loop_fails() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("a.sim", 0.0)
    server_sends(
        resolver, expect_query(resolver, 0.0), [cname("a.sim", "b.sim"), cname("b.sim", "a.sim")]
    )
    assert reason(lookup) == NOT_FOUND
    assert resolver.in_flight() == 0


def test_requeries_count_towards_the_cname_bound() -> None:
    resolver = make_resolver(max_cname=2)
    lookup = resolver.resolve("n0.sim", 0.0)
    for i in range(2):
        server_sends(resolver, expect_query(resolver, 0.0), [cname(f"n{i}.sim", f"n{i + 1}.sim")])
    server_sends(resolver, expect_query(resolver, 0.0), [cname("n2.sim", "n3.sim")])
    assert reason(lookup) == NOT_FOUND


def test_nxdomain_is_not_found() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("nope.sim", 0.0)
    server_sends(resolver, expect_query(resolver, 0.0), rcode=RCODE_NXDOMAIN)
    assert reason(lookup) == NOT_FOUND
    assert lookup.error is not None and getaddrinfo_errno(lookup.error) == -2


def test_nodata_is_not_found() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    server_sends(resolver, expect_query(resolver, 0.0), authorities=(soa(30),))
    assert reason(lookup) == NOT_FOUND


@pytest.mark.parametrize(
    ("rcode", "why"),
    [(RCODE_SERVFAIL, SERVER_FAILURE), (RCODE_REFUSED, REFUSED), (4, SERVER_FAILURE)],
)
def test_error_rcode_with_one_server_fails(rcode: int, why: str) -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    server_sends(resolver, expect_query(resolver, 0.0), rcode=rcode)
    assert reason(lookup) == why


def test_servfail_moves_on_to_the_next_server() -> None:
    resolver = make_resolver(servers=[SERVER, SECOND])
    lookup = resolver.resolve("peer.sim", 0.0)
    first = expect_query(resolver, 0.0)
    server_sends(resolver, first, rcode=RCODE_SERVFAIL, now=0.1)
    second = expect_query(resolver, 0.1)
    assert second.server == SECOND
    assert server_sends(resolver, first, [a("peer.sim", OTHER)]) is None  # the old server: ignored
    server_sends(resolver, second, [a("peer.sim", PEER)], now=0.2)
    assert lookup.addresses == [PEER]
    assert resolver.statistics.counters["dns.wrong_server"] == 1


def test_truncated_answer_fails() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    server_sends(resolver, expect_query(resolver, 0.0), [a("peer.sim", PEER)], tc=True)
    assert reason(lookup) == TRUNCATED


# --- RFC 5452: answers that do not match are ignored and counted -------------------------------


def test_mismatched_answers_are_ignored_and_counted() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    query = expect_query(resolver, 0.0)
    good = DNSMessage.answer_for(query.message, [a("peer.sim", PEER)]).build()
    wrong_id = DNSMessage.answer_for(
        query.message._replace(id=query.message.id ^ 1), [a("peer.sim", OTHER)]
    )
    wrong_name = query.message._replace(questions=(DNSQuestion("evil.sim"),))
    wrong_type = query.message._replace(questions=(DNSQuestion("peer.sim", 28),))
    port, server = query.source_port, query.server
    assert resolver.process_response(wrong_id.build(), server, port, 0.1) is None
    assert resolver.process_response(good, SECOND, port, 0.1) is None
    assert resolver.process_response(good, (SERVER[0], 5353), port, 0.1) is None
    assert resolver.process_response(good, server, port ^ 1, 0.1) is None
    for forged in (wrong_name, wrong_type, query.message):  # the last: our own query echoed
        reply = (
            forged
            if forged is query.message
            else DNSMessage.answer_for(forged, [a("peer.sim", OTHER)])
        )
        assert resolver.process_response(reply.build(), server, port, 0.1) is None
    assert not lookup.done
    counters = resolver.statistics.counters
    assert counters["dns.wrong_id"] == 1
    assert counters["dns.wrong_server"] == 2
    assert counters["dns.unexpected_port"] == 1
    assert counters["dns.wrong_question"] == 3
    assert resolver.process_response(good, server, port, 0.2) is lookup
    assert lookup.addresses == [PEER]


def test_malformed_answer_with_our_id_is_an_error() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    query = expect_query(resolver, 0.0)
    garbage = query.message.id.to_bytes(2, "big") + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xc0"
    assert resolver.process_response(garbage, query.server, query.source_port, 0.1) is lookup
    assert reason(lookup) == MALFORMED
    assert resolver.statistics.drops[DropReason.DNS_MALFORMED] == 1


def test_malformed_datagram_without_our_id_is_ignored() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    query = expect_query(resolver, 0.0)
    other_id = ((query.message.id + 1) & 0xFFFF).to_bytes(2, "big")
    for junk in (b"", b"\x00", other_id + b"\x81\x80"):
        assert resolver.process_response(junk, query.server, query.source_port, 0.1) is None
    assert not lookup.done
    assert resolver.statistics.malformed["dns.truncated"] == 3


# --- timers ----------------------------------------------------------------------------------


def _run_until_done(
    resolver: Resolver, lookup: Lookup, limit: float = 60.0
) -> list[tuple[float, tuple[int, int]]]:
    """Jump from deadline to deadline; the (time, server) of every transmission."""
    sent = []
    now = 0.0
    while not lookup.done:
        resolver.run_timers(now)
        sent += [(now, server) for _, server, _ in resolver.datagrams_to_send(now)]
        deadline = resolver.next_deadline()
        if deadline is None:
            break
        now = deadline
        assert now <= limit
    assert resolver.next_deadline() is None
    return sent


def test_retries_like_lwip_then_timeout() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    sent = _run_until_done(resolver, lookup)
    assert sent == [(0.0, SERVER), (1.0, SERVER), (2.0, SERVER), (4.0, SERVER)]
    assert reason(lookup) == TIMEOUT
    assert resolver.statistics.counters["dns.retransmissions"] == 3


def test_retransmissions_keep_id_and_port_and_a_late_answer_counts() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    first = expect_query(resolver, 0.0)
    resolver.run_timers(0.999)
    expect_nothing(resolver, 0.999)
    assert resolver.next_deadline() == 1.0
    resolver.run_timers(1.0)
    again = expect_query(resolver, 1.0)
    assert (again.message, again.source_port) == (first.message, first.source_port)
    server_sends(resolver, first, [a("peer.sim", PEER)], now=1.5)
    assert lookup.addresses == [PEER]


def test_each_server_gets_its_tries() -> None:
    resolver = make_resolver(servers=[SERVER, SECOND], timeout=0.5, tries=2)
    lookup = resolver.resolve("peer.sim", 0.0)
    sent = _run_until_done(resolver, lookup)
    assert sent == [(0.0, SERVER), (0.5, SERVER), (1.0, SECOND), (1.5, SECOND)]
    assert reason(lookup) == TIMEOUT


def test_cancel_forgets_the_query() -> None:
    resolver = make_resolver()
    lookup = resolver.resolve("peer.sim", 0.0)
    query = expect_query(resolver, 0.0)
    resolver.cancel(lookup)
    assert resolver.next_deadline() is None
    assert server_sends(resolver, query, [a("peer.sim", PEER)]) is None
    assert not lookup.done


# --- caches ----------------------------------------------------------------------------------


def _resolve_answered(
    resolver: Resolver, name: str, now: float, records: list[DNSRecord], **changes: Any
) -> Lookup:
    lookup = resolver.resolve(name, now)
    server_sends(resolver, expect_query(resolver, now), records, now=now, **changes)
    assert lookup.done
    return lookup


def test_positive_cache_honours_the_ttl() -> None:
    resolver = make_resolver()
    _resolve_answered(resolver, "peer.sim", 0.0, [a("peer.sim", PEER, ttl=60)])
    hit = resolver.resolve("PEER.sim", 59.9)
    assert hit.addresses == [PEER]
    expect_nothing(resolver, 59.9)
    assert resolver.statistics.counters["dns.cache_hits"] == 1
    assert not resolver.resolve("peer.sim", 60.0).done
    expect_query(resolver, 60.0)


def test_chain_ttl_is_the_smallest_and_clamped() -> None:
    resolver = make_resolver(max_ttl=100.0)
    _resolve_answered(
        resolver,
        "www.sim",
        0.0,
        [cname("www.sim", "peer.sim", ttl=50), a("peer.sim", PEER, ttl=9000)],
    )
    assert resolver.resolve("www.sim", 49.0).done
    assert not resolver.resolve("www.sim", 50.0).done
    resolver = make_resolver(max_ttl=100.0)
    _resolve_answered(
        resolver, "peer.sim", 0.0, [a("peer.sim", PEER, ttl=0x80000000)]
    )  # RFC 2181: 0
    assert not resolver.resolve("peer.sim", 0.0).done
    resolver = make_resolver(max_ttl=100.0)
    _resolve_answered(resolver, "peer.sim", 0.0, [a("peer.sim", PEER, ttl=9000)])
    assert resolver.resolve("peer.sim", 99.0).done
    assert not resolver.resolve("peer.sim", 100.0).done


def test_zero_ttl_is_cached_only_with_a_minimum() -> None:
    resolver = make_resolver()
    _resolve_answered(resolver, "peer.sim", 0.0, [a("peer.sim", PEER, ttl=0)])
    assert not resolver.resolve("peer.sim", 0.0).done
    resolver = make_resolver(min_ttl=5.0)
    _resolve_answered(resolver, "peer.sim", 0.0, [a("peer.sim", PEER, ttl=0)])
    assert resolver.resolve("peer.sim", 4.0).done


def test_negative_answers_are_cached_for_the_soa_minimum() -> None:
    resolver = make_resolver()
    _resolve_answered(resolver, "nope.sim", 0.0, [], rcode=RCODE_NXDOMAIN, authorities=(soa(30),))
    cached = resolver.resolve("nope.sim", 29.0)
    assert reason(cached) == NOT_FOUND
    expect_nothing(resolver, 29.0)
    assert not resolver.resolve("nope.sim", 30.0).done


def test_negative_ttl_is_capped_and_needs_an_soa() -> None:
    resolver = make_resolver()
    _resolve_answered(
        resolver, "nope.sim", 0.0, [], rcode=RCODE_NXDOMAIN, authorities=(soa(86400, ttl=86400),)
    )
    assert resolver.resolve("nope.sim", 299.0).done
    assert not resolver.resolve("nope.sim", 300.0).done
    resolver = make_resolver()
    _resolve_answered(resolver, "nope.sim", 0.0, [], rcode=RCODE_NXDOMAIN)
    assert not resolver.resolve("nope.sim", 0.0).done


def test_nodata_is_cached_negatively() -> None:
    resolver = make_resolver()
    _resolve_answered(resolver, "peer.sim", 0.0, [], authorities=(soa(10),))
    assert reason(resolver.resolve("peer.sim", 5.0)) == NOT_FOUND


def test_cache_is_lru_and_bounded() -> None:
    resolver = make_resolver(cache_size=2)
    for index, name in enumerate(("one.sim", "two.sim")):
        _resolve_answered(resolver, name, 0.0, [a(name, PEER + index)])
    assert resolver.resolve("one.sim", 1.0).done  # touch: two.sim is now the oldest
    _resolve_answered(resolver, "three.sim", 1.0, [a("three.sim", OTHER)])
    assert resolver.resolve("one.sim", 2.0).done
    assert resolver.resolve("three.sim", 2.0).done
    assert not resolver.resolve("two.sim", 2.0).done
    assert resolver.statistics.counters["dns.cache_evictions"] == 1


# --- bounds ----------------------------------------------------------------------------------


def test_lookups_in_flight_are_bounded() -> None:
    resolver = make_resolver(max_in_flight=4)
    pending = [resolver.resolve(f"n{i}.sim", 0.0) for i in range(4)]
    assert not any(lookup.done for lookup in pending)
    refused = resolver.resolve("n4.sim", 0.0)
    assert reason(refused) == TOO_MANY_LOOKUPS
    assert refused.error is not None and getaddrinfo_errno(refused.error) == -1
    assert len(expect_sent(resolver, 0.0)) == 4
    assert resolver.in_flight() == 4


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ResolverSettings(tries=0)
    with pytest.raises(ValueError):
        ResolverSettings(source_ports=(1000, 1001), max_in_flight=3)
