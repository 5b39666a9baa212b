"""The DHCP codec: golden bytes, round trips, malformed reasons, hostile input, scapy as oracle.

The golden DISCOVER and OFFER are written field by field (RFC 2131 figure 1, RFC 2132) after the
exchange in Wireshark's sample capture ``dhcp.pcap`` (client 00:0b:82:01:fc:42, server
192.168.0.1 offering 192.168.0.10), including its padding after the end option, not produced by
the code under test. scapy (``scapy.layers.dhcp``) checks a few hundred random messages each way.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.stats import DropReason, drop_reason_for
from pystack.wire import dhcp
from pystack.wire.addresses import ip_from_str, ip_to_str
from pystack.wire.dhcp import DHCPMessage, DHCPOption, chaddr_for
from pystack.wire.errors import MalformedPacket

MAC = bytes.fromhex("000b8201fc42")


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


_ZEROS = lambda count: "00" * count  # noqa: E731
DISCOVER_GOLDEN = _hex(
    "01 01 06 00  00003d1d  0000 0000  00000000 00000000 00000000 00000000"
    "  000b8201fc42" + _ZEROS(10) + _ZEROS(64) + _ZEROS(128) + "  63825363"
    "  35 01 01  3d 07 01 000b8201fc42  32 04 00000000  37 04 01 03 06 2a  ff" + _ZEROS(7)
)
OFFER_GOLDEN = _hex(
    "02 01 06 00  00003d1d  0000 0000  00000000 c0a8000a c0a80001 00000000"
    "  000b8201fc42" + _ZEROS(10) + _ZEROS(64) + _ZEROS(128) + "  63825363"
    "  35 01 02  01 04 ffffff00  3a 04 00000708  3b 04 00000c4e  33 04 00000e10"
    "  36 04 c0a80001  ff" + _ZEROS(26)
)


def _message(*options: DHCPOption, **fields: object) -> DHCPMessage:
    return DHCPMessage(dhcp.BOOTREQUEST, 7, chaddr_for(MAC), options, **fields)  # type: ignore[arg-type]


# --- golden ------------------------------------------------------------------------------------


def test_discover_golden_bytes() -> None:
    message = DHCPMessage.parse(DISCOVER_GOLDEN)
    assert (message.op, message.htype, message.hlen, message.xid) == (1, 1, 6, 0x3D1D)
    assert message.hardware_address == MAC
    assert message.message_type == dhcp.DISCOVER
    assert message.client_id == b"\x01" + MAC
    assert message.requested_ip == 0
    assert message.parameter_request_list == (1, 3, 6, 42)
    assert message.padding == bytes(7)
    assert message.build() == DISCOVER_GOLDEN
    assert len(DISCOVER_GOLDEN) == 272
    assert message.summary() == (
        "DHCP DISCOVER xid 0x00003d1d chaddr 00:0b:82:01:fc:42 requested 0.0.0.0"
    )


def test_offer_golden_bytes() -> None:
    message = DHCPMessage.parse(OFFER_GOLDEN)
    assert message.op == dhcp.BOOTREPLY and message.message_type == dhcp.OFFER
    assert ip_to_str(message.yiaddr) == "192.168.0.10"
    assert ip_to_str(message.siaddr) == "192.168.0.1"
    assert message.subnet_mask == 0xFFFFFF00
    assert (message.renewal_time, message.rebinding_time, message.lease_time) == (1800, 3150, 3600)
    assert message.server_id == ip_from_str("192.168.0.1")
    assert message.routers == () and message.dns_servers == ()
    assert len(OFFER_GOLDEN) == dhcp.MINIMUM_LENGTH
    assert message.build() == OFFER_GOLDEN
    assert message.summary() == (
        "DHCP OFFER xid 0x00003d1d chaddr 00:0b:82:01:fc:42 yiaddr 192.168.0.10"
        " server 192.168.0.1 lease 3600s"
    )


def test_offer_built_from_values_matches_golden() -> None:
    offer = DHCPMessage(
        dhcp.BOOTREPLY,
        0x3D1D,
        chaddr_for(MAC),
        (
            dhcp.message_type_option(dhcp.OFFER),
            dhcp.address_option(dhcp.OPTION_SUBNET_MASK, 0xFFFFFF00),
            dhcp.seconds_option(dhcp.OPTION_RENEWAL_TIME, 1800),
            dhcp.seconds_option(dhcp.OPTION_REBINDING_TIME, 3150),
            dhcp.seconds_option(dhcp.OPTION_LEASE_TIME, 3600),
            dhcp.address_option(dhcp.OPTION_SERVER_ID, ip_from_str("192.168.0.1")),
        ),
        yiaddr=ip_from_str("192.168.0.10"),
        siaddr=ip_from_str("192.168.0.1"),
    ).padded()
    assert offer.build() == OFFER_GOLDEN


def test_padded_reaches_the_bootp_minimum_and_no_more() -> None:
    small = _message(dhcp.message_type_option(dhcp.DISCOVER))
    assert len(small.build()) == 244
    assert len(small.padded().build()) == 300
    big = _message(DHCPOption(200, bytes(100)))
    assert big.padded().padding == b""


def test_split_option_is_joined_and_pads_are_kept() -> None:
    # RFC 3396: two pieces of option 12 are one hostname; the pad between them stays a value.
    message = _message(DHCPOption(12, b"pi"), DHCPOption(0), DHCPOption(12, b"co"))
    data = message.build()
    parsed = DHCPMessage.parse(data)
    assert parsed == message and parsed.hostname == "pico"
    assert data[240:249] == _hex("0c 02 7069 00 0c 02 636f")


def test_routers_and_dns_lists() -> None:
    message = _message(
        dhcp.addresses_option(dhcp.OPTION_ROUTER, (1, 2)),
        dhcp.addresses_option(dhcp.OPTION_DNS, (3,)),
    )
    parsed = DHCPMessage.parse(message.build())
    assert (parsed.routers, parsed.dns_servers) == ((1, 2), (3,))


def test_broadcast_flag_and_bootp_summary() -> None:
    message = _message(flags=dhcp.FLAG_BROADCAST)
    assert message.broadcast
    assert message.summary().startswith("BOOTP request xid 0x00000007")
    assert message.summary().endswith(" broadcast")


# --- malformed ---------------------------------------------------------------------------------


def _with_options(raw_options: bytes) -> bytes:
    return DISCOVER_GOLDEN[: dhcp.OPTIONS_OFFSET] + raw_options


def _parse(data: bytes) -> Callable[[], object]:
    return lambda: DHCPMessage.parse(data)


# (name, reason, parse): every reason wire/dhcp.py raises (tests/wire/test_golden.py checks)
DHCP_MALFORMED_CASES: list[tuple[str, str, Callable[[], object]]] = [
    ("dhcp_239_bytes", "dhcp.truncated", _parse(DISCOVER_GOLDEN[:239])),
    ("dhcp_op_3", "dhcp.bad_op", _parse(b"\x03" + DISCOVER_GOLDEN[1:])),
    (
        "dhcp_hlen_17",
        "dhcp.bad_hardware_length",
        _parse(DISCOVER_GOLDEN[:2] + b"\x11" + DISCOVER_GOLDEN[3:]),
    ),
    (
        "dhcp_bootp_cookie",
        "dhcp.bad_cookie",
        _parse(DISCOVER_GOLDEN[:236] + b"\x63\x82\x53\x64" + DISCOVER_GOLDEN[240:]),
    ),
    ("dhcp_option_no_length", "dhcp.option_truncated", _parse(_with_options(b"\x35"))),
    ("dhcp_option_past_end", "dhcp.option_truncated", _parse(_with_options(b"\x35\x05\x01"))),
    ("dhcp_no_end", "dhcp.missing_end", _parse(_with_options(b"\x35\x01\x01"))),
    ("dhcp_no_options", "dhcp.missing_end", _parse(_with_options(b""))),
    (
        "dhcp_overload",
        "dhcp.option_overload_unsupported",
        _parse(_with_options(b"\x34\x01\x03\xff")),
    ),
    ("dhcp_type_2_bytes", "dhcp.bad_option_length", _parse(_with_options(b"\x35\x02\x01\x01\xff"))),
    (
        "dhcp_router_5_bytes",
        "dhcp.bad_option_length",
        _parse(_with_options(b"\x03\x05\x01\x02\x03\x04\x05\xff")),
    ),
    ("dhcp_client_id_1_byte", "dhcp.bad_option_length", _parse(_with_options(b"\x3d\x01\x01\xff"))),
    (
        "dhcp_lease_split_to_8",
        "dhcp.bad_option_length",
        _parse(_with_options(b"\x33\x04\x00\x00\x00\x01\x33\x04\x00\x00\x00\x01\xff")),
    ),
    ("dhcp_type_0", "dhcp.bad_message_type", _parse(_with_options(b"\x35\x01\x00\xff"))),
    (
        "dhcp_max_size_575",
        "dhcp.bad_max_message_size",
        _parse(_with_options(b"\x39\x02\x02\x3f\xff")),
    ),
]


@pytest.mark.parametrize(
    ("reason", "parse"),
    [pytest.param(reason, parse, id=name) for name, reason, parse in DHCP_MALFORMED_CASES],
)
def test_malformed_reasons(reason: str, parse: Callable[[], object]) -> None:
    with pytest.raises(MalformedPacket) as caught:
        parse()
    assert caught.value.reason == reason and caught.value.layer == "dhcp"
    assert drop_reason_for(reason) is DropReason.DHCP_MALFORMED


def test_anything_after_end_is_padding_verbatim() -> None:
    data = _with_options(b"\xff" + b"junk\x35")
    message = DHCPMessage.parse(data)
    assert message.options == () and message.padding == b"junk\x35"
    assert message.build() == data


@pytest.mark.parametrize(
    "message",
    [
        DHCPMessage(1, 0, MAC),  # chaddr not the whole field
        _message(sname=b"name\0"),
        _message(file=b"x" * 129),
        _message(DHCPOption(255)),
        _message(DHCPOption(0, b"x")),
        _message(DHCPOption(200, bytes(256))),
    ],
)
def test_build_rejects_what_parse_could_not_give_back(message: DHCPMessage) -> None:
    with pytest.raises(ValueError):
        message.build()


# --- hypothesis --------------------------------------------------------------------------------

_KNOWN_DATA = {
    dhcp.OPTION_MESSAGE_TYPE: st.integers(1, 255).map(lambda v: bytes([v])),
    dhcp.OPTION_SUBNET_MASK: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_REQUESTED_IP: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_SERVER_ID: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_LEASE_TIME: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_RENEWAL_TIME: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_REBINDING_TIME: st.binary(min_size=4, max_size=4),
    dhcp.OPTION_ROUTER: st.integers(1, 8).flatmap(
        lambda n: st.binary(min_size=4 * n, max_size=4 * n)
    ),
    dhcp.OPTION_DNS: st.integers(1, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    dhcp.OPTION_HOSTNAME: st.binary(min_size=1, max_size=40),
    dhcp.OPTION_PARAMETER_REQUEST_LIST: st.binary(min_size=1, max_size=20),
    dhcp.OPTION_CLIENT_ID: st.binary(min_size=2, max_size=20),
    dhcp.OPTION_MAX_MESSAGE_SIZE: st.integers(576, 0xFFFF).map(lambda v: v.to_bytes(2, "big")),
}
_UNKNOWN_CODES = st.integers(1, 254).filter(lambda c: c not in _KNOWN_DATA and c != 52)


@st.composite
def options(draw: st.DrawFn) -> tuple[DHCPOption, ...]:
    known = draw(st.lists(st.sampled_from(sorted(_KNOWN_DATA)), unique=True, max_size=6))
    chosen = [DHCPOption(code, draw(_KNOWN_DATA[code])) for code in known]
    chosen += draw(
        st.lists(st.builds(DHCPOption, _UNKNOWN_CODES, st.binary(max_size=30)), max_size=5)
    )
    chosen += [DHCPOption(0)] * draw(st.integers(0, 3))
    return tuple(draw(st.permutations(chosen)))


_u32 = st.integers(0, 0xFFFFFFFF)
_u16 = st.integers(0, 0xFFFF)
_u8 = st.integers(0, 255)
messages = st.builds(
    DHCPMessage,
    st.sampled_from([dhcp.BOOTREQUEST, dhcp.BOOTREPLY]),
    _u32,
    st.binary(min_size=16, max_size=16),
    options(),
    htype=_u8,
    hlen=st.integers(0, 16),
    hops=_u8,
    secs=_u16,
    flags=_u16,
    ciaddr=_u32,
    yiaddr=_u32,
    siaddr=_u32,
    giaddr=_u32,
    sname=st.binary(max_size=64).map(lambda b: b.rstrip(b"\0")),
    file=st.binary(max_size=128).map(lambda b: b.rstrip(b"\0")),
    padding=st.binary(max_size=70),
)


@given(messages)
@settings(max_examples=300)
def test_parse_inverts_build(message: DHCPMessage) -> None:
    data = message.build()
    assert DHCPMessage.parse(data) == message
    assert DHCPMessage.parse(data).build() == data


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_random_bytes_raise_only_malformed(data: bytes) -> None:
    try:
        DHCPMessage.parse(data)
    except MalformedPacket as error:
        assert error.reason.startswith("dhcp.")


@given(st.binary(max_size=120))
@settings(max_examples=300)
def test_random_options_raise_only_malformed(raw_options: bytes) -> None:
    try:
        message = DHCPMessage.parse(_with_options(raw_options))
    except MalformedPacket as error:
        assert error.reason.startswith("dhcp.")
    else:
        message.summary()
        assert message.build() == _with_options(raw_options)


# --- scapy as an oracle ------------------------------------------------------------------------

CASES = 300


def _scapy():  # type: ignore[no-untyped-def]
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    return pytest.importorskip("scapy.layers.dhcp")


def _random_options(rng: random.Random) -> list[DHCPOption]:
    """Options whose scapy dissection is known: typed ones and private-use codes (224-254)."""
    builders = [
        lambda: dhcp.message_type_option(rng.randrange(1, 9)),
        lambda: dhcp.address_option(rng.choice((1, 50, 54)), rng.getrandbits(32)),
        lambda: dhcp.seconds_option(rng.choice((51, 58, 59)), rng.getrandbits(32)),
        lambda: dhcp.addresses_option(
            rng.choice((3, 6)), [rng.getrandbits(32) for _ in range(rng.randrange(1, 4))]
        ),
        lambda: DHCPOption(12, rng.randbytes(rng.randrange(1, 20))),
        lambda: DHCPOption(55, bytes(rng.sample(range(1, 80), rng.randrange(1, 10)))),
        lambda: DHCPOption(61, rng.randbytes(rng.randrange(2, 12))),
    ]
    picked = rng.sample(range(len(builders)), rng.randrange(0, len(builders) + 1))
    chosen = [builders[i]() for i in picked]
    chosen += [DHCPOption(rng.randrange(224, 255), rng.randbytes(rng.randrange(0, 10)))]
    rng.shuffle(chosen)
    return chosen


def _random_message(rng: random.Random) -> DHCPMessage:
    return DHCPMessage(
        rng.choice((1, 2)),
        rng.getrandbits(32),
        rng.randbytes(16),
        tuple(_random_options(rng)),
        hlen=rng.randrange(0, 17),
        hops=rng.randrange(256),
        secs=rng.getrandbits(16),
        flags=rng.getrandbits(16),
        ciaddr=rng.getrandbits(32),
        yiaddr=rng.getrandbits(32),
        siaddr=rng.getrandbits(32),
        giaddr=rng.getrandbits(32),
        sname=rng.randbytes(rng.randrange(0, 64)).rstrip(b"\0"),
        file=rng.randbytes(rng.randrange(0, 128)).rstrip(b"\0"),
    )


def _scapy_value(option: DHCPOption) -> object:
    """How scapy shows our option's value after its name."""
    code, data = option
    if code == 53:
        return (data[0],)
    if code in (1, 50, 54):
        return (ip_to_str(int.from_bytes(data, "big")),)
    if code in (3, 6):
        return tuple(
            ip_to_str(int.from_bytes(data[i : i + 4], "big")) for i in range(0, len(data), 4)
        )
    if code in (51, 58, 59):
        return (int.from_bytes(data, "big"),)
    if code == 55:
        return (list(data),)
    return (data,)


def test_scapy_dissects_our_messages() -> None:
    layers = _scapy()
    rng = random.Random(2131)
    for _ in range(CASES):
        message = _random_message(rng)
        packet = layers.BOOTP(message.build())
        for field in ("op", "htype", "hlen", "hops", "xid", "secs", "flags"):
            assert getattr(packet, field) == getattr(message, field), field
        for field in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
            assert getattr(packet, field) == ip_to_str(getattr(message, field)), field
        assert bytes(packet.chaddr) == message.chaddr
        assert bytes(packet.sname).rstrip(b"\0") == message.sname
        assert bytes(packet.file).rstrip(b"\0") == message.file
        seen = packet[layers.DHCP].options
        assert seen[-1] == "end"
        assert len(seen) - 1 == len(message.options)
        for ours, theirs in zip(message.options, seen, strict=False):
            name, *values = theirs
            code = name if isinstance(name, int) else layers.DHCPRevOptions[name][0]
            assert code == ours.code
            assert tuple(values) == _scapy_value(ours), (theirs, ours)


def test_we_parse_scapy_messages() -> None:
    layers = _scapy()
    from scapy.compat import raw

    rng = random.Random(2132)
    for _ in range(CASES):
        expected = _random_message(rng)
        packet = layers.BOOTP(
            op=expected.op, htype=expected.htype, hlen=expected.hlen, hops=expected.hops,
            xid=expected.xid, secs=expected.secs, flags=expected.flags,
            ciaddr=ip_to_str(expected.ciaddr), yiaddr=ip_to_str(expected.yiaddr),
            siaddr=ip_to_str(expected.siaddr), giaddr=ip_to_str(expected.giaddr),
            chaddr=expected.chaddr, sname=expected.sname, file=expected.file,
        ) / layers.DHCP(options=[(code, data) for code, data in expected.options] + ["end"])  # fmt: skip
        data = raw(packet)
        assert DHCPMessage.parse(data) == expected
        assert expected.build() == data
