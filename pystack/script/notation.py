"""The script notation: text lines <-> the values of ``events.py`` (parser and formatter).

A packetdrill-like notation, one event per line; ``#`` starts a comment, blank lines are ignored::

    line      := directive | [time] event          # no time means "+0"
    directive := "tolerance" SECONDS | "ports" PEER_PORT PYSTACK_PORT | "end strict" [SECONDS]
               | "set" NAME VALUE                 # settings: before the first event only
               | "ignore outbound" | "serve echo" PORT | "exact windows"
    time      := point ["~" point] | "*"          # a~b: a range (both ends absolute or relative)
    point     := SECONDS | "+" SECONDS             # since 0 / since the previous line's time
    event     := ("<"|">") (packet | udp | icmp) | "<" "raw" HEX | call ["=" ERRNO] | expectation
    packet    := FLAGS SEQ ":" END "(" LEN ")" {"ack" N | "win" N | "urg" N} ["<" options ">"]
    FLAGS     := letters of S F R P U E W and "." (ACK), as tcpdump prints them; "-" for none
    options   := "..." | option {"," option} | nothing ("<>": no options)
    option    := "mss" N | "wscale" N | "sackOK" | "sack" L:R {L:R} | "TS val" N "ecr" N
               | "nop" | "eol" | "opt" KIND [HEX]
    udp       := "udp" SPORT ">" DPORT payload      # e.g. "< udp 9000>53 (12)"
    payload   := "(" LEN ")" | STRING | "hex" HEX   # LEN pattern bytes, or exactly these bytes
    icmp      := "icmp unreachable" (net|host|protocol|port|need-frag|admin-prohibited)
                     ["mtu" N] ["of" (tcp|udp)]
               | "icmp time-exceeded" (ttl|reassembly) ["of" (tcp|udp)]
               | "icmp" ("echo"|"echo-reply") "id" N "seq" N payload
    call      := "listen" PORT ["backlog" N] | "connect" ADDRESS:PORT ["from" PORT]
               | "accept" ["?"] | "write" (N | STRING) | "read" (N | "upto" N | "eof")
               | "shutdown" | "close" | "abort" | "nodelay" (on|off)
               | "udp bind" PORT | "udp connect" ADDRESS:PORT
               | "udp sendto" ADDRESS:PORT data | "udp send" data
               | "udp recvfrom" (data | "*") ["from" ADDRESS:PORT] | "udp close"
    data      := N | STRING | "hex" HEX             # a call's bytes: as payload, without ()
    expectation := "expect" ("state" STATE | "error" (ERRNO|none) | "counter" NAME N
               | "drop" REASON N | "info" KEY VALUE | "nothing" | "invariants")

``<`` lines are sent by the peer, ``>`` lines must be sent by pystack. On ``>`` lines any number
may be ``*`` (any value), and a field left out (``ack``, ``win``, ``urg``, the options) is not
checked; ``ecr $`` means "the peer's latest TS val". On ``<`` lines ``win`` defaults to 65535,
options to none, ``ack`` is required with ``.``, and ``ecr *``/``ecr $`` echo pystack's latest TS
val. UDP and ICMP echo payloads of ``(N)`` are N bytes of the pattern ``i & 0xff`` (from 0 in
each datagram); ``udp sendto ... N`` sends exactly that, so ``> udp 8080>9000 (N)`` matches it.
On ``>`` lines the ports, ``id``, ``seq`` and ``(LEN)`` may be ``*``. A ``< icmp`` error quotes
pystack's last TCP or UDP packet (``of udp``: its last UDP one). ``< raw HEX`` sends an IPv4 packet exactly as written (a fuzzer's mutated packet; nothing
in it is translated). ``ignore outbound`` records pystack's packets instead of matching them (no
``>`` lines then); ``expect invariants`` checks every TCP connection's sequence space and every
TCP table and buffer against its bound (``pystack.tcp.invariants``); ``serve echo PORT`` runs
pystack's echo service on PORT beside the script's own calls. A ``+`` time counts from the previous line's actual time (for a ``>`` line: when the packet
came). Only ``>`` lines may have a range or ``*`` ("whenever it comes") as their time; their
exact times allow the script's ``tolerance`` (default 0). ``= ERRNO`` after a call means the call
must raise ``OSError`` with that errno. ``write N`` sends N pattern bytes (byte at pystack's
relative seq s is ``s & 0xff``); ``read N`` must return exactly the peer's next N bytes, ``read upto N`` at most N of them (none
is fine, also when there is no connection: a fuzzer's reproducer reads so, as much as there
was, and replayed on a sound stack there may be less). What the
numbers mean is told in ``matching.py``; the formatter is ``formatting.py`` (in part re-exported).
Entry points: ``parse_script``, ``parse_line``, ``parse_time``, ``format_line``.
"""

from __future__ import annotations

import ast
import errno
import re

from pystack.script import events as ev
from pystack.script.events import INBOUND, OUTBOUND, Field, OptionSpec, Packet, TimeSpec, Wildcard
from pystack.script.formatting import FLAG_LETTERS, format_event, format_line, format_packet
from pystack.stats import DropReason
from pystack.tcp.state import TCPState
from pystack.wire import tcp
from pystack.wire.addresses import ip_from_str

_POINT = re.compile(r"(\+)?(\d+(?:\.\d*)?|\.\d+)")
_RANGE = re.compile(r"(\S+):(\S+)\((\S+)\)")
_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_KNOWN_OPTIONS = frozenset({0, 1, 2, 3, 4, 5, 8})
_ICMP_CODES = {
    "unreachable": ("net", "host", "protocol", "port", "need-frag", "admin-prohibited"),
    "time-exceeded": ("ttl", "reassembly"),
}
_SIMPLE_CALLS = ("shutdown", "close", "abort")
_SETTING_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PORTS = re.compile(r"(\S+)>(\S+)")
SERVICES = ("echo",)  # what ``serve`` can run
U32 = 1 << 32
__all__ = ["ScriptSyntaxError", "format_event", "format_line", "format_packet", "parse_line"]
__all__ += ["parse_script", "parse_time"]


class ScriptSyntaxError(ValueError):
    """A line that is not valid notation; the message names the line and what is wrong."""

    def __init__(self, message: str, number: int = 0, text: str = "") -> None:
        self.message, self.number, self.text = message, number, text
        where = f"line {number}: " if number else ""
        super().__init__(f"{where}{message}" + (f"\n    {text.strip()}" if text else ""))


# parsing ------------------------------------------------------------------------------------
def parse_script(text: str) -> tuple[ev.ScriptLine, ...]:
    """Every event line of ``text``; ``ScriptSyntaxError`` names the first bad line."""
    lines = (parse_line(line, number) for number, line in enumerate(text.splitlines(), 1))
    return tuple(line for line in lines if line is not None)


def parse_line(text: str, number: int = 1) -> ev.ScriptLine | None:
    """One line; None for a blank or comment-only line."""
    body = _strip_comment(text).strip()
    if not body:
        return None
    try:
        time, event = _parse_body(body)
    except ScriptSyntaxError as error:
        raise ScriptSyntaxError(error.message, number, text) from None
    return ev.ScriptLine(number, text.strip(), time, event)


def _strip_comment(text: str) -> str:
    in_string = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = in_string
        elif char == '"':
            in_string = not in_string
        elif char == "#" and not in_string:
            return text[:index]
    return text


def _parse_body(body: str) -> tuple[TimeSpec | None, ev.Event]:
    first, rest = [*body.split(maxsplit=1), ""][:2]
    if first == "ignore":
        if rest.strip() != "outbound":
            raise ScriptSyntaxError("usage: ignore outbound")
        return None, ev.IgnoreOutbound()
    if first == "exact":
        if rest.strip() != "windows":
            raise ScriptSyntaxError("usage: exact windows")
        return None, ev.ExactWindows()
    if first == "serve":
        words = rest.split()
        if len(words) != 2 or words[0] not in SERVICES:
            raise ScriptSyntaxError(f"usage: serve ({'|'.join(SERVICES)}) PORT")
        return None, ev.Serve(words[0], _number(words[1], "port", 65536))
    if first in ("tolerance", "ports", "end", "set"):
        return None, _parse_directive(first, rest.split())
    time = ev.NOW
    if first[0] in "+*.0123456789":
        time = parse_time(first)
        body = rest.strip()
        if not body:
            raise ScriptSyntaxError("a time needs an event after it")
    event = _parse_event(body)
    outbound = isinstance(event, ev.Wire) and event.direction == OUTBOUND
    if not outbound and (time.start is None or time.end is not None):
        raise ScriptSyntaxError("only '>' lines may have '*' or a range as their time")
    return time, event


def parse_time(token: str) -> TimeSpec:
    if token == "*":
        return TimeSpec(relative=True, start=None)
    points = [_parse_point(part) for part in token.split("~")]
    if len(points) > 2:
        raise ScriptSyntaxError(f"bad time {token!r}: one '~' at most")
    relative, start = points[0]
    if len(points) == 1:
        return TimeSpec(relative, start)
    end_relative, end = points[1]
    if end_relative != relative:
        raise ScriptSyntaxError(f"bad time {token!r}: both ends absolute or both relative (+)")
    if end < start:
        raise ScriptSyntaxError(f"bad time {token!r}: the range ends before it starts")
    return TimeSpec(relative, start, end)


def _parse_point(text: str) -> tuple[bool, float]:
    match = _POINT.fullmatch(text)
    if match is None:
        raise ScriptSyntaxError(f"bad time {text!r}: write 0.1 (absolute) or +0.1 (relative)")
    return match.group(1) is not None, float(match.group(2))


def _number(token: str, what: str, limit: int = U32) -> int:
    if not token.isdigit():
        raise ScriptSyntaxError(f"{what}: expected a number, got {token!r}")
    value = int(token)
    if value >= limit:
        raise ScriptSyntaxError(f"{what}: {value} is too large (limit {limit - 1})")
    return value


def _field(token: str, what: str, direction: str, limit: int = U32, latest: bool = False) -> Field:
    if token == "*" and (direction == OUTBOUND or latest):
        return Wildcard.ANY
    if token == "$" and latest:
        return Wildcard.LATEST
    if token in ("*", "$"):
        raise ScriptSyntaxError(f"{what}: {token!r} is only allowed on '>' lines")
    return _number(token, what, limit)


def _parse_directive(name: str, words: list[str]) -> ev.Directive:
    if name == "tolerance" and len(words) == 1:
        return ev.Tolerance(_seconds(words[0]))
    if name == "ports" and len(words) == 2:
        return ev.Ports(_number(words[0], "peer port", 65536), _number(words[1], "port", 65536))
    if name == "end" and words[:1] == ["strict"] and len(words) <= 2:
        return ev.EndStrict(_seconds(words[1]) if len(words) == 2 else 5.0)
    if name == "set" and len(words) == 2:
        if _SETTING_NAME.fullmatch(words[0]) is None:
            raise ScriptSyntaxError(f"bad setting name {words[0]!r}: lower-case letters, digits, _")
        return ev.Setting(words[0], words[1])
    usage = {
        "tolerance": "tolerance SECONDS",
        "ports": "ports PEER_PORT PYSTACK_PORT",
        "set": "set NAME VALUE (e.g. set sack off)",
    }
    raise ScriptSyntaxError(f"usage: {usage.get(name, 'end strict [SECONDS]')}")


def _seconds(token: str) -> float:
    relative, value = _parse_point(token)
    if relative:
        raise ScriptSyntaxError(f"expected seconds, got {token!r}")
    return value


def _parse_event(body: str) -> ev.Event:
    direction = body[0]
    if direction in (INBOUND, OUTBOUND):
        rest = body[1:].strip()
        protocol = rest.split(maxsplit=1)[:1]
        if protocol == ["icmp"]:
            return _parse_icmp(direction, _WORD.findall(rest)[1:])
        if protocol == ["udp"]:
            return _parse_udp(direction, _WORD.findall(rest)[1:])
        if protocol == ["raw"]:
            if direction == OUTBOUND:
                raise ScriptSyntaxError("only the peer sends raw packets ('< raw HEX')")
            return _parse_raw(rest[3:])
        return _parse_packet(direction, rest)
    words = _WORD.findall(body)
    if words[0] == "expect":
        return _parse_expectation(words[1:])
    if words[0] == "udp":
        error = None
        if len(words) >= 3 and words[-2] == "=":
            error = _errno_name(words[-1])
            words = words[:-2]
        return _parse_udp_call(words[1:], error)
    error = None
    if len(words) >= 3 and words[-2] == "=":
        error = _errno_name(words[-1])
        words = words[:-2]
    return _parse_call(words[0], words[1:], error)


# packets ------------------------------------------------------------------------------------
def _parse_packet(direction: str, text: str) -> Packet:
    options: tuple[OptionSpec, ...] | Wildcard | None = None
    if "<" in text:
        head, _, tail = text.partition("<")
        if not tail.endswith(">"):
            raise ScriptSyntaxError("options are written <...> at the end of the line")
        options = _parse_options(tail[:-1].strip(), direction)
        text = head
    words = text.split()
    if len(words) < 2:
        raise ScriptSyntaxError("a packet is FLAGS SEQ:END(LEN), e.g. '< S 0:0(0)'")
    flags = _parse_flags(words[0])
    match = _RANGE.fullmatch(words[1])
    if match is None:
        raise ScriptSyntaxError(f"expected SEQ:END(LEN) such as 1:1001(1000), got {words[1]!r}")
    seq, end, length = (
        _field(t, n, direction) for t, n in zip(match.groups(), _SEQ_NAMES, strict=True)
    )
    if isinstance(length, int) and length > 65535:
        raise ScriptSyntaxError(f"length {length} does not fit in one segment")
    if isinstance(seq, int) and isinstance(end, int) and isinstance(length, int):
        if (seq + length) % U32 != end:
            raise ScriptSyntaxError(f"{seq}:{end}({length}): END must be SEQ + LEN")
    values: dict[str, Field] = {}
    pairs = words[2:]
    for index in range(0, len(pairs), 2):
        keyword, value = pairs[index], pairs[index + 1 : index + 2]
        if keyword not in _PACKET_FIELDS or not value:
            raise ScriptSyntaxError(f"expected 'ack N', 'win N' or 'urg N', got {keyword!r}")
        if keyword in values:
            raise ScriptSyntaxError(f"{keyword!r} given twice")
        values[keyword] = _field(value[0], keyword, direction, _PACKET_FIELDS[keyword])
    if direction == INBOUND and flags & tcp.ACK and "ack" not in values:
        raise ScriptSyntaxError("a '<' segment with '.' (ACK) needs 'ack N'")
    ack, window, urgent = values.get("ack"), values.get("win"), values.get("urg")
    return Packet(direction, flags, seq, end, length, ack, window, urgent, options)


_SEQ_NAMES = ("sequence number", "end sequence number", "length")
_PACKET_FIELDS = {"ack": U32, "win": 65536, "urg": 65536}


def _parse_flags(token: str) -> int:
    if token == "-":
        return 0
    letters = dict(FLAG_LETTERS)
    flags = 0
    for letter in token:
        bit = letters.get(letter)
        if bit is None or flags & bit:
            problem = "repeated" if bit else "unknown"
            raise ScriptSyntaxError(
                f"{problem} flag {letter!r} in {token!r} (flags: S F R P U E W and . for ACK)"
            )
        flags |= bit
    return flags


def _parse_options(text: str, direction: str) -> tuple[OptionSpec, ...] | Wildcard:
    if text == "...":
        if direction == INBOUND:
            raise ScriptSyntaxError("'<...>' (any options) is only allowed on '>' lines")
        return Wildcard.ANY
    if not text:
        return ()
    return tuple(_parse_option(part.split(), direction) for part in text.split(","))


def _parse_option(words: list[str], direction: str) -> OptionSpec:
    name = words[0] if words else ""
    arguments = words[1:]
    if name in ("nop", "eol", "sackOK") and not arguments:
        return OptionSpec(
            {"nop": tcp.OPT_NOP, "eol": tcp.OPT_EOL}.get(name, tcp.OPT_SACK_PERMITTED)
        )
    if name in ("mss", "wscale") and len(arguments) == 1:
        limit = 65536 if name == "mss" else 256
        kind = tcp.OPT_MSS if name == "mss" else tcp.OPT_WSCALE
        return OptionSpec(kind, (_field(arguments[0], name, direction, limit),))
    if name == "TS" and len(arguments) == 4 and arguments[0::2] == ["val", "ecr"]:
        tsval = _field(arguments[1], "TS val", direction)
        tsecr = _field(arguments[3], "TS ecr", direction, latest=True)
        return OptionSpec(tcp.OPT_TIMESTAMP, (tsval, tsecr))
    if name == "sack" and 1 <= len(arguments) <= 4:
        values: list[Field] = []
        for block in arguments:
            left, colon, right = block.partition(":")
            if not colon:
                raise ScriptSyntaxError(f"a SACK block is LEFT:RIGHT, got {block!r}")
            values += [_field(left, "SACK left", direction), _field(right, "SACK right", direction)]
        return OptionSpec(tcp.OPT_SACK, tuple(values))
    if name == "opt" and 1 <= len(arguments) <= 2:
        kind = _number(arguments[0], "option kind", 256)
        if kind in _KNOWN_OPTIONS:
            raise ScriptSyntaxError(f"option kind {kind} has a name: write it by name")
        try:
            raw = bytes.fromhex(arguments[1]) if len(arguments) == 2 else b""
        except ValueError:
            raise ScriptSyntaxError(f"bad hex {arguments[1]!r} in option {kind}") from None
        return OptionSpec(kind, (), raw)
    raise ScriptSyntaxError(
        f"bad option {' '.join(words)!r}: mss N, wscale N, sackOK, sack L:R..., "
        "TS val N ecr N, nop, eol, opt KIND HEX"
    )


def _parse_icmp(direction: str, words: list[str]) -> ev.ICMP | ev.Echo:
    kind, code = [*words, "", ""][:2]
    if kind in ("echo", "echo-reply"):
        return _parse_echo(direction, kind == "echo-reply", words[1:])
    codes = _ICMP_CODES.get(kind)
    if codes is None or code not in codes:
        raise ScriptSyntaxError(
            "usage: icmp unreachable (net|host|protocol|port|need-frag|admin-prohibited) "
            "[mtu N] [of tcp|udp] | icmp time-exceeded (ttl|reassembly) [of tcp|udp] "
            "| icmp echo|echo-reply id N seq N (LEN)"
        )
    rest, quote, mtu = words[2:], None, None
    if rest[-2:] in (["of", "tcp"], ["of", "udp"]):
        if direction == OUTBOUND:
            raise ScriptSyntaxError("'of tcp|udp' picks the packet a '<' error quotes")
        quote, rest = rest[-1], rest[:-2]
    if code == "need-frag" and len(rest) == 2 and rest[0] == "mtu":
        mtu, rest = _number(rest[1], "mtu", 65536), []
    if rest:
        raise ScriptSyntaxError(
            f"unexpected {' '.join(rest)!r} (need-frag takes 'mtu N'; a '<' error 'of tcp|udp')"
        )
    return ev.ICMP(kind, code, mtu, direction, quote)


def _parse_echo(direction: str, reply: bool, words: list[str]) -> ev.Echo:
    if len(words) < 5 or words[0] != "id" or words[2] != "seq":
        raise ScriptSyntaxError('usage: icmp echo|echo-reply id N seq N (LEN)|"text"|hex HEX')
    identifier = _field(words[1], "echo id", direction, 65536)
    sequence = _field(words[3], "echo seq", direction, 65536)
    payload = _parse_payload(words[4:], direction, packet=True)
    return ev.Echo(direction, reply, identifier, sequence, payload)


def _parse_udp(direction: str, words: list[str]) -> ev.UDP:
    match = _PORTS.fullmatch(words[0]) if words else None
    if match is None or len(words) < 2:
        raise ScriptSyntaxError(
            "a UDP line is udp SPORT>DPORT (LEN)|\"text\"|hex HEX, e.g. '< udp 9000>8080 (10)'"
        )
    source = _field(match.group(1), "source port", direction, 65536)
    destination = _field(match.group(2), "destination port", direction, 65536)
    return ev.UDP(direction, source, destination, _parse_payload(words[1:], direction, True))


MAX_DATAGRAM = 65507  # the most one IPv4 datagram carries over UDP (65535 - 20 - 8)


def _parse_payload(words: list[str], direction: str, packet: bool) -> ev.Payload:
    """``(N)`` (packet lines) or ``N`` (calls), a string, or ``hex HEX``."""
    first = words[0] if words else ""
    if len(words) == 2 and first == "hex":
        try:
            data = bytes.fromhex(words[1])
        except ValueError:
            raise ScriptSyntaxError(f"bad hex {words[1]!r}") from None
        return ev.Payload(len(data), data)
    if len(words) == 1 and first.startswith('"'):
        data = _string(first).encode()
        return ev.Payload(len(data), data, text=True)
    if len(words) == 1:
        parenthesized = first[:1] == "(" and first[-1:] == ")"
        if not packet and parenthesized:
            raise ScriptSyntaxError(
                f"a call's length is written without parentheses: {first[1:-1]}"
            )
        if not packet and first == "*" and direction == INBOUND:
            raise ScriptSyntaxError("'*' (any bytes) is only for 'udp recvfrom'")
        token = first[1:-1] if packet and parenthesized else None if packet else first
        if token is not None:
            length = _field(token, "payload length", direction, MAX_DATAGRAM + 1)
            return ev.Payload(length)
    form = "(LEN)" if packet else "LEN"
    raise ScriptSyntaxError(
        f'expected a payload: {form}, "text" or hex HEX; got {" ".join(words)!r}'
    )


def _string(token: str) -> str:
    try:
        value = ast.literal_eval(token)
    except (SyntaxError, ValueError):
        raise ScriptSyntaxError(f"bad string {token}") from None
    if not isinstance(value, str):
        raise ScriptSyntaxError(f"bad string {token}")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800" has no UTF-8 bytes
        raise ScriptSyntaxError(f"bad string {token}: not encodable as UTF-8") from None
    return value


def _address(token: str, usage: str) -> tuple[str, int]:
    address, _, port = token.rpartition(":")
    try:
        ip_from_str(address)
    except ValueError:
        raise ScriptSyntaxError(f"{usage} ADDRESS:PORT, got {token!r}") from None
    return address, _number(port, "port", 65536)


def _parse_udp_call(words: list[str], error: str | None) -> ev.Call:
    name, arguments = (words[0] if words else ""), words[1:]
    count = len(arguments)
    if name == "bind" and count == 1:
        return ev.UDPBind(_number(arguments[0], "port", 65536), error=error)
    if name == "connect" and count == 1:
        address, port = _address(arguments[0], "udp connect")
        return ev.UDPConnect(address, port, error=error)
    if name == "sendto" and count >= 2:
        address, port = _address(arguments[0], "udp sendto")
        payload = _parse_payload(arguments[1:], INBOUND, packet=False)
        return ev.UDPSendTo(address, port, payload, error=error)
    if name == "send" and count >= 1:
        return ev.UDPSendTo(None, None, _parse_payload(arguments, INBOUND, False), error=error)
    if name == "recvfrom" and count >= 1:
        source = None
        if count >= 3 and arguments[-2] == "from":
            source = _address(arguments[-1], "from")
            arguments = arguments[:-2]
        payload = _parse_payload(arguments, OUTBOUND, packet=False)
        return ev.UDPRecvFrom(payload, source, error=error)
    if name == "close" and count == 0:
        return ev.UDPClose(error=error)
    raise ScriptSyntaxError(
        f"bad call {' '.join(['udp', *words])!r}: udp bind PORT, udp connect ADDRESS:PORT, "
        'udp sendto ADDRESS:PORT N|"text"|hex HEX, udp send N|"text"|hex HEX, '
        'udp recvfrom N|"text"|hex HEX|* [from ADDRESS:PORT], udp close'
    )


def _parse_raw(text: str) -> ev.RawPacket:
    digits = "".join(text.split())
    if not digits:
        raise ScriptSyntaxError("usage: < raw HEX (the IPv4 packet's bytes)")
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise ScriptSyntaxError(f"bad hex in raw packet: {digits[:40]!r}") from None
    if len(data) > 65535:
        raise ScriptSyntaxError(f"a raw packet of {len(data)} bytes is longer than IPv4 allows")
    return ev.RawPacket(data)


# calls and expectations -----------------------------------------------------------------------
def _parse_call(name: str, words: list[str], error: str | None) -> ev.Call:
    count = len(words)
    if name == "listen" and count in (1, 3) and (count == 1 or words[1] == "backlog"):
        backlog = _number(words[2], "backlog") if count == 3 else None
        return ev.Listen(_number(words[0], "port", 65536), backlog, error=error)
    if name == "connect" and count in (1, 3) and (count == 1 or words[1] == "from"):
        address, _, port = words[0].rpartition(":")
        try:
            ip_from_str(address)
        except ValueError:
            raise ScriptSyntaxError(f"connect ADDRESS:PORT, got {words[0]!r}") from None
        local = _number(words[2], "local port", 65536) if count == 3 else None
        return ev.Connect(address, _number(port, "port", 65536), local, error=error)
    if name == "accept" and words in ([], ["?"]):
        return ev.Accept(bool(words), error=error)
    if name == "write" and count == 1:
        if words[0].startswith('"'):
            text = _string(words[0])
            return ev.Write(len(text.encode()), text, error=error)
        return ev.Write(_number(words[0], "write length"), error=error)
    if name == "read" and count == 2 and words[0] == "upto":
        return ev.Read(_number(words[1], "read length"), exact=False, error=error)
    if name == "read" and count == 1:
        length = None if words[0] == "eof" else _number(words[0], "read length")
        return ev.Read(length, error=error)
    if name in _SIMPLE_CALLS and count == 0:
        return ev.Simple(name, error=error)
    if name == "nodelay" and words in (["on"], ["off"]):
        return ev.NoDelay(words[0] == "on", error=error)
    raise ScriptSyntaxError(f"bad call {' '.join([name, *words])!r}: {_CALL_USAGE}")


_CALL_USAGE = (
    'listen PORT [backlog N], connect ADDRESS:PORT [from PORT], accept [?], write N|"text", '
    "read N|upto N|eof, shutdown, close, abort, nodelay on|off, udp ..., expect ..."
)


def _parse_expectation(words: list[str]) -> ev.Expectation:
    what, arguments = (words[0] if words else ""), words[1:]
    if what == "state" and len(arguments) == 1:
        name = arguments[0].upper().replace("_", "-")
        for state in TCPState:
            if state.value == name:
                return ev.ExpectState(state)
        names = ", ".join(state.value for state in TCPState)
        raise ScriptSyntaxError(f"unknown state {arguments[0]!r} (one of: {names})")
    if what == "error" and len(arguments) == 1:
        return ev.ExpectError(None if arguments[0] == "none" else _errno_name(arguments[0]))
    if what == "counter" and len(arguments) == 2:
        return ev.ExpectCounter(arguments[0], _number(arguments[1], "counter value", 1 << 63))
    if what == "drop" and len(arguments) == 2:
        if arguments[0] not in DropReason.__members__:
            raise ScriptSyntaxError(f"unknown drop reason {arguments[0]!r}")
        return ev.ExpectDrop(arguments[0], _number(arguments[1], "drop count", 1 << 63))
    if what == "info" and len(arguments) == 2:
        value = arguments[1]
        return ev.ExpectInfo(arguments[0], int(value) if value.isdigit() else value)
    if what == "nothing" and not arguments:
        return ev.ExpectNothing()
    if what == "invariants" and not arguments:
        return ev.ExpectInvariants()
    raise ScriptSyntaxError(
        "usage: expect state STATE | error ERRNO|none | counter NAME N | drop REASON N "
        "| info KEY VALUE | nothing | invariants"
    )


def _errno_name(name: str) -> str:
    if not name.startswith("E") or not isinstance(getattr(errno, name, None), int):
        raise ScriptSyntaxError(f"unknown errno name {name!r}")
    return name
