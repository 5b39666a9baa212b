"""The values of the script notation: one frozen dataclass per kind of line.

``notation.py`` turns text into these values and back; ``runner.py`` executes them. They hold
numbers exactly as written in the script (peer- or pystack-relative, see ``notation.py``); the
translation to wire numbers happens in ``matching.py``. Nothing here parses or runs anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pystack.tcp.state import TCPState


class Wildcard(enum.Enum):
    """A value that is not a number: ``*`` (any value) or ``$`` (the latest one seen)."""

    ANY = "*"
    LATEST = "$"


Field = int | Wildcard
INBOUND = "<"  # the peer sends to pystack
OUTBOUND = ">"  # pystack must send


@dataclass(frozen=True)
class TimeSpec:
    """When a line happens: ``start`` (None: any time) up to ``end`` (a range, or None).

    ``relative`` times count from the previous line's (actual) time, absolute ones from 0.
    """

    relative: bool
    start: float | None
    end: float | None = None


NOW = TimeSpec(relative=True, start=0.0)  # a line written without a time


@dataclass(frozen=True)
class OptionSpec:
    """One TCP option as written: ``kind`` is the wire kind; ``values`` its numbers in order.

    MSS and window scale: one value; SACK: left, right, left, right...; timestamps: val, ecr;
    SACK-permitted, NOP and EOL: none; any other kind: ``raw`` bytes.
    """

    kind: int
    values: tuple[Field, ...] = ()
    raw: bytes = b""


@dataclass(frozen=True)
class Packet:
    """A TCP segment line. ``None`` fields were not written: don't care (outbound) or default."""

    direction: str  # INBOUND or OUTBOUND
    flags: int
    seq: Field
    end: Field
    length: Field
    ack: Field | None = None
    window: Field | None = None
    urgent: Field | None = None
    options: tuple[OptionSpec, ...] | Wildcard | None = None  # Wildcard.ANY is ``<...>``


@dataclass(frozen=True)
class Payload:
    """The bytes of a UDP datagram, an ICMP echo or a UDP call, as written.

    ``data`` None: ``length`` bytes of the pattern (byte i is ``i & 0xff``), written ``(N)`` on
    packet lines and ``N`` in calls; ``length`` ``*`` (``>`` lines, ``recvfrom``): any bytes.
    Otherwise exactly ``data``, written as a string (``text``) or ``hex HEX``.
    """

    length: Field
    data: bytes | None = None
    text: bool = False


@dataclass(frozen=True)
class ICMP:
    """An ICMP error. ``<``: from the peer, quoting pystack's last TCP or UDP packet (or the last
    one of ``quote``'s protocol); ``>``: pystack must send it (type and code are checked)."""

    kind: str  # "unreachable" or "time-exceeded"
    code: str  # "port", "need-frag", ... / "ttl", "reassembly"
    mtu: int | None = None  # need-frag only
    direction: str = INBOUND
    quote: str | None = None  # "tcp" or "udp": quote the last packet of that protocol


@dataclass(frozen=True)
class Echo:
    """An ICMP echo request (``echo``) or reply (``echo-reply``) with its identifier and sequence."""

    direction: str
    reply: bool
    identifier: Field
    sequence: Field
    payload: Payload


@dataclass(frozen=True)
class UDP:
    """A UDP datagram line: ports as on the wire (source>destination), and its payload."""

    direction: str
    source_port: Field
    destination_port: Field
    payload: Payload


@dataclass(frozen=True)
class RawPacket:
    """An IPv4 packet the peer sends byte for byte as written (inbound only, ``< raw HEX``).

    For what the notation cannot spell: a fuzzer's mutated packet with a bad checksum, a
    truncated header, a fragment, UDP garbage. It is sent as it is, ports and numbers included
    (nothing is translated); a valid TCP SYN in it to the script's ports starts the peer's byte
    stream as a ``<`` SYN line does.
    """

    data: bytes


# application calls ----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Call:
    """An application call; ``error`` names the errno the call must fail with (``= ENAME``)."""

    error: str | None = None


@dataclass(frozen=True)
class Listen(Call):
    port: int
    backlog: int | None = None


@dataclass(frozen=True)
class Connect(Call):
    address: str
    port: int
    local_port: int | None = None


@dataclass(frozen=True)
class Accept(Call):
    optional: bool = False  # ``accept ?``: there may be no connection ready


@dataclass(frozen=True)
class Write(Call):
    length: int
    text: str | None = None  # None: ``length`` bytes of the pattern


@dataclass(frozen=True)
class Read(Call):
    length: int | None  # None: ``read eof``
    exact: bool = True  # False: ``read upto N``, any count up to N (0 too) of the right bytes


@dataclass(frozen=True)
class Simple(Call):
    name: str  # "shutdown", "close" or "abort"


@dataclass(frozen=True)
class NoDelay(Call):
    on: bool


# UDP calls: one UDP socket per script, opened by ``udp bind``
@dataclass(frozen=True)
class UDPBind(Call):
    port: int  # 0: an ephemeral port


@dataclass(frozen=True)
class UDPConnect(Call):
    address: str
    port: int


@dataclass(frozen=True)
class UDPSendTo(Call):
    address: str | None  # None: ``udp send`` to the connected peer
    port: int | None
    payload: Payload


@dataclass(frozen=True)
class UDPRecvFrom(Call):
    payload: Payload  # length ``*``: any datagram
    source: tuple[str, int] | None = None  # ``from ADDRESS:PORT``: who must have sent it


@dataclass(frozen=True)
class UDPClose(Call):
    pass


# expectations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectState:
    state: TCPState


@dataclass(frozen=True)
class ExpectError:
    name: str | None  # an errno name, None for ``expect error none``


@dataclass(frozen=True)
class ExpectCounter:
    name: str
    value: int


@dataclass(frozen=True)
class ExpectDrop:
    reason: str  # a DropReason member name
    value: int


@dataclass(frozen=True)
class ExpectInfo:
    key: str
    value: int | str


@dataclass(frozen=True)
class ExpectNothing:
    pass


@dataclass(frozen=True)
class ExpectInvariants:
    """``expect invariants``: every TCP connection's sequence space and every TCP table and
    buffer is within its bounds (``pystack.tcp.invariants``)."""


# directives (no time) -------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    seconds: float


@dataclass(frozen=True)
class Ports:
    peer: int
    local: int


@dataclass(frozen=True)
class EndStrict:
    seconds: float


@dataclass(frozen=True)
class Setting:
    """``set NAME VALUE``: a per-script setting; each target maps the names it knows."""

    name: str
    value: str


@dataclass(frozen=True)
class IgnoreOutbound:
    """``ignore outbound``: pystack's packets are recorded, not matched (no ``>`` lines needed).

    For a fuzzer's reproducer, whose failure is an exception, a wrong read or an
    ``expect invariants``, not a packet pystack sends.
    """


@dataclass(frozen=True)
class Serve:
    """``serve echo PORT``: pystack runs its echo service (RFC 862) on PORT during the script.

    The fuzzer's cases run one beside the case's own calls (the reference peer's exchanges go
    through it), so a replay needs it too to be the same run.
    """

    service: str
    port: int


Expectation = (
    ExpectState
    | ExpectError
    | ExpectCounter
    | ExpectDrop
    | ExpectInfo
    | ExpectNothing
    | ExpectInvariants
)


@dataclass(frozen=True)
class ExactWindows:
    """``exact windows``: window numbers are compared as written on every target.

    The kernel target otherwise compares a window as open or closed (its size is Linux's
    configuration); a script whose subject is a window's size or its edge says this, so that
    on Linux it fails at the first window that differs instead of passing unchecked.
    """


Directive = Tolerance | Ports | EndStrict | Setting | IgnoreOutbound | Serve | ExactWindows
Wire = Packet | ICMP | Echo | UDP  # the lines that are packets, with a direction
Event = Wire | RawPacket | Call | Expectation | Directive


@dataclass(frozen=True)
class ScriptLine:
    """One parsed line: its 1-based number, its text, its time (None for directives)."""

    number: int
    text: str
    time: TimeSpec | None
    event: Event
