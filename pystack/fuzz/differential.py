"""``pystack fuzz --differential``: the same generated case on pystack and on Linux, compared.

A case is a script (``pystack/script`` notation) that means the same on both stacks: the calls
of one application (``listen``/``accept`` or ``connect``, ``write``, ``read upto``,
``shutdown``, ``close``, ``abort``) and a peer's ``<`` segments in *relative* numbers, which
each target maps to its own stack's ISN, port and TS clock. It starts with ``ignore outbound``:
neither target matches ``>`` lines, both record what their stack sent. ``generate_case`` builds
cases as TCP-Fuzz does (USENIX ATC 2021): every step respects what came before (data is ACKed
only once it was written, a FIN comes once, nothing is written after ``close``), and between
the ordinary steps come the segments a peer should not send (RSTs and SYNs in and out of the
window, data outside the window, ACKs of unsent data, holes, zero windows).

Each case runs on pystack (``ScriptRunner``, virtual time) and on the kernel
(``KernelScriptRunner``, real time, a fresh namespace); each run becomes an ``Outcome``:

- ``packets``: every TCP segment the stack sent, in the notation with relative numbers and
  *normalized*: TS val/ecr and the wscale value are left out (each stack's clock and buffer),
  a window is only ``0`` or ``+`` (buffer sizes differ, what matters is open or closed), NOPs
  are dropped and options sorted (their order is free), and a run of pure ACKs whose ack number
  grows becomes its last ACK (a delayed ACK covers what two quick ACKs did: both are allowed,
  RFC 9293 3.8.6.3, RFC 1122 4.2.3.2). Times are not compared, only the order: cases keep every
  line 50 ms apart and shorter than Linux's 200 ms minimum RTO after any unACKed write, so no
  retransmission timer fires on either stack (see ``LINE_GAP``).
- ``calls``: each call's result: ``ok``, bytes read, or the errno it raised;
- ``state``: the connection's TCP state at the end (the kernel's from its socket table).

Two outcomes that differ are first passed through the expected-difference list
(``expected_differences.txt``, ``load_expected``): each entry rewrites one side's normalized
packets or calls with a regular expression (or drops them) and names the reason (RFC text,
Linux choice, pystack choice). A difference that the rewritten outcomes no longer show is
*explained* (the entries used are counted); a case still unexplained is compared once more
answer by answer (each packet tagged with the script line acted on last when it was sent), so
two explained differences that line up by chance in the sequences do not hide each other; what
is left is a finding, saved as a replayable ``.pkt`` with both outcomes in its comments
(``finding_text``).
Entry points: ``generate_case``, ``observe``, ``compare``, ``load_expected``,
``DifferentialSettings``, ``run_differential``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pystack.script import events as ev
from pystack.script.events import ScriptLine
from pystack.script.kernel import KernelSandbox, KernelScriptRunner, KernelTargetError
from pystack.script.notation import parse_script
from pystack.script.report import ScriptFailure
from pystack.script.runner import ScriptRunner
from pystack.wire.errors import MalformedPacket
from pystack.wire.tcp import FIN, RST, SYN, TCPSegment

LINE_GAP = 0.05  # seconds between lines: above pystack's 40 ms delayed ACK, so it fires first
QUIET_TAIL = 0.15  # seconds the case waits at its end (for late ACKs; below Linux's 200 ms RTO)
MAX_STEPS = 10  # steps after the handshake (a case lasts at most ~1.5 s of real time)
KERNEL_TOLERANCE = 0.5  # real time on a loaded machine: lines may run late, that is fine here
EXPECTED_FILE = Path(__file__).with_name("expected_differences.txt")
LOCAL_PORT, PEER_PORT = 8080, 9000
MAX_FINDINGS_SAVED = 100  # bound on the files a campaign writes
MAX_PACKETS = 1000  # packets recorded per run (a case makes a few dozen)
WINDOW_UPDATE = " (window update)"  # marks a pure ACK that only opened the window
# A kernel run whose lines ran this late (a loaded machine) may have let Linux's 200 ms RTO or
# its delayed ACK fire where the case keeps timers out: a differing case run so late is run
# again, at most ``LATE_RERUNS`` times, before its difference counts.
LATE_LIMIT = 0.1
LATE_RERUNS = 2
# Both stacks answer unacceptable segments (out of window, RSTs and SYNs challenged, ACKs of
# unsent data) at most once per 500 ms per connection, but Linux limits only segments without
# data (tcp_invalid_ratelimit) and pystack every kind (docs/linux-differences.md). Cases space such
# segments this far apart, so both answer each one and the count of ACKs is comparable.
REPLY_INTERVAL = 0.55
UNACCEPTABLE = frozenset(
    {"old_data", "beyond_window", "rst_in_window", "rst_outside", "syn", "ack_unsent", "dup_ack"}
)


# generating ------------------------------------------------------------------------------------
@dataclass
class _Model:
    """What the case has made happen so far, in relative numbers (both stacks agree on these)."""

    peer_seq: int = 1  # the peer's next sequence number
    local_sent: int = 0  # bytes the stack under test was asked to write
    local_fin: bool = False  # shutdown/close asked: its FIN takes one number
    peer_fin: bool = False
    closed: bool = False  # close/abort called: no more calls on the socket
    reset: bool = False  # the connection was reset: only the tail follows
    timestamps: bool = False
    ts_val: int = 100
    window: int = 65535  # the peer's advertised window field
    unacked: bool = False  # a write not yet ACKed by the peer (the next line ACKs it)
    time: float = 0.0  # the case's time so far (seconds)
    last_unacceptable: float = -REPLY_INTERVAL  # when the last unacceptable segment came

    def gap(self, unacceptable: bool = False) -> str:
        """The next line's relative time: ``LINE_GAP``, or longer to keep unacceptable
        segments ``REPLY_INTERVAL`` apart."""
        gap = LINE_GAP
        if unacceptable:
            gap = max(gap, self.last_unacceptable + REPLY_INTERVAL - self.time)
            self.last_unacceptable = self.time + gap
        self.time += gap
        return f"+{gap:.3f}".rstrip("0").rstrip(".")

    @property
    def ack(self) -> int:
        return 1 + self.local_sent + (1 if self.local_fin else 0)

    def options(self) -> str:
        if not self.timestamps:
            return ""
        self.ts_val += 10
        return f" <nop,nop,TS val {self.ts_val} ecr *>"


def generate_case(rng: random.Random) -> list[str]:
    """One case: a handshake (passive or active, random SYN options), then up to
    ``MAX_STEPS`` dependency-respecting steps, then a quiet tail; script lines."""
    model = _Model()
    lines = ["ignore outbound"]
    gap = f"+{LINE_GAP:g}"
    syn_options = [name for name in ("mss 1460", "sackOK", "TS", "wscale 7") if rng.random() < 0.7]
    model.timestamps = "TS" in syn_options
    scaled = "wscale 7" in syn_options
    model.window = rng.choice((512, 64, 8)) if scaled else rng.choice((65535, 4000, 1000))
    options = ",".join(
        f"TS val {model.ts_val} ecr 0" if name == "TS" else name for name in syn_options
    )
    options = f" <{options}>" if options else ""
    win = f"win {model.window}"
    if rng.random() < 0.5:
        lines += [
            f"0 listen {LOCAL_PORT}",
            f"+0 < S 0:0(0) win 65535{options}",
            f"{gap} < . 1:1(0) ack 1 {win}{model.options()}",
            "+0 accept",
        ]
    else:
        ts_syn_ack = options.replace("ecr 0", "ecr *")
        lines += [
            f"0 connect 10.0.0.1:{PEER_PORT}",
            f"{gap} < S. 0:0(0) ack 1 win 65535{ts_syn_ack}",
        ]
    model.time = 2 * LINE_GAP
    for _ in range(rng.randint(1, MAX_STEPS)):
        if model.reset:
            break
        lines += _step(rng, model)
    if model.unacked and not model.reset:
        lines += _step(rng, model)  # the ACK of the last write (or FIN)
    lines.append(f"+{QUIET_TAIL:g} expect nothing")
    return lines


def _step(rng: random.Random, m: _Model) -> list[str]:
    """One step: an ordinary exchange or a segment a peer should not send."""
    win = f"win {m.window}"
    s, a = m.peer_seq, m.ack
    if m.unacked:  # dependency: data written is ACKed at the next line (before any RTO)
        m.unacked = False
        return [f"{m.gap()} < . {s}:{s}(0) ack {a} {win}{m.options()}"]
    choices: list[tuple[str, float]] = [
        ("data", 3.0),
        ("ooo", 0.7),
        ("old_data", 0.7),
        ("beyond_window", 0.7),
        ("rst_in_window", 0.8),
        ("rst_exact", 0.3),
        ("rst_outside", 0.4),
        ("syn", 0.6),
        ("ack_unsent", 0.6),
        ("dup_ack", 0.5),
    ]
    if not m.closed:
        choices += [("write", 2.0), ("read", 2.0), ("close", 0.4), ("abort", 0.1)]
        if not m.local_fin:
            choices.append(("shutdown", 0.4))
    if not m.peer_fin:
        choices.append(("fin", 0.5))
    names, weights = zip(*choices, strict=True)
    kind = rng.choices(names, weights)[0]
    if m.peer_fin and kind in ("data", "ooo", "beyond_window"):
        kind = "dup_ack"  # nothing after the peer's FIN
    if kind == "old_data" and s <= 11:
        kind = "dup_ack"
    if (kind == "write" and m.local_fin) or (kind in ("shutdown", "close") and m.local_fin):
        kind = "read"
    gap = m.gap(kind in UNACCEPTABLE)
    opts = m.options()
    if kind == "data":
        n = rng.choice((1, 10, 100, 500, 1000))
        m.peer_seq += n
        return [f"{gap} < P. {s}:{s + n}({n}) ack {a} {win}{opts}"]
    if kind == "ooo":  # a hole of 100 bytes, then (next line) the hole is filled
        n = rng.choice((10, 100))
        m.peer_seq += 100 + n
        return [
            f"{gap} < P. {s + 100}:{s + 100 + n}({n}) ack {a} {win}{opts}",
            f"{m.gap()} < P. {s}:{s + 100}(100) ack {a} {win}{m.options()}",
        ]
    if kind == "old_data":
        return [f"{gap} < P. {s - 10}:{s}(10) ack {a} {win}{opts}"]
    if kind == "beyond_window":
        start = s + rng.choice((1 << 20, 1 << 24))  # beyond both stacks' windows
        return [f"{gap} < P. {start}:{start + 10}(10) ack {a} {win}{opts}"]
    if kind == "rst_in_window":  # RFC 5961 3.2: a challenge ACK, not a reset
        k = rng.choice((1, 10, 1000))
        return [f"{gap} < R {s + k}:{s + k}(0) win 0"]
    if kind == "rst_exact":
        m.reset = True
        return [f"{gap} < R {s}:{s}(0) win 0"]
    if kind == "rst_outside":
        start = s + rng.choice((1 << 20, (1 << 32) - 5000))
        return [f"{gap} < R {start}:{start}(0) win 0"]
    if kind == "syn":  # RFC 5961 4.2: a SYN on a synchronized connection is challenged
        k = rng.choice((0, 5, 1 << 20))
        return [f"{gap} < S {s + k}:{s + k}(0) win 65535"]
    if kind == "ack_unsent":  # RFC 9293 3.10.7.4: ACK it, drop it
        return [f"{gap} < . {s}:{s}(0) ack {a + rng.choice((1, 1000))} {win}{opts}"]
    if kind == "fin":
        m.peer_fin = True
        m.peer_seq += 1
        return [f"{gap} < F. {s}:{s}(0) ack {a} {win}{opts}"]
    if kind == "write":
        # At most one segment (the smallest MSS, 536 - 12 for timestamps, fits 500): two
        # segments would meet Nagle, which Linux applies Minshall's way (a small segment waits
        # only for an earlier *small* one) and pystack as RFC 9293 3.7.4 writes it.
        n = rng.choice((1, 100, 500))
        m.local_sent += n
        m.unacked = True
        return [f"{gap} write {n}"]
    if kind == "read":
        return [f"{gap} read upto {rng.choice((1, 100, 10000))}"]
    if kind in ("shutdown", "close"):
        m.local_fin = True
        m.closed = kind == "close"
        m.unacked = True  # its FIN is ACKed at the next line
        return [f"{gap} {kind}"]
    if kind == "abort":
        m.closed = m.reset = True
        return [f"{gap} abort"]
    return [f"{gap} < . {s}:{s}(0) ack {a} {win}{opts}"]  # a duplicate ACK


# observing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What one stack did in one case (normalized; see the module docstring)."""

    packets: tuple[str, ...]  # normalized, in order (not yet collapsed: ``compare`` does it)
    calls: tuple[str, ...]
    state: str
    raw: tuple[str, ...] = ()  # the packets as sent (relative numbers), with times
    late: float = 0.0  # the most a line ran after its time (real time only), seconds
    # for each packet, the script line acted on last when it was sent (0: none yet): what it
    # answered, for the per-line comparison (``compare``)
    answering: tuple[int, ...] = ()

    def streams(self) -> dict[str, tuple[str, ...]]:
        return {"packets": self.packets, "calls": self.calls, "state": (self.state,)}


_WINDOW = re.compile(r"\bwin (\d+)")
_OPTIONS = re.compile(r"<([^>]*)>")


def normalize_packet(text: str) -> str:
    """One sent segment, without what may differ between two correct stacks."""
    text = text.removeprefix("> ").strip()
    text = _WINDOW.sub(lambda match: "win 0" if match.group(1) == "0" else "win +", text)

    def options(match: re.Match[str]) -> str:
        kept = []
        for option in match.group(1).split(","):
            option = option.strip()
            if option in ("nop", "eol", ""):
                continue
            if option.startswith("TS "):
                option = "TS"
            elif option.startswith("wscale"):
                option = "wscale"
            kept.append(option)
        return f"<{','.join(sorted(kept))}>" if kept else ""

    return _OPTIONS.sub(options, text).strip()


def collapse_acks(packets: Sequence[str]) -> tuple[str, ...]:
    """A run of pure ACKs whose ack number grows becomes its last one (delayed vs quick ACKs);
    a duplicate ACK (same ack number) stays, and is never replaced by a later one: it means
    something (a challenge ACK, a hole)."""
    kept: list[str] = []
    growing = False  # whether kept[-1] is a pure ACK that moved the ack number on
    for packet in packets:
        previous = kept[-1] if kept else None
        if previous is not None and _pure_ack(packet) and _pure_ack(previous):
            duplicate = _ack_of(packet) == _ack_of(previous)
            if not duplicate and growing and _ack_of(packet) > _ack_of(previous):
                kept[-1] = packet
                continue
            kept.append(packet)
            growing = not duplicate and "sack" not in packet
            continue
        kept.append(packet)
        growing = _pure_ack(packet) and "sack" not in packet
    return tuple(kept)


def _pure_ack(packet: str) -> bool:
    return packet.startswith(". ") and "(0)" in packet.split()[1]


def _ack_of(packet: str) -> int:
    match = re.search(r"\back (\d+)", packet)
    return int(match.group(1)) if match else -1


def observe(runner: ScriptRunner) -> Outcome:
    """Run ``runner``'s lines one by one, going on after a failed call; its ``Outcome``."""
    calls: list[str] = []
    sent: list[str] = []
    raw: list[str] = []
    keep = runner._keep_outbound
    previous: list[TCPSegment] = []  # the last segment sent
    reading = [False]  # the line being run is a read (its window update comes at once)
    answering: list[int] = []
    acted = [0]  # the number of the line acted on last
    act = runner._act

    def act_noting(line: ScriptLine, event: ev.Event, when: float) -> None:
        acted[0] = line.number  # before the act: what it sends at once answers this line
        act(line, event, when)

    def record(when: float, frame: bytes) -> None:
        # Shown when it is sent: a later SYN (a new connection) re-bases the numbering.
        keep(when, frame)
        if len(sent) >= MAX_PACKETS:
            return
        text = _normalized(runner, frame)
        try:
            _, segment = runner._decode(frame)
        except MalformedPacket:
            segment = None
        if segment is not None:
            if reading[0] and previous and _window_update(previous[0], segment):
                text += WINDOW_UPDATE
            previous[:] = [segment]
        sent.append(text)
        answering.append(acted[0])
        raw.append(f"{when:.3f} {runner._show(frame)}")

    setattr(runner, "_keep_outbound", record)  # noqa: B010 - the hooks, on this runner only
    setattr(runner, "_act", act_noting)  # noqa: B010
    while True:
        application = runner.application
        position, written = application.read_position, len(application.written)
        events_before = len(runner.events)
        upcoming = runner.lines[runner.index] if runner.index < len(runner.lines) else None
        reading[0] = upcoming is not None and isinstance(upcoming.event, ev.Read)
        failure: ScriptFailure | None = None
        try:
            line = runner.step()
        except ScriptFailure as failed:
            line, failure = failed.line, failed
        if line is None:
            break
        if _later_syn(line.event) and position is not None:
            # The runner takes any SYN line as the start of the peer's byte stream; a SYN that
            # is challenged (or opens a connection the application never accepts) does not
            # change the stream the application reads.
            runner.application.read_position = position
        if not isinstance(line.event, ev.Call):
            if failure is not None:  # an escaped exception, an unexpected state: the outcome
                calls.append(f"line {line.number}: {failure.reason}")
            continue
        note = ""
        for entry in runner.events[events_before:]:
            if entry.line == line.number and entry.note.startswith("raised "):
                note = entry.note
        if note:
            result = note
        elif failure is not None:
            result = failure.reason
        elif isinstance(line.event, ev.Read):
            after = runner.application.read_position
            count = (after or 0) - (position or 0) if after is not None else 0
            result = f"read {count}"
        elif isinstance(line.event, ev.Write):
            result = f"wrote {len(runner.application.written) - written}"
        else:
            result = "ok"
        calls.append(f"line {line.number}: {line.text.split(None, 1)[1]} -> {result}")
    connection = runner.application.connection
    state = "no connection" if connection is None else connection.state.value
    accepted = any(": accept -> ok" in call for call in calls)
    if accepted and state == "SYN-RECEIVED":
        # An accepted connection never returns to SYN-RECEIVED: the kernel's socket table
        # (searched by ports) shows a new connection on the same ports, made by a later SYN
        # to the listener; the application's own connection is gone.
        state = "CLOSED"
    late = getattr(runner, "worst_lateness", 0.0)
    return Outcome(tuple(sent), tuple(calls), state, tuple(raw), late, tuple(answering))


def _window_update(before: TCPSegment, segment: TCPSegment) -> bool:
    """A pure ACK that repeats the previous segment's ACK and only opens the window (called
    for packets sent while a read runs: an answer to a peer's segment is never one)."""
    consumed = len(before.payload) + (1 if before.flags & (SYN | FIN) else 0)
    return (
        segment.flags & (SYN | FIN | RST) == 0
        and not segment.payload
        and segment.ack == before.ack
        and segment.seq == (before.seq + consumed) & 0xFFFFFFFF
        and segment.window > before.window
    )


def _later_syn(event: object) -> bool:
    return isinstance(event, ev.Packet) and event.flags & (SYN | FIN | RST) == SYN


def _normalized(runner: ScriptRunner, frame: bytes) -> str:
    text = normalize_packet(runner._show(frame))
    try:
        _, segment = runner._decode(frame)
    except MalformedPacket:
        return text
    if segment is not None and segment.flags & RST and segment.seq == 0:
        # A RST for no connection (RFC 9293 3.10.7.1: SEQ=0): its relative number would be
        # 0 minus the connection's ISN, which differs between the stacks; it is not relative.
        text = re.sub(r"^(\S+) \d+:\d+\(0\)", r"\1 0abs", text)
    return text


def observe_pystack(lines: Sequence[str], seed: int = 1) -> Outcome:
    """The case on pystack, on virtual time."""
    return observe(ScriptRunner(parse_script("\n".join(lines)), seed=seed))


class _TimedKernelRunner(KernelScriptRunner):
    """The kernel runner, noting how late (real time) its lines ran: a case run late may have
    let a timer fire that the case keeps out, so a campaign reruns it (``LATE_LIMIT``)."""

    worst_lateness = 0.0

    def _act(self, line: ScriptLine, event: ev.Event, when: float) -> None:
        self.worst_lateness = max(self.worst_lateness, self.clock.now() - self.scheduled)
        super()._act(line, event, when)


def observe_kernel(lines: Sequence[str]) -> Outcome:
    """The case on Linux in a fresh namespace (removed when this returns)."""
    parsed = parse_script("\n".join(lines))
    with KernelSandbox() as sandbox:
        runner = _TimedKernelRunner(parsed, sandbox, tolerance=KERNEL_TOLERANCE)
        try:
            return observe(runner)
        finally:
            runner.stop_services()


# the expected differences ----------------------------------------------------------------------
@dataclass(frozen=True)
class ExpectedDifference:
    """One entry of ``expected_differences.txt``, and why the difference is expected.

    A *rewrite* entry (``side``, ``match``, ``replace``) rewrites or drops the matching items of
    one side's stream before the outcomes are compared again. A *divergence* entry (``pystack``,
    ``kernel``, optionally ``case``) explains a case whose first remaining difference, in its
    stream, is an item matching ``pystack`` on pystack's side and ``kernel`` on the kernel's
    (``(nothing)`` when a side has no item there) in a case whose script matches ``case``:
    what follows the first difference is taken as its consequence.
    """

    name: str
    stream: str  # packets, calls or state
    kind: str  # RFC, Linux choice, pystack choice, harness
    reason: str
    side: str | None = None
    match: re.Pattern[str] | None = None
    replace: str | None = None  # None: the matching item is dropped
    pystack: re.Pattern[str] | None = None
    kernel: re.Pattern[str] | None = None
    case: re.Pattern[str] | None = None

    def apply(self, items: Sequence[str]) -> tuple[str, ...]:
        if self.match is None:
            return tuple(items)
        kept = []
        for item in items:
            if not self.match.search(item):
                kept.append(item)
            elif self.replace is not None:
                kept.append(self.match.sub(self.replace, item))
        return tuple(kept)

    def explains(self, ours: str, theirs: str, case: str) -> bool:
        if self.pystack is None or self.kernel is None:
            return False
        return bool(
            self.pystack.search(ours)
            and self.kernel.search(theirs)
            and (self.case is None or self.case.search(case))
        )


class ExpectedListError(ValueError):
    """The expected-difference file is malformed; ``str()`` names the line."""


_FIELDS = ("stream", "side", "match", "replace", "pystack", "kernel", "case", "kind", "reason")
_PATTERNS = ("match", "pystack", "kernel", "case")


def load_expected(path: Path = EXPECTED_FILE) -> list[ExpectedDifference]:
    """Parse the list: blocks of ``[name]`` then ``field: value`` lines (see the file's head)."""
    entries: list[ExpectedDifference] = []
    current: dict[str, str] = {}

    def close(number: int) -> None:
        if not current:
            return
        where = f"{path}:{number}: [{current['name']}]"
        rewrite = "match" in current
        needed = ["stream", "kind", "reason", *(("side",) if rewrite else ("pystack", "kernel"))]
        missing = [name for name in needed if name not in current]
        if missing:
            raise ExpectedListError(f"{where} lacks {', '.join(missing)}")
        if current["stream"] not in ("packets", "calls", "state"):
            raise ExpectedListError(f"{where}: stream must be packets, calls or state")
        if rewrite and current["side"] not in ("pystack", "kernel"):
            raise ExpectedListError(f"{where}: side must be pystack or kernel")
        patterns: dict[str, re.Pattern[str]] = {}
        for name in _PATTERNS:
            if name in current:
                try:
                    patterns[name] = re.compile(current[name])
                except re.error as error:
                    raise ExpectedListError(f"{where}: bad {name}: {error}") from None
        replace = current.get("replace")
        entries.append(
            ExpectedDifference(
                current["name"],
                current["stream"],
                current["kind"],
                current["reason"],
                side=current.get("side"),
                match=patterns.get("match"),
                replace=None if replace in (None, "DROP") else replace,
                pystack=patterns.get("pystack"),
                kernel=patterns.get("kernel"),
                case=patterns.get("case"),
            )
        )
        current.clear()

    number = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("[") and text.endswith("]"):
            close(number - 1)
            current["name"] = text[1:-1]
            continue
        key, colon, value = text.partition(":")
        if not colon or key.strip() not in _FIELDS or not current:
            raise ExpectedListError(f"{path}:{number}: expected '[name]' or 'field: value'")
        current[key.strip()] = value.strip()
    close(number)
    return entries


# comparing -------------------------------------------------------------------------------------
NOTHING = "(nothing)"  # what a divergence entry sees on the side that has no item there
STREAMS = ("packets", "calls", "state")


@dataclass(frozen=True)
class Comparison:
    """How two outcomes of one case relate."""

    same: bool  # equal as normalized: nothing to explain
    explained_by: tuple[str, ...]  # entries that made them equal (empty when same or unexplained)
    differences: tuple[str, ...]  # what is left after the entries, one line per stream

    @property
    def unexplained(self) -> bool:
        return bool(self.differences)


def compare(
    pystack: Outcome,
    kernel: Outcome,
    expected: Sequence[ExpectedDifference],
    case: Sequence[str] = (),
) -> Comparison:
    """Equal, explained by entries of the list, or differing (with what differs). Pure ACKs
    are collapsed (``collapse_acks``) after the entries' rewrites, so a dropped window update
    does not split a run of ACKs."""
    if _collapsed(pystack.streams()) == _collapsed(kernel.streams()):
        return Comparison(True, (), ())
    sides = {"pystack": pystack.streams(), "kernel": kernel.streams()}
    used: list[str] = []
    for entry in expected:
        if entry.side is None:
            continue
        before = sides[entry.side][entry.stream]
        after = entry.apply(before)
        if after != before:
            sides[entry.side] = {**sides[entry.side], entry.stream: after}
            used.append(entry.name)
    for side in sides.values():  # a rewrite may leave two ACKs in a row
        side["packets"] = collapse_acks(side["packets"])
    left = [
        _first_difference(stream, sides["pystack"][stream], sides["kernel"][stream])
        for stream in STREAMS
        if sides["pystack"][stream] != sides["kernel"][stream]
    ]
    if not left:
        return Comparison(False, tuple(used), ())
    text = "\n".join(case)
    explaining = _explaining(expected, left[0], text)
    if explaining is not None:
        return Comparison(False, (*used, explaining), ())
    # Compared as one sequence per stack, two explained differences can line up by chance
    # (Linux's ACK of a segment pystack ignores, then pystack's ACK of a later one Linux
    # ignores): compared again answer by answer, per input line, the first difference is the
    # one an entry describes. Only a case unexplained as a sequence is looked at so.
    first = _first_difference_per_line(pystack, kernel, expected, sides)
    if first is not None:
        explaining = _explaining(expected, first, text)
        if explaining is not None:
            return Comparison(False, (*used, f"{explaining} (per line)"), ())
    return Comparison(False, (), tuple(_describe(*difference) for difference in left))


def _explaining(
    expected: Sequence[ExpectedDifference], difference: tuple[str, str, str], case: str
) -> str | None:
    """The name of the divergence entry that explains ``difference`` in ``case``, if one does."""
    where, ours, theirs = difference
    for entry in expected:
        if where.startswith(entry.stream + " ") and entry.explains(ours, theirs, case):
            return entry.name
    return None


def _first_difference_per_line(
    pystack: Outcome,
    kernel: Outcome,
    expected: Sequence[ExpectedDifference],
    sides: dict[str, dict[str, tuple[str, ...]]],
) -> tuple[str, str, str] | None:
    """The first difference between what the stacks sent in answer to each line (the rewrite
    entries applied to each answer); failing that, in the calls or the end state; None when
    the outcomes carry no line numbers or nothing differs so."""
    if len(pystack.answering) != len(pystack.packets) or len(kernel.answering) != len(
        kernel.packets
    ):
        return None
    answers = {
        "pystack": _answers(pystack, [e for e in expected if e.side == "pystack"]),
        "kernel": _answers(kernel, [e for e in expected if e.side == "kernel"]),
    }
    for number in sorted(set(answers["pystack"]) | set(answers["kernel"])):
        ours, theirs = answers["pystack"].get(number, ()), answers["kernel"].get(number, ())
        if ours != theirs:
            _, mine, other = _first_difference("packets", ours, theirs)
            return f"packets (answering line {number})", mine, other
    for stream in ("calls", "state"):
        if sides["pystack"][stream] != sides["kernel"][stream]:
            return _first_difference(stream, sides["pystack"][stream], sides["kernel"][stream])
    return None


def _answers(
    outcome: Outcome, rewrites: Sequence[ExpectedDifference]
) -> dict[int, tuple[str, ...]]:
    """The outcome's packets by the line they answer, each answer rewritten and collapsed."""
    grouped: dict[int, list[str]] = {}
    for number, packet in zip(outcome.answering, outcome.packets, strict=True):
        grouped.setdefault(number, []).append(packet)
    answers = {}
    for number, packets in grouped.items():
        items: tuple[str, ...] = tuple(packets)
        for entry in rewrites:
            if entry.stream == "packets":
                items = entry.apply(items)
        if items:
            answers[number] = collapse_acks(items)
    return answers


def _collapsed(streams: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {**streams, "packets": collapse_acks(streams["packets"])}


def _first_difference(
    stream: str, ours: Sequence[str], theirs: Sequence[str]
) -> tuple[str, str, str]:
    index = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
        min(len(ours), len(theirs)),
    )
    mine = ours[index] if index < len(ours) else NOTHING
    other = theirs[index] if index < len(theirs) else NOTHING
    return f"{stream} #{index + 1}", mine, other


def _describe(where: str, ours: str, theirs: str) -> str:
    return f"{where}: pystack {ours!r}, kernel {theirs!r}"


# findings and the campaign ---------------------------------------------------------------------
Observer = Callable[[Sequence[str]], Outcome]


@dataclass(frozen=True)
class DifferentialFinding:
    case: int
    lines: tuple[str, ...]
    pystack: Outcome
    kernel: Outcome
    comparison: Comparison


def finding_text(finding: DifferentialFinding, seed: int) -> str:
    """A ``.pkt`` that replays the case (``pystack script``, either target) and, in comments,
    what each stack did and the differences the expected list does not explain."""
    head = [
        f"# pystack fuzz --differential --seed {seed}: case {finding.case}",
        "# unexplained differences:",
        *(f"#   {line}" for line in finding.comparison.differences),
    ]
    for name, outcome in (("pystack", finding.pystack), ("kernel", finding.kernel)):
        head.append(f"# {name} sent (relative numbers):")
        head += [f"#   {line}" for line in outcome.raw] or ["#   (nothing)"]
        head.append(f"# {name} calls:")
        head += [f"#   {line}" for line in outcome.calls] or ["#   (none)"]
        head.append(f"# {name} state at the end: {outcome.state}")
    head.append("# replay: pystack script --target pystack FILE.pkt; --target kernel FILE.pkt")
    return "\n".join([*head, *finding.lines]) + "\n"


def replay_finding(path: Path, pystack_observer: Observer | None = None) -> tuple[str, bool]:
    """Run a saved case (``finding_text``'s file, or any script of the same kind) on both
    stacks again; the report and whether an unexplained difference is still there."""
    lines = [
        line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    mine = (pystack_observer or observe_pystack)(lines)
    theirs = observe_kernel(lines)
    comparison = compare(mine, theirs, load_expected(), lines)
    report = [f"{path}:"]
    if comparison.same:
        report.append("  the same on both stacks")
    elif comparison.unexplained:
        report.append("  unexplained differences:")
        report += [f"    {line}" for line in comparison.differences]
    else:
        report.append(f"  explained by: {', '.join(comparison.explained_by)}")
    for name, outcome in (("pystack", mine), ("kernel", theirs)):
        report.append(f"  {name} sent:")
        report += [f"    {line}" for line in outcome.raw] or ["    (nothing)"]
        report += [f"  {name} {line}" for line in outcome.calls]
        report.append(f"  {name} state at the end: {outcome.state}")
    return "\n".join(report), comparison.unexplained


@dataclass
class DifferentialSettings:
    seed: int = 1
    seconds: float = 60.0
    cases: int | None = None
    packets: int | None = None  # budget of the peer's '<' segments (checked between cases)
    out: str | None = None


@dataclass
class DifferentialProgress:
    cases: int
    same: int
    explained: int
    findings: int
    elapsed: float

    def line(self) -> str:
        rate = self.cases / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"differential: {self.cases} cases ({rate:.1f}/s), {self.same} same, "
            f"{self.explained} explained, {self.findings} unexplained, {self.elapsed:.0f} s"
        )


@dataclass
class DifferentialResult:
    settings: DifferentialSettings
    cases: int = 0
    packets: int = 0  # '<' segments sent to each stack
    reruns: int = 0  # kernel runs repeated because they ran late (``LATE_LIMIT``)
    same: int = 0
    explained: dict[str, int] = field(default_factory=dict)  # entry name -> cases it explained
    explained_cases: int = 0
    findings: list[DifferentialFinding] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0

    def summary(self) -> str:
        lines = [
            f"differential campaign, seed {self.settings.seed}: {self.cases} cases in "
            f"{self.elapsed:.0f} s ({self.packets} peer segments each); {self.same} the same, {self.explained_cases} explained "
            f"by the expected list, {len(self.findings)} unexplained"
            + (f"; {self.reruns} kernel runs repeated (ran late)" if self.reruns else "")
            + (" (interrupted)" if self.interrupted else "")
        ]
        for name, count in sorted(self.explained.items()):
            lines.append(f"  explained: {name}: {count} cases")
        for number, finding in enumerate(self.findings, 1):
            where = f" -> {self.saved[number - 1]}" if number <= len(self.saved) else ""
            lines.append(f"  finding {number} (case {finding.case}){where}:")
            lines += [f"    {line}" for line in finding.comparison.differences]
        return "\n".join(lines)


def run_differential(
    settings: DifferentialSettings,
    show: Callable[[DifferentialProgress], None] | None = None,
    *,
    pystack_observer: Observer = observe_pystack,
    kernel_observer: Observer = observe_kernel,
    expected: Sequence[ExpectedDifference] | None = None,
) -> DifferentialResult:
    """Generate and compare cases until the time or case budget ends (or Ctrl-C).

    ``pystack_observer`` is replaceable so a test can plant a difference (a test double of the
    pystack target). ``KernelTargetError`` (no root, no TUN) propagates before any case ran.
    """
    rng = random.Random(settings.seed)
    entries = load_expected() if expected is None else list(expected)
    result = DifferentialResult(settings)
    started = time.monotonic()
    try:
        while time.monotonic() - started < settings.seconds and (
            settings.cases is None or result.cases < settings.cases
        ):
            if settings.packets is not None and result.packets >= settings.packets:
                break
            lines = generate_case(rng)
            result.packets += sum(" < " in f" {line}" for line in lines)
            mine = pystack_observer(lines)
            theirs = kernel_observer(lines)
            comparison = compare(mine, theirs, entries, lines)
            for _ in range(LATE_RERUNS):
                if comparison.same or theirs.late <= LATE_LIMIT:
                    break
                result.reruns += 1
                theirs = kernel_observer(lines)
                comparison = compare(mine, theirs, entries, lines)
            result.cases += 1
            if comparison.same:
                result.same += 1
            elif comparison.unexplained:
                finding = DifferentialFinding(result.cases, tuple(lines), mine, theirs, comparison)
                result.findings.append(finding)
                _save(finding, settings, result)
            else:
                result.explained_cases += 1
                for name in comparison.explained_by:
                    result.explained[name] = result.explained.get(name, 0) + 1
            if show is not None:
                show(_progress(result, started))
    except KeyboardInterrupt:
        result.interrupted = True
    result.elapsed = time.monotonic() - started
    return result


def _progress(result: DifferentialResult, started: float) -> DifferentialProgress:
    return DifferentialProgress(
        result.cases,
        result.same,
        result.explained_cases,
        len(result.findings),
        time.monotonic() - started,
    )


def _save(
    finding: DifferentialFinding, settings: DifferentialSettings, result: DifferentialResult
) -> None:
    if settings.out is None or len(result.saved) >= MAX_FINDINGS_SAVED:
        return
    directory = Path(settings.out)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"differential-seed{settings.seed}-case{finding.case}.pkt"
    path.write_text(finding_text(finding, settings.seed))
    result.saved.append(str(path))


__all__ = [
    "Comparison",
    "DifferentialSettings",
    "KernelTargetError",
    "Outcome",
    "compare",
    "generate_case",
    "load_expected",
    "observe",
    "replay_finding",
    "run_differential",
]
