"""DHCPv4 messages (RFC 2131 section 2, options RFC 2132): the BOOTP header and option TLVs.

A ``DHCPMessage`` is the fixed 236-byte BOOTP part, the magic cookie, the options in wire order
and whatever follows the end option. Fields are kept so that ``parse`` and ``build`` are exact
inverses: ``chaddr`` is the whole 16-byte field (``hardware_address`` is its first ``hlen``
bytes; ``chaddr_for(mac)`` pads a MAC), ``sname`` and ``file`` lose only their trailing NUL
padding, pad options (code 0) stay in ``options`` as ``DHCPOption(0)``, and the bytes after the
end option (BOOTP's pad to 300 bytes, RFC 1542 2.1) are ``padding``, verbatim.

Unknown options are preserved as raw bytes. The options this stack reads have their lengths
checked (RFC 2132); a repeated option is one value split in pieces (RFC 3396), so the checks
and the accessors (``option(code)``, ``message_type``, ``lease_time``...) see the pieces joined.
Option overload (52: options continued in ``sname``/``file``) is rejected as unsupported.
``parse`` raises only ``MalformedPacket("dhcp....")``; ``build`` raises ``ValueError``.
Entry points: ``DHCPMessage``, ``DHCPOption``, ``chaddr_for``, the option helpers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from pystack.wire.addresses import ip_to_str, mac_to_str
from pystack.wire.errors import MalformedPacket

SERVER_PORT, CLIENT_PORT = 67, 68
BOOTREQUEST, BOOTREPLY = 1, 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LENGTH = 236  # op .. file
OPTIONS_OFFSET = FIXED_LENGTH + 4
MINIMUM_LENGTH = 300  # RFC 1542 2.1: relay agents may drop shorter BOOTP messages
SNAME_LENGTH, FILE_LENGTH, CHADDR_LENGTH = 64, 128, 16

# message types (option 53, RFC 2132 9.6)
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MESSAGE_TYPE_NAMES = {
    DISCOVER: "DISCOVER",
    OFFER: "OFFER",
    REQUEST: "REQUEST",
    DECLINE: "DECLINE",
    ACK: "ACK",
    NAK: "NAK",
    RELEASE: "RELEASE",
    INFORM: "INFORM",
}

# option codes (RFC 2132)
OPTION_PAD, OPTION_SUBNET_MASK, OPTION_ROUTER, OPTION_DNS, OPTION_HOSTNAME = 0, 1, 3, 6, 12
OPTION_REQUESTED_IP, OPTION_LEASE_TIME, OPTION_OVERLOAD, OPTION_MESSAGE_TYPE = 50, 51, 52, 53
OPTION_SERVER_ID, OPTION_PARAMETER_REQUEST_LIST, OPTION_MESSAGE = 54, 55, 56
OPTION_MAX_MESSAGE_SIZE, OPTION_RENEWAL_TIME, OPTION_REBINDING_TIME = 57, 58, 59
OPTION_CLIENT_ID, OPTION_END = 61, 255
INFINITE_LEASE = 0xFFFFFFFF  # RFC 2131 3.3

_fixed = struct.Struct("!BBBBIHHIIII16s64s128s")
_u32 = struct.Struct("!I")
_u16 = struct.Struct("!H")

# code -> (exact length or None, minimum length, multiple of): the options the stack reads
_LENGTHS: dict[int, tuple[int | None, int, int]] = {
    OPTION_SUBNET_MASK: (4, 4, 1),
    OPTION_ROUTER: (None, 4, 4),
    OPTION_DNS: (None, 4, 4),
    OPTION_HOSTNAME: (None, 1, 1),
    OPTION_REQUESTED_IP: (4, 4, 1),
    OPTION_LEASE_TIME: (4, 4, 1),
    OPTION_MESSAGE_TYPE: (1, 1, 1),
    OPTION_SERVER_ID: (4, 4, 1),
    OPTION_PARAMETER_REQUEST_LIST: (None, 1, 1),
    OPTION_MAX_MESSAGE_SIZE: (2, 2, 1),
    OPTION_RENEWAL_TIME: (4, 4, 1),
    OPTION_REBINDING_TIME: (4, 4, 1),
    OPTION_CLIENT_ID: (None, 2, 1),
}


class DHCPOption(NamedTuple):
    code: int
    data: bytes = b""


def chaddr_for(mac: bytes) -> bytes:
    """The 16-byte ``chaddr`` field holding ``mac`` (RFC 2131 2: zero padded)."""
    if len(mac) > CHADDR_LENGTH:
        raise ValueError(f"hardware address of {len(mac)} bytes exceeds 16")
    return mac.ljust(CHADDR_LENGTH, b"\0")


def address_option(code: int, address: int) -> DHCPOption:
    return DHCPOption(code, _u32.pack(address))


def addresses_option(code: int, addresses: Iterable[int]) -> DHCPOption:
    return DHCPOption(code, b"".join(_u32.pack(a) for a in addresses))


def seconds_option(code: int, seconds: int) -> DHCPOption:
    return DHCPOption(code, _u32.pack(seconds))


def message_type_option(message_type: int) -> DHCPOption:
    return DHCPOption(OPTION_MESSAGE_TYPE, bytes([message_type]))


class DHCPMessage(NamedTuple):
    op: int
    xid: int
    chaddr: bytes  # the whole 16-byte field; see chaddr_for
    options: tuple[DHCPOption, ...] = ()
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    sname: bytes = b""  # without its trailing NUL padding
    file: bytes = b""
    padding: bytes = b""  # the bytes after the end option, verbatim

    # -- codec -------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DHCPMessage:
        size = len(data)
        if size < OPTIONS_OFFSET:
            raise MalformedPacket("dhcp.truncated", f"{size} bytes, need {OPTIONS_OFFSET}")
        (
            op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            chaddr,
            sname,
            file,
        ) = _fixed.unpack_from(data)
        if op not in (BOOTREQUEST, BOOTREPLY):
            raise MalformedPacket("dhcp.bad_op", f"op {op}")
        if hlen > CHADDR_LENGTH:
            raise MalformedPacket("dhcp.bad_hardware_length", f"hlen {hlen}")
        if bytes(data[FIXED_LENGTH:OPTIONS_OFFSET]) != MAGIC_COOKIE:
            raise MalformedPacket("dhcp.bad_cookie", "no DHCP magic cookie (plain BOOTP)")
        options, padding = _parse_options(data, size)
        message = cls(
            op,
            xid,
            chaddr,
            options,
            htype,
            hlen,
            hops,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            sname.rstrip(b"\0"),
            file.rstrip(b"\0"),
            padding,
        )
        _validate_options(message)
        return message

    def build(self) -> bytes:
        if len(self.chaddr) != CHADDR_LENGTH:
            raise ValueError("chaddr must be the whole 16-byte field (see chaddr_for)")
        for name, value, limit in (
            ("sname", self.sname, SNAME_LENGTH),
            ("file", self.file, FILE_LENGTH),
        ):
            if len(value) > limit or value.endswith(b"\0"):
                raise ValueError(f"{name} must be at most {limit} bytes without trailing NULs")
        parts = [
            _fixed.pack(
                self.op,
                self.htype,
                self.hlen,
                self.hops,
                self.xid,
                self.secs,
                self.flags,
                self.ciaddr,
                self.yiaddr,
                self.siaddr,
                self.giaddr,
                self.chaddr,
                self.sname,
                self.file,
            ),
            MAGIC_COOKIE,
        ]
        for code, data in self.options:
            if code == OPTION_PAD:
                if data:
                    raise ValueError("a pad option carries no data")
                parts.append(b"\0")
            elif code == OPTION_END or not 0 < code < 255:
                raise ValueError(f"option code {code} cannot be listed (end is implicit)")
            elif len(data) > 255:
                raise ValueError(f"option {code} of {len(data)} bytes (split it, RFC 3396)")
            else:
                parts.append(bytes((code, len(data))) + data)
        parts.append(b"\xff")
        parts.append(self.padding)
        return b"".join(parts)

    def padded(self, minimum: int = MINIMUM_LENGTH) -> DHCPMessage:
        """This message with zero ``padding`` so that it builds to at least ``minimum`` bytes."""
        length = OPTIONS_OFFSET + 1 + sum(1 if c == 0 else 2 + len(d) for c, d in self.options)
        return self._replace(padding=b"\0" * max(0, minimum - length))

    # -- reading options ---------------------------------------------------------------------
    def option(self, code: int) -> bytes | None:
        """The option's data, the pieces of a split option joined (RFC 3396); None if absent."""
        pieces = [data for c, data in self.options if c == code]
        return b"".join(pieces) if pieces else None

    def _address(self, code: int) -> int | None:
        data = self.option(code)
        return None if data is None else int(_u32.unpack(data)[0])

    def _addresses(self, code: int) -> tuple[int, ...]:
        data = self.option(code) or b""
        return tuple(int(a) for (a,) in _u32.iter_unpack(data))

    @property
    def message_type(self) -> int | None:
        data = self.option(OPTION_MESSAGE_TYPE)
        return None if data is None else data[0]

    @property
    def hardware_address(self) -> bytes:
        return self.chaddr[: self.hlen]

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    @property
    def requested_ip(self) -> int | None:
        return self._address(OPTION_REQUESTED_IP)

    @property
    def server_id(self) -> int | None:
        return self._address(OPTION_SERVER_ID)

    @property
    def subnet_mask(self) -> int | None:
        return self._address(OPTION_SUBNET_MASK)

    @property
    def lease_time(self) -> int | None:
        return self._address(OPTION_LEASE_TIME)

    @property
    def renewal_time(self) -> int | None:
        return self._address(OPTION_RENEWAL_TIME)

    @property
    def rebinding_time(self) -> int | None:
        return self._address(OPTION_REBINDING_TIME)

    @property
    def routers(self) -> tuple[int, ...]:
        return self._addresses(OPTION_ROUTER)

    @property
    def dns_servers(self) -> tuple[int, ...]:
        return self._addresses(OPTION_DNS)

    @property
    def hostname(self) -> str | None:
        data = self.option(OPTION_HOSTNAME)
        return None if data is None else data.decode("utf-8", "replace")

    @property
    def parameter_request_list(self) -> tuple[int, ...]:
        return tuple(self.option(OPTION_PARAMETER_REQUEST_LIST) or b"")

    @property
    def client_id(self) -> bytes | None:
        return self.option(OPTION_CLIENT_ID)

    def summary(self) -> str:
        kind = self.message_type
        if kind is None:
            name = "BOOTP " + ("request" if self.op == BOOTREQUEST else "reply")
        else:
            name = "DHCP " + MESSAGE_TYPE_NAMES.get(kind, f"type {kind}")
        line = f"{name} xid 0x{self.xid:08x} chaddr {mac_to_str(self.hardware_address)}"
        for label, address in (
            ("ciaddr", self.ciaddr),
            ("yiaddr", self.yiaddr),
            ("giaddr", self.giaddr),
        ):
            if address:
                line += f" {label} {ip_to_str(address)}"
        requested, server, lease = self.requested_ip, self.server_id, self.lease_time
        if requested is not None:
            line += f" requested {ip_to_str(requested)}"
        if server is not None:
            line += f" server {ip_to_str(server)}"
        if lease is not None:
            line += " lease infinite" if lease == INFINITE_LEASE else f" lease {lease}s"
        return line + (" broadcast" if self.broadcast else "")


def _parse_options(
    data: bytes | bytearray | memoryview, size: int
) -> tuple[tuple[DHCPOption, ...], bytes]:
    options: list[DHCPOption] = []
    offset = OPTIONS_OFFSET
    while offset < size:
        code = data[offset]
        if code == OPTION_PAD:
            options.append(DHCPOption(OPTION_PAD))
            offset += 1
            continue
        if code == OPTION_END:
            return tuple(options), bytes(data[offset + 1 :])
        if offset + 2 > size:
            raise MalformedPacket("dhcp.option_truncated", f"option {code} has no length")
        end = offset + 2 + data[offset + 1]
        if end > size:
            raise MalformedPacket("dhcp.option_truncated", f"option {code} runs past the end")
        options.append(DHCPOption(code, bytes(data[offset + 2 : end])))
        offset = end
    raise MalformedPacket("dhcp.missing_end", "options without the end option")


def _validate_options(message: DHCPMessage) -> None:
    codes = {code for code, _ in message.options if code}
    if OPTION_OVERLOAD in codes:
        raise MalformedPacket("dhcp.option_overload_unsupported", "option 52 (overload)")
    for code in codes & _LENGTHS.keys():
        data = message.option(code) or b""
        exact, minimum, multiple = _LENGTHS[code]
        if (
            (exact is not None and len(data) != exact)
            or len(data) < minimum
            or len(data) % multiple
        ):
            raise MalformedPacket("dhcp.bad_option_length", f"option {code}, {len(data)} bytes")
    if message.message_type == 0:
        raise MalformedPacket("dhcp.bad_message_type", "message type 0")
    size = message.option(OPTION_MAX_MESSAGE_SIZE)
    if size is not None and _u16.unpack(size)[0] < 576:  # RFC 2132 9.10: at least 576
        raise MalformedPacket("dhcp.bad_max_message_size", f"{_u16.unpack(size)[0]} bytes")
