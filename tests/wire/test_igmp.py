"""The IGMP codec (RFC 2236, versions per RFC 3376 7.1): golden bytes, round trips, malformed
reasons, summaries, and scapy (``scapy.contrib.igmp``) as an independent oracle.

``IGMP_MALFORMED_CASES`` is also part of ``test_golden.MALFORMED_CASES``, whose last test checks
that every reason literal in ``pystack/wire`` has a crafted input.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.wire import igmp
from pystack.wire.errors import MalformedPacket
from pystack.wire.igmp import IGMPMessage
from pystack.wire.ipv4 import PROTO_IGMP, IPv4Packet
from pystack.wire.summary import summarize_packet
from tests.wire.reference import rfc1071_checksum

GROUP = 0xEF010203  # 239.1.2.3


def igmp_raw(
    kind: int, max_response: int, group: int, extra: bytes = b"", checksum: int | None = None
) -> bytes:
    """An IGMP message from the RFC 2236 2 layout, checksum by the reference RFC 1071 loop."""
    data = struct.pack("!BBHI", kind, max_response, 0, group) + extra
    if checksum is None:
        checksum = rfc1071_checksum(data)
    return data[:2] + struct.pack("!H", checksum) + data[4:]


def _parse(raw: bytes) -> Callable[[], object]:
    return lambda: IGMPMessage.parse(raw)


IGMP_MALFORMED_CASES: list[tuple[str, str, Callable[[], object]]] = [
    ("igmp_7_bytes", "igmp.truncated", _parse(igmp_raw(0x16, 0, GROUP)[:7])),
    ("igmp_empty", "igmp.truncated", _parse(b"")),
    ("igmp_bad_checksum", "igmp.bad_checksum", _parse(igmp_raw(0x16, 0, GROUP, checksum=0x1234))),
    ("igmp_query_10_bytes", "igmp.bad_query_length", _parse(igmp_raw(0x11, 100, 0, b"\x00\x00"))),
    ("igmp_query_11_bytes", "igmp.bad_query_length", _parse(igmp_raw(0x11, 100, 0, b"\x00" * 3))),
    ("igmp_query_unicast_group", "igmp.bad_group", _parse(igmp_raw(0x11, 100, 0x0A000001))),
    ("igmp_report_group_zero", "igmp.bad_group", _parse(igmp_raw(0x16, 0, 0))),
    ("igmp_v1_report_unicast", "igmp.bad_group", _parse(igmp_raw(0x12, 0, 0x0A000001))),
    ("igmp_leave_broadcast", "igmp.bad_group", _parse(igmp_raw(0x17, 0, 0xFFFFFFFF))),
]


@pytest.mark.parametrize(
    ("reason", "parse"),
    [pytest.param(reason, parse, id=name) for name, reason, parse in IGMP_MALFORMED_CASES],
)
def test_parse_rejects_crafted_input_with_reason(reason: str, parse: Callable[[], object]) -> None:
    with pytest.raises(MalformedPacket) as caught:
        parse()
    assert caught.value.reason == reason
    assert caught.value.layer == "igmp"


# -- golden bytes (checksums worked out by hand from RFC 1071) ---------------------------------
GOLDEN = [
    # v2 report 239.1.2.3: 0x1600 + 0xef01 + 0x0203 = 0x10704 -> 0x0705, complement 0xf8fa
    ("v2_report", "1600f8faef010203", IGMPMessage(0x16, 0, GROUP)),
    # leave 239.1.2.3: 0x1700 + 0xef01 + 0x0203 -> 0x0805, complement 0xf7fa
    ("leave", "1700f7faef010203", IGMPMessage(0x17, 0, GROUP)),
    # v1 report 224.1.1.1: 0x1200 + 0xe001 + 0x0101 = 0xf302, complement 0x0cfd
    ("v1_report", "12000cfde0010101", IGMPMessage(0x12, 0, 0xE0010101)),
    # general v2 query, 10 s: 0x1164, complement 0xee9b
    ("v2_general_query", "1164ee9b00000000", IGMPMessage(0x11, 100, 0)),
    # v1 query: 0x1100, complement 0xeeff
    ("v1_query", "1100eeff00000000", IGMPMessage(0x11, 0, 0)),
    # group-specific v2 query, 1 s: 0x110a + 0xef01 + 0x0203 -> 0x020f, complement 0xfdf0
    ("v2_group_query", "110afdf0ef010203", IGMPMessage(0x11, 10, GROUP)),
    # v3 general query (QRV 2, QQIC 125, no sources): 0x1164 + 0x027d = 0x13e1 -> 0xec1e
    ("v3_query", "1164ec1e00000000027d0000", IGMPMessage(0x11, 100, 0, bytes.fromhex("027d0000"))),
]


@pytest.mark.parametrize(("hex_bytes", "value"), [pytest.param(h, v, id=n) for n, h, v in GOLDEN])
def test_golden_bytes_parse_and_build(hex_bytes: str, value: IGMPMessage) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert IGMPMessage.parse(raw) == value
    assert value.build() == raw
    assert rfc1071_checksum(raw) == 0


def test_constructors_give_the_golden_values() -> None:
    assert IGMPMessage.v2_report(GROUP) == IGMPMessage(0x16, 0, GROUP)
    assert IGMPMessage.v1_report(GROUP) == IGMPMessage(0x12, 0, GROUP)
    assert IGMPMessage.leave(GROUP) == IGMPMessage(0x17, 0, GROUP)
    assert IGMPMessage.query() == IGMPMessage(0x11, 100, 0)
    assert IGMPMessage.query(GROUP, 10) == IGMPMessage(0x11, 10, GROUP)


def test_query_version_follows_length_and_max_response_time() -> None:
    assert IGMPMessage.query(0, 0).query_version == 1
    assert IGMPMessage.query(0, 0).max_response_seconds == 10.0  # RFC 2236 4
    assert IGMPMessage.query(0, 25).query_version == 2
    assert IGMPMessage.query(0, 25).max_response_seconds == 2.5
    v3 = IGMPMessage(0x11, 100, 0, bytes(4))
    assert v3.query_version == 3 and v3.max_response_seconds == 10.0
    # RFC 3376 4.1.1: code 0x8f = exponent 0, mantissa 15: (15 | 16) << 3 = 248 tenths
    assert IGMPMessage(0x11, 0x8F, 0, bytes(4)).max_response_seconds == 24.8
    assert IGMPMessage.v2_report(GROUP).query_version == 0
    assert IGMPMessage.query().is_query and not IGMPMessage.leave(GROUP).is_query


def test_unknown_types_and_trailing_bytes_parse_and_are_kept() -> None:
    # RFC 2236 2.1: unrecognized types are ignored by the host, not malformed; 2.5: extra bytes.
    for raw in (
        igmp_raw(0x22, 0, 0, bytes(8)),
        igmp_raw(0x13, 7, 5),
        igmp_raw(0x16, 0, GROUP, b"xy"),
    ):
        message = IGMPMessage.parse(raw)
        assert message.build() == raw


def test_checksum_is_skipped_when_asked() -> None:
    raw = igmp_raw(0x16, 0, GROUP, checksum=0)
    assert IGMPMessage.parse(raw, verify_checksum=False) == IGMPMessage(0x16, 0, GROUP)


def test_summaries() -> None:
    assert IGMPMessage.v2_report(GROUP).summary() == "IGMP v2 report 239.1.2.3, length 8"
    assert IGMPMessage.v1_report(GROUP).summary() == "IGMP v1 report 239.1.2.3, length 8"
    assert IGMPMessage.leave(GROUP).summary() == "IGMP leave 239.1.2.3, length 8"
    assert IGMPMessage.query().summary() == "IGMP query v2, max resp 10 s, length 8"
    assert (
        IGMPMessage.query(GROUP, 5).summary()
        == "IGMP query v2 for 239.1.2.3, max resp 0.5 s, length 8"
    )
    assert IGMPMessage.query(0, 0).summary() == "IGMP query v1, length 8"
    assert IGMPMessage(0x22, 0, 0, bytes(8)).summary() == "IGMP v3 report, length 16"
    assert IGMPMessage(0x30, 0, 0).summary() == "IGMP type-0x30, length 8"


def test_trace_line_for_an_igmp_packet() -> None:
    packet = IPv4Packet(
        0x0A000001,
        GROUP,
        PROTO_IGMP,
        IGMPMessage.v2_report(GROUP).build(),
        ttl=1,
        options=b"\x94\x04\x00\x00",
    )
    assert summarize_packet(packet) == "IP 10.0.0.1 > 239.1.2.3: IGMP v2 report 239.1.2.3, length 8"
    broken = packet._replace(payload=packet.payload[:4])
    assert (
        summarize_packet(broken) == "IP 10.0.0.1 > 239.1.2.3: malformed (igmp.truncated), length 28"
    )


# -- round trips ---------------------------------------------------------------------------------
MULTICAST = st.integers(0xE0000000, 0xEFFFFFFF)


@st.composite
def igmp_messages(draw: st.DrawFn) -> IGMPMessage:
    kind = draw(st.sampled_from([0x11, 0x12, 0x16, 0x17, 0x22, 0x13, 0xFF]))
    if kind == 0x11:
        group = draw(st.one_of(st.just(0), MULTICAST))
        extra = draw(st.one_of(st.just(b""), st.binary(min_size=4, max_size=40)))
    elif kind in (0x12, 0x16, 0x17):
        group, extra = draw(MULTICAST), draw(st.binary(max_size=8))
    else:
        group, extra = draw(st.integers(0, 0xFFFFFFFF)), draw(st.binary(max_size=40))
    return IGMPMessage(kind, draw(st.integers(0, 255)), group, extra)


@settings(max_examples=500, deadline=None)
@given(igmp_messages())
def test_parse_inverts_build(message: IGMPMessage) -> None:
    raw = message.build()
    assert IGMPMessage.parse(raw) == message
    assert rfc1071_checksum(raw) == 0
    message.summary()


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_malformed_packet(data: bytes) -> None:
    try:
        message = IGMPMessage.parse(data, verify_checksum=False)
    except MalformedPacket as error:
        assert error.reason.startswith("igmp.")
        return
    assert message.build(int.from_bytes(data[2:4], "big")) == data
    message.summary()


def test_every_single_bit_flip_is_caught_by_the_checksum() -> None:
    raw = IGMPMessage.v2_report(GROUP).build()
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(MalformedPacket):
            IGMPMessage.parse(bytes(flipped))


# -- scapy as an oracle --------------------------------------------------------------------------
CASES = 500


def _scapy_igmp() -> type:
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    module = pytest.importorskip("scapy.contrib.igmp")
    return module.IGMP  # type: ignore[no-any-return]


def _random_case(rng: random.Random) -> tuple[int, int, int]:
    kind = rng.choice([0x11, 0x12, 0x16, 0x17])
    group = rng.randrange(0xE0000000, 0xF0000000)
    if kind == 0x11 and rng.random() < 0.5:
        group = 0
    max_response = rng.randrange(256) if kind == 0x11 else 0
    return kind, max_response, group


def _dotted(address: int) -> str:
    return ".".join(str(address >> shift & 255) for shift in (24, 16, 8, 0))


def test_scapy_built_messages_parse_to_the_same_fields() -> None:
    from scapy.compat import raw

    scapy_igmp = _scapy_igmp()
    rng = random.Random(2236)
    for _ in range(CASES):
        kind, max_response, group = _random_case(rng)
        data = raw(scapy_igmp(type=kind, mrcode=max_response, gaddr=_dotted(group)))
        message = IGMPMessage.parse(data)
        assert (message.type, message.max_response_time, message.group) == (
            kind,
            max_response,
            group,
        )
        assert message.build() == data


def test_our_messages_dissect_in_scapy_and_checksums_agree() -> None:
    from scapy.compat import raw

    scapy_igmp = _scapy_igmp()
    rng = random.Random(1112)
    for _ in range(CASES):
        kind, max_response, group = _random_case(rng)
        ours = IGMPMessage(kind, max_response, group).build()
        theirs = scapy_igmp(ours)
        assert (theirs.type, theirs.mrcode, theirs.gaddr) == (kind, max_response, _dotted(group))
        assert theirs.chksum == int.from_bytes(ours[2:4], "big")
        del theirs.chksum
        assert raw(theirs) == ours


def test_named_constants_match_rfc_2236() -> None:
    assert (igmp.MEMBERSHIP_QUERY, igmp.V1_MEMBERSHIP_REPORT) == (0x11, 0x12)
    assert (igmp.V2_MEMBERSHIP_REPORT, igmp.LEAVE_GROUP) == (0x16, 0x17)
    assert (igmp.ALL_SYSTEMS, igmp.ALL_ROUTERS) == (0xE0000001, 0xE0000002)
