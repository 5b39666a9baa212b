"""The authoritative server core alone, then with the resolver (datagrams handed over directly)."""

from __future__ import annotations

import random
from typing import Any

from pystack.dns.resolver import NOT_FOUND, TRUNCATED, Lookup, Resolver, ResolverSettings
from pystack.dns.server import DNSServer
from pystack.stats import DropReason
from pystack.wire.addresses import ip_from_str
from pystack.wire.dns import (
    CLASS_IN,
    RCODE_FORMERR,
    RCODE_NOERROR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_SOA,
    UDP_PAYLOAD_LIMIT,
    DNSMessage,
    DNSQuestion,
    DNSRecord,
)

PEER = ip_from_str("10.0.0.2")
EXAMPLE = ip_from_str("93.184.216.34")
SERVER_ADDRESS = (ip_from_str("10.0.0.1"), 53)


def make_server() -> DNSServer:
    return DNSServer(
        {
            "peer.sim": PEER,
            "Example.com": EXAMPLE,
            "pool.sim": [ip_from_str(f"10.1.0.{i}") for i in range(1, 4)],
            "big.sim": [ip_from_str("10.2.0.0") + i for i in range(100)],
        },
        {"www.sim": "peer.sim", "web.sim": "www.sim", "away.sim": "edge.elsewhere"},
        ttl=120,
        negative_ttl=60,
        origin="sim",
    )


def ask(server: DNSServer, name: str, qtype: int = TYPE_A, **changes: Any) -> DNSMessage:
    query = DNSMessage.query(0x4242, name, qtype)._replace(**changes)
    reply = server.answer(query.build())
    assert reply is not None
    assert len(reply) <= UDP_PAYLOAD_LIMIT
    return DNSMessage.parse(reply)


def test_a_query_is_answered_authoritatively() -> None:
    reply = ask(make_server(), "peer.sim")
    assert (reply.id, reply.qr, reply.aa, reply.rd, reply.ra, reply.tc) == (
        0x4242, True, True, True, False, False,
    )  # fmt: skip
    assert reply.rcode == RCODE_NOERROR
    assert reply.questions == (DNSQuestion("peer.sim", TYPE_A, CLASS_IN),)
    assert reply.answers == (DNSRecord("peer.sim", TYPE_A, CLASS_IN, 120, PEER),)
    assert reply.authorities == ()


def test_names_match_case_insensitively_and_the_question_case_is_echoed() -> None:
    reply = ask(make_server(), "EXAMPLE.com")
    assert reply.questions[0].name == "EXAMPLE.com"
    assert reply.answers == (DNSRecord("EXAMPLE.com", TYPE_A, CLASS_IN, 120, EXAMPLE),)


def test_every_address_of_a_name() -> None:
    reply = ask(make_server(), "pool.sim")
    assert [record.data for record in reply.answers] == [
        ip_from_str(f"10.1.0.{i}") for i in (1, 2, 3)
    ]


def test_unknown_name_is_nxdomain_with_an_soa() -> None:
    reply = ask(make_server(), "nope.sim")
    assert (reply.rcode, reply.aa, reply.answers) == (RCODE_NXDOMAIN, True, ())
    (soa,) = reply.authorities
    assert (soa.name, soa.rtype, soa.ttl) == ("sim", TYPE_SOA, 60)
    assert soa.data.minimum == 60  # type: ignore[union-attr]


def test_other_type_of_a_known_name_is_nodata() -> None:
    reply = ask(make_server(), "peer.sim", TYPE_MX)
    assert (reply.rcode, reply.answers) == (RCODE_NOERROR, ())
    assert reply.authorities[0].rtype == TYPE_SOA


def test_aliases_give_the_chain_then_the_address() -> None:
    reply = ask(make_server(), "web.sim")
    assert reply.answers == (
        DNSRecord("web.sim", TYPE_CNAME, CLASS_IN, 120, "www.sim"),
        DNSRecord("www.sim", TYPE_CNAME, CLASS_IN, 120, "peer.sim"),
        DNSRecord("peer.sim", TYPE_A, CLASS_IN, 120, PEER),
    )
    assert ask(make_server(), "www.sim", TYPE_CNAME).answers == (
        DNSRecord("www.sim", TYPE_CNAME, CLASS_IN, 120, "peer.sim"),
    )


def test_alias_to_a_name_outside_the_table_is_the_cname_alone() -> None:
    reply = ask(make_server(), "away.sim")
    assert reply.rcode == RCODE_NOERROR
    assert reply.answers == (DNSRecord("away.sim", TYPE_CNAME, CLASS_IN, 120, "edge.elsewhere"),)


def test_alias_loop_is_bounded() -> None:
    server = DNSServer({}, {"a.sim": "b.sim", "b.sim": "a.sim"})
    assert len(ask(server, "a.sim").answers) == 8


def test_broken_body_with_a_header_is_formerr() -> None:
    server = make_server()
    broken = DNSMessage.query(0x0101, "peer.sim").build()[:-3]
    reply = DNSMessage.parse(server.answer(broken) or b"")
    assert (reply.id, reply.qr, reply.rcode, reply.questions, reply.rd) == (
        0x0101, True, RCODE_FORMERR, (), True,
    )  # fmt: skip
    assert server.statistics.drops[DropReason.DNS_MALFORMED] == 1
    assert server.statistics.malformed["dns.truncated"] == 1


def test_no_question_or_two_questions_is_formerr() -> None:
    server = make_server()
    two = DNSMessage(5, questions=(DNSQuestion("peer.sim"), DNSQuestion("www.sim")))
    for query in (DNSMessage(4), two):
        reply = DNSMessage.parse(server.answer(query.build()) or b"")
        assert (reply.id, reply.rcode, reply.questions) == (query.id, RCODE_FORMERR, ())


def test_no_answer_to_a_short_message_or_to_a_response() -> None:
    server = make_server()
    assert server.answer(b"\x12\x34\x01") is None
    response = DNSMessage.answer_for(DNSMessage.query(1, "peer.sim"), [])
    assert server.answer(response.build()) is None
    assert server.answer(response.build()[:-2]) is None  # a broken response: no FORMERR either
    assert server.statistics.counters["dns.server.responses_ignored"] == 1


def test_other_opcode_is_notimp_and_other_class_is_refused() -> None:
    server = make_server()
    assert ask(server, "peer.sim", opcode=2).rcode == RCODE_NOTIMP
    chaos = DNSMessage(9, questions=(DNSQuestion("version.bind", 16, 3),))
    assert DNSMessage.parse(server.answer(chaos.build()) or b"").rcode == RCODE_REFUSED


def test_large_answer_is_truncated_to_512_bytes() -> None:
    server = make_server()
    reply = ask(server, "big.sim")
    assert reply.tc
    # 12 header + 11 question; each answer a 2-byte pointer + 10 + 4: 30 records fit.
    assert len(reply.answers) == (UDP_PAYLOAD_LIMIT - 12 - 11) // 16 == 30
    assert server.statistics.counters["dns.server.truncated"] == 1


def test_random_bytes_never_crash_the_server() -> None:
    server = make_server()
    rng = random.Random(53)
    for _ in range(2000):
        data = rng.randbytes(rng.randint(0, 60))
        reply = server.answer(data)
        if reply is not None:
            message = DNSMessage.parse(reply)
            assert message.qr and message.id == int.from_bytes(data[:2], "big")


# --- resolver and server together ------------------------------------------------------------


def exchange(resolver: Resolver, server: DNSServer, lookup: Lookup, now: float = 0.0) -> int:
    """Hand every datagram to the server and every reply back until ``lookup`` is done; the number
    of queries."""
    queries = 0
    while not lookup.done:
        datagrams = resolver.datagrams_to_send(now)
        assert datagrams, "the resolver stopped asking"
        for payload, address, port in datagrams:
            queries += 1
            reply = server.answer(payload)
            if reply is not None:
                resolver.process_response(reply, address, port, now)
    return queries


def make_resolver() -> Resolver:
    return Resolver(ResolverSettings(servers=[SERVER_ADDRESS]), random.Random(1))


def test_end_to_end_address() -> None:
    resolver, server = make_resolver(), make_server()
    lookup = resolver.resolve("peer.sim", 0.0)
    assert exchange(resolver, server, lookup) == 1
    assert lookup.addresses == [PEER]


def test_end_to_end_alias_chain() -> None:
    resolver, server = make_resolver(), make_server()
    lookup = resolver.resolve("Web.Sim", 0.0)
    assert exchange(resolver, server, lookup) == 1
    assert (lookup.addresses, lookup.canonical_name) == ([PEER], "peer.sim")


def test_end_to_end_alias_outside_requeries_then_not_found_is_cached() -> None:
    resolver, server = make_resolver(), make_server()
    lookup = resolver.resolve("away.sim", 0.0)
    assert exchange(resolver, server, lookup) == 2
    assert lookup.error is not None and lookup.error.reason == NOT_FOUND
    again = resolver.resolve("away.sim", 59.0)  # the server's SOA minimum: 60 s
    assert again.done and resolver.datagrams_to_send(59.0) == []


def test_end_to_end_unknown_and_truncated() -> None:
    resolver, server = make_resolver(), make_server()
    nope = resolver.resolve("nope.sim", 0.0)
    exchange(resolver, server, nope)
    assert nope.error is not None and nope.error.reason == NOT_FOUND
    big = resolver.resolve("big.sim", 0.0)
    exchange(resolver, server, big)
    assert big.error is not None and big.error.reason == TRUNCATED


def test_end_to_end_cache_hit_sends_nothing() -> None:
    resolver, server = make_resolver(), make_server()
    exchange(resolver, server, resolver.resolve("pool.sim", 0.0))
    hit = resolver.resolve("POOL.sim", 100.0)
    assert hit.done and len(hit.addresses) == 3
    assert server.statistics.counters["dns.server.queries"] == 1
