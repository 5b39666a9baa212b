"""The DNS codec: golden bytes written from RFC 1035's layout, names, round trips, hostile input.

The golden messages are written field by field from RFC 1035 4.1 (header, question, resource
record) and 4.1.4 (compression pointers), not produced by the code under test. scapy, as an
independent oracle, is in tests/dns/test_scapy_oracle.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.stats import DropReason, drop_reason_for
from pystack.wire.dns import (
    CLASS_IN,
    MAX_POINTER_JUMPS,
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_OPT,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_TXT,
    DNSMessage,
    DNSQuestion,
    DNSRecord,
    DomainNameError,
    MXData,
    SOAData,
    labels_to_text,
    name_key,
    name_to_labels,
)
from pystack.wire.errors import MalformedPacket
from tests.wire.reference import flip_bit

EXAMPLE_ADDRESS = 0x5DB8D822  # 93.184.216.34


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# id 0x1234, flags 0x0100 (RD), QDCOUNT 1; QNAME 7"example" 3"com" 0; QTYPE A, QCLASS IN
QUERY_EXAMPLE = _hex("1234 0100 0001 0000 0000 0000  07 6578616d706c65 03 636f6d 00  0001 0001")
# flags 0x8180 (QR, RD, RA), ANCOUNT 1; the answer's name is a pointer to offset 12 (c00c)
ANSWER_EXAMPLE = _hex(
    "1234 8180 0001 0001 0000 0000  07 6578616d706c65 03 636f6d 00  0001 0001"
    "  c00c 0001 0001 00000e10 0004 5db8d822"
)
# www.example.com: question name at 12 ("www"), "example" at 16. Answer 1: www CNAME example.com,
# its rdata the pointer c010; answer 2: the pointer c010 (example.com) A 93.184.216.34.
ANSWER_CNAME = _hex(
    "1234 8180 0001 0002 0000 0000  03 777777 07 6578616d706c65 03 636f6d 00  0001 0001"
    "  c00c 0005 0001 00000e10 0002 c010"
    "  c010 0001 0001 00000e10 0004 5db8d822"
)
# NXDOMAIN (flags 0x8183) for nope.example.com with an SOA for example.com in the authority
# section (pointer c011): mname ns (+pointer), rname h (+pointer), five numbers.
NXDOMAIN_SOA = _hex(
    "0007 8183 0001 0000 0001 0000  04 6e6f7065 07 6578616d706c65 03 636f6d 00  0001 0001"
    "  c011 0006 0001 0000012c 001d  02 6e73 c011  01 68 c011"
    "  00000001 00000e10 00000258 00015180 0000003c"
)
# A dig query: AD set (flags 0x0120), one additional OPT record (root, type 41, class 4096).
QUERY_WITH_OPT = _hex(
    "beef 0120 0001 0000 0000 0001  07 6578616d706c65 03 636f6d 00  0001 0001"
    "  00 0029 1000 00000000 0000"
)
GOLDEN = (QUERY_EXAMPLE, ANSWER_EXAMPLE, ANSWER_CNAME, NXDOMAIN_SOA, QUERY_WITH_OPT)


def _parse_error(data: bytes) -> str:
    with pytest.raises(MalformedPacket) as caught:
        DNSMessage.parse(data)
    return caught.value.reason


# --- golden ----------------------------------------------------------------------------------


def test_query_golden_bytes() -> None:
    query = DNSMessage.query(0x1234, "example.com")
    assert query.build() == QUERY_EXAMPLE
    assert DNSMessage.parse(QUERY_EXAMPLE) == query
    assert query.summary() == "DNS 4660+ A? example.com. (29)"


def test_answer_golden_bytes_with_pointer() -> None:
    query = DNSMessage.parse(QUERY_EXAMPLE)
    record = DNSRecord("example.com", TYPE_A, CLASS_IN, 3600, EXAMPLE_ADDRESS)
    answer = DNSMessage.answer_for(query, [record], recursion_available=True)
    assert answer.build() == ANSWER_EXAMPLE
    assert DNSMessage.parse(ANSWER_EXAMPLE) == answer
    assert answer.summary() == "DNS 4660 1/0/0 A 93.184.216.34 (45)"
    assert len(answer.build(compress=False)) == 45 - 2 + 13


def test_cname_answer_golden_compresses_rdata_names() -> None:
    message = DNSMessage.parse(ANSWER_CNAME)
    assert message.questions == (DNSQuestion("www.example.com", TYPE_A, CLASS_IN),)
    assert message.answers == (
        DNSRecord("www.example.com", TYPE_CNAME, CLASS_IN, 3600, "example.com"),
        DNSRecord("example.com", TYPE_A, CLASS_IN, 3600, EXAMPLE_ADDRESS),
    )
    assert message.build() == ANSWER_CNAME
    assert message.summary() == "DNS 4660 2/0/0 CNAME example.com., A 93.184.216.34 (63)"


def test_nxdomain_golden_with_soa() -> None:
    message = DNSMessage.parse(NXDOMAIN_SOA)
    assert (message.rcode, message.aa, message.ra) == (RCODE_NXDOMAIN, False, True)
    soa = SOAData("ns.example.com", "h.example.com", 1, 3600, 600, 86400, 60)
    assert message.authorities == (DNSRecord("example.com", TYPE_SOA, CLASS_IN, 300, soa),)
    assert message.build() == NXDOMAIN_SOA
    assert message.summary() == "DNS 7 NXDomain 0/1/0 (75)"


def test_query_with_opt_keeps_raw_rdata_and_z_bits() -> None:
    message = DNSMessage.parse(QUERY_WITH_OPT)
    assert message.z == 0b010  # AD (RFC 4035 3.2.3), kept verbatim
    assert message.additionals == (DNSRecord("", TYPE_OPT, 4096, 0, b""),)
    assert message.build() == QUERY_WITH_OPT
    assert message.summary() == "DNS 48879+ [1au] A? example.com. (40)"


def test_typed_rdata_round_trip_and_summaries() -> None:
    records = (
        DNSRecord("a", TYPE_AAAA, CLASS_IN, 1, bytes(15) + b"\x01"),
        DNSRecord("a", TYPE_NS, CLASS_IN, 1, "ns.a"),
        DNSRecord("a", TYPE_PTR, CLASS_IN, 1, "host.a"),
        DNSRecord("a", TYPE_MX, CLASS_IN, 1, MXData(10, "mail.a")),
        DNSRecord("a", TYPE_TXT, CLASS_IN, 1, (b"v=spf1", b"")),
        DNSRecord("a", 99, CLASS_IN, 1, b"\x00\x01"),
        DNSRecord("a", TYPE_A, 3, 1, b"\x00\x01"),  # CHAOS-class A: raw
    )
    message = DNSMessage(9, qr=True, aa=True, ra=True, answers=records)
    for compress in (True, False):
        assert DNSMessage.parse(message.build(compress)) == message
    assert message.summary(size=1) == (
        'DNS 9* 7/0/0 AAAA ::1, NS ns.a., PTR host.a., MX mail.a. 10, TXT "v=spf1" "", '
        "Type99, A (1)"
    )


def test_summary_flags_of_a_truncated_refused_answer() -> None:
    message = DNSMessage(1, qr=True, tc=True, rcode=5)
    assert message.summary() == "DNS 1 Refused-| 0/0/0 (12)"
    assert DNSMessage(2, qr=True, opcode=4, rcode=11).summary() == "DNS 2 notify Resp11- 0/0/0 (12)"


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", ()),
        (".", ()),
        ("example.com", (b"example", b"com")),
        ("Example.COM.", (b"Example", b"COM")),
        ("a\\.b.c", (b"a.b", b"c")),
        ("a\\046b\\000", (b"a.b\x00",)),
        ("\\\\", (b"\\",)),
    ],
)
def test_name_text_to_labels(text: str, labels: tuple[bytes, ...]) -> None:
    assert name_to_labels(text) == labels


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("a..", "empty label"),
        ("x" * 64, "label too long"),
        (".".join(["x" * 63] * 4), "name too long"),
        ("a\\25", "bad escape"),
        ("a\\256", "bad escape"),
        ("a\\", "bad escape"),
    ],
)
def test_name_text_errors(text: str, reason: str) -> None:
    with pytest.raises(DomainNameError) as caught:
        name_to_labels(text)
    assert caught.value.reason == reason


def test_longest_name_is_255_bytes_on_the_wire() -> None:
    longest = ".".join(["x" * 63] * 3 + ["y" * 61])  # 3 * 64 + 62 + 1 = 255
    message = DNSMessage.query(1, longest)
    assert DNSMessage.parse(message.build()) == message


def test_name_key_folds_ascii_case_only() -> None:
    assert name_key("WWW.Example.com.") == name_key("www.example.COM") == "www.example.com"
    assert name_key("a\\200") == "a\\200"


labels = st.lists(st.binary(min_size=1, max_size=63), max_size=4)


@given(labels)
def test_label_text_round_trip(wire: list[bytes]) -> None:
    assert name_to_labels(labels_to_text(wire)) == tuple(wire)


# --- hostile input ---------------------------------------------------------------------------

HEADER_ONE_QUESTION = _hex("0001 0000 0001 0000 0000 0000")
HEADER_ONE_ANSWER = _hex("0001 8000 0000 0001 0000 0000")
LONG_NAME = "3f" + "61" * 63 + "3f" + "61" * 63 + "3f" + "61" * 63 + "3f" + "61" * 63 + "00"


def _question(name: str) -> bytes:
    return HEADER_ONE_QUESTION + _hex(name) + _hex("0001 0001")


def _answer(rtype: int, rdata: str) -> bytes:
    """One record owned by the root with ``rdata`` (its length computed)."""
    data = _hex(rdata)
    return HEADER_ONE_ANSWER + b"\x00" + _hex(f"{rtype:04x} 0001 00000000 {len(data):04x}") + data


def _pointer_chain(length: int) -> bytes:
    """``length`` + 1 questions: the root, then each a pointer to the one before."""
    data = bytearray(_hex("0001 0000") + (length + 1).to_bytes(2, "big") + bytes(6))
    data += _hex("00 0001 0001")
    previous = 12
    for _ in range(length):
        here = len(data)
        data += (0xC000 | previous).to_bytes(2, "big") + _hex("0001 0001")
        previous = here
    return bytes(data)


def _parse(data: bytes) -> Callable[[], object]:
    return lambda: DNSMessage.parse(data)


# Every reason ``pystack/wire/dns.py`` raises, with a crafted input (the shape of
# tests/wire/test_golden.py's MALFORMED_CASES, whose coverage test can include this list).
DNS_MALFORMED_CASES: list[tuple[str, str, Callable[[], object]]] = [
    ("dns_2_bytes", "dns.truncated", _parse(b"\x12\x34")),
    ("dns_question_missing", "dns.truncated", _parse(HEADER_ONE_QUESTION)),
    ("dns_half_pointer", "dns.truncated", _parse(HEADER_ONE_QUESTION + b"\xc0")),
    ("dns_label_past_end", "dns.truncated", _parse(HEADER_ONE_QUESTION + _hex("0561"))),
    ("dns_name_no_end", "dns.truncated", _parse(HEADER_ONE_QUESTION + _hex("03616263"))),
    ("dns_qtype_missing", "dns.truncated", _parse(HEADER_ONE_QUESTION + _hex("00 0001"))),
    ("dns_record_header_short", "dns.truncated", _parse(HEADER_ONE_ANSWER + _hex("00 0001"))),
    ("dns_rdata_past_end", "dns.truncated", _parse(_answer(TYPE_A, "01020304")[:-1])),
    ("dns_trailing_byte", "dns.trailing_bytes", _parse(QUERY_EXAMPLE + b"\x00")),
    ("dns_pointer_to_itself", "dns.bad_pointer", _parse(_question("c00c"))),
    ("dns_pointer_forwards", "dns.bad_pointer", _parse(_question("c020"))),
    ("dns_pointer_loop_back", "dns.bad_pointer", _parse(_question("0161 c00c"))),
    ("dns_pointer_into_header", "dns.bad_pointer", _parse(_question("c002"))),
    ("dns_pointer_chain", "dns.pointer_loop", _parse(_pointer_chain(MAX_POINTER_JUMPS + 1))),
    ("dns_label_type_01", "dns.bad_label_type", _parse(_question("4100"))),
    ("dns_label_type_10", "dns.bad_label_type", _parse(_question("8100"))),
    ("dns_name_256_bytes", "dns.name_too_long", _parse(_question(LONG_NAME))),
    ("dns_a_3_bytes", "dns.bad_rdata_length", _parse(_answer(TYPE_A, "010203"))),
    ("dns_aaaa_4_bytes", "dns.bad_rdata_length", _parse(_answer(TYPE_AAAA, "01020304"))),
    ("dns_cname_short", "dns.bad_rdata_length", _parse(_answer(TYPE_CNAME, "0161") + b"\x00")),
    ("dns_cname_long", "dns.bad_rdata_length", _parse(_answer(TYPE_CNAME, "0161 00 00"))),
    ("dns_mx_2_bytes", "dns.bad_rdata_length", _parse(_answer(TYPE_MX, "000a"))),
    ("dns_soa_short", "dns.bad_rdata_length", _parse(_answer(TYPE_SOA, "00 00 00000001"))),
    ("dns_soa_one_name", "dns.bad_rdata_length", _parse(_answer(TYPE_SOA, "00") + bytes(21))),
    ("dns_txt_overrun", "dns.bad_rdata_length", _parse(_answer(TYPE_TXT, "05 6869"))),
]


@pytest.mark.parametrize(
    ("reason", "parse"),
    [pytest.param(reason, parse, id=name) for name, reason, parse in DNS_MALFORMED_CASES],
)
def test_parse_rejects_crafted_input_with_reason(reason: str, parse: Callable[[], object]) -> None:
    with pytest.raises(MalformedPacket) as caught:
        parse()
    assert caught.value.reason == reason
    assert caught.value.layer == "dns"


def test_malformed_cases_cover_every_dns_reason() -> None:
    source = (Path(__file__).resolve().parents[2] / "pystack" / "wire" / "dns.py").read_text()
    raised = set(re.findall(r'MalformedPacket\("(dns\.[a-z_]+)"', source))
    assert len(raised) >= 7
    assert raised == {reason for _name, reason, _parse in DNS_MALFORMED_CASES}


def test_pointer_chain_at_the_bound_parses() -> None:
    assert len(DNSMessage.parse(_pointer_chain(MAX_POINTER_JUMPS)).questions) == 129


def test_every_truncation_of_golden_messages_raises() -> None:
    for message in GOLDEN:
        for end in range(len(message)):
            with pytest.raises(MalformedPacket):
                DNSMessage.parse(message[:end])


def _survives(data: bytes) -> None:
    """Parse; what parses must summarize, build, and parse back to itself."""
    try:
        message = DNSMessage.parse(data)
    except MalformedPacket as error:
        assert error.reason.startswith("dns.")
        assert drop_reason_for(error.reason) is DropReason.DNS_MALFORMED
        return
    message.summary()
    assert DNSMessage.parse(message.build()) == message
    assert DNSMessage.parse(message.build(compress=False)) == message


def test_every_bit_flip_of_golden_messages_is_safe() -> None:
    for message in GOLDEN:
        for bit in range(len(message) * 8):
            _survives(flip_bit(message, bit))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_malformed(data: bytes) -> None:
    _survives(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(GOLDEN), st.binary(min_size=1, max_size=24), st.integers(0, 120))
def test_spliced_golden_messages_are_safe(base: bytes, insert: bytes, at: int) -> None:
    _survives(base[:at] + insert + base[at:])
    _survives(base[:12] + insert)


# --- round trips -----------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def names(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=5))
    # A few shared suffixes make compression kick in.
    return labels_to_text(parts + draw(st.sampled_from([[], [b"com"], [b"example", b"com"]])))


@st.composite
def records(draw: st.DrawFn) -> DNSRecord:
    kind = draw(st.sampled_from(["A", "AAAA", "name", "MX", "SOA", "TXT", "raw"]))
    name, ttl = draw(names()), draw(u32)
    rclass = draw(st.sampled_from([CLASS_IN, 3, 255, 4096]))
    if kind in ("A", "AAAA"):
        data = draw(u32) if kind == "A" else draw(st.binary(min_size=16, max_size=16))
        return DNSRecord(name, TYPE_A if kind == "A" else TYPE_AAAA, CLASS_IN, ttl, data)
    if kind == "name":
        return DNSRecord(
            name, draw(st.sampled_from([TYPE_CNAME, TYPE_NS, TYPE_PTR])), rclass, ttl, draw(names())
        )
    if kind == "MX":
        return DNSRecord(name, TYPE_MX, rclass, ttl, MXData(draw(u16), draw(names())))
    if kind == "SOA":
        numbers = draw(st.tuples(u32, u32, u32, u32, u32))
        return DNSRecord(
            name, TYPE_SOA, rclass, ttl, SOAData(draw(names()), draw(names()), *numbers)
        )
    if kind == "TXT":
        strings = draw(st.lists(st.binary(max_size=40), max_size=3))
        return DNSRecord(name, TYPE_TXT, rclass, ttl, tuple(strings))
    rtype = draw(st.sampled_from([TYPE_OPT, 10, 99, 256, 65535]))
    return DNSRecord(name, rtype, rclass, ttl, draw(st.binary(max_size=30)))


@st.composite
def messages(draw: st.DrawFn) -> DNSMessage:
    section = st.lists(records(), max_size=3).map(tuple)
    questions = st.lists(st.builds(DNSQuestion, names(), u16, u16), max_size=2).map(tuple)
    return DNSMessage(
        draw(u16),
        *draw(st.tuples(st.booleans(), st.integers(0, 15), st.booleans(), st.booleans())),
        *draw(st.tuples(st.booleans(), st.booleans(), st.integers(0, 7), st.integers(0, 15))),
        draw(questions),
        draw(section),
        draw(section),
        draw(section),
    )


@settings(max_examples=250, deadline=None)
@given(messages())
def test_parse_inverts_build(message: DNSMessage) -> None:
    compressed, plain = message.build(), message.build(compress=False)
    assert DNSMessage.parse(compressed) == message
    assert DNSMessage.parse(plain) == message
    assert DNSMessage.parse(compressed).build() == compressed
    assert len(compressed) <= len(plain)


@settings(max_examples=100, deadline=None)
@given(messages(), st.data())
def test_truncated_or_flipped_builds_are_safe(message: DNSMessage, data: st.DataObject) -> None:
    encoded = message.build()
    _survives(encoded[: data.draw(st.integers(0, len(encoded)))])
    _survives(flip_bit(encoded, data.draw(st.integers(0, len(encoded) * 8 - 1))))


def test_build_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        DNSMessage(0x10000).build()
    with pytest.raises(ValueError):
        DNSMessage(1, answers=(DNSRecord("a", TYPE_TXT, CLASS_IN, 0, (b"x" * 256,)),)).build()
    with pytest.raises(DomainNameError):
        DNSMessage.query(1, "a..b").build()
