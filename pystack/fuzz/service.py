"""``pystack fuzz --target kernel``: pystack's peer perturbs real connections to a kernel service.

A namespace (``KernelSandbox``: the kernel owns 10.0.0.2 on a TUN device whose other end this
process holds) runs the service under test: the built-in echo or discard server
(``kernel_service.EchoServer``) or the user's ``--command``, started inside the namespace and
stopped (by its PID) at the end. Each case is one connection from pystack's scripted peer
(10.0.0.1, a fresh port per case) to the service's port, written in the script notation with
relative numbers (``ignore outbound``: the kernel's packets are recorded, not matched). A case
starts as a plain exchange (handshake, a request cut into segments, ACKs of the echo, FIN),
then the campaign's **mutation hooks** rewrite its plan (a list of ``Planned`` segments):

=============  =============================================================================
hook           what it does to the plan
=============  =============================================================================
fields         one segment's seq or ack moved (a little, a window, far), or its flags changed
options        an option soup added to a segment (MSS, window scale, SACK blocks, timestamps,
               unknown kinds, EOL/NOP padding)
segmentation   a data segment cut in pieces, the pieces overlapping by a few bytes
ordering       two segments after the handshake swapped
timing         the gaps between segments stretched or squeezed (0 to 0.3 s)
window         the peer's window closed (0) after a segment, reopened later
rst_fin        a RST (exact, in the window, outside it) or a FIN put in at a random point
=============  =============================================================================

After each case the campaign checks that the service still serves a fresh connection (a client
socket inside the namespace connects and, for echo, gets its bytes back) and reads the
namespace's ``/proc/net/snmp`` and ``/proc/net/netstat``. ``ALARM_COUNTERS`` going up is a
finding (their reasons are beside them); ``WATCHED_COUNTERS`` are reported, and the first case
that moves each of them is saved as *interesting*. Findings and interesting cases are saved as
``.pkt`` scripts that ``pystack script --target kernel`` replays (``serve echo PORT`` starts the
built-in server there; a ``--command`` service must be started by hand, the comment says).

Python API: ``ServiceCampaign(port=7, hooks=[...]).run(seconds=..., seed=...)``; a hook is any
``Callable[[random.Random, list[Planned]], list[Planned]]`` (``HOOKS`` holds the built-in ones;
docs/fuzzing.md has an example). Entry points: ``Planned``, ``HOOKS``, ``ServiceCampaign``,
``ServiceSettings``, ``ServiceResult``.
"""

from __future__ import annotations

import random
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pystack.script import events as ev
from pystack.script.kernel import (
    KERNEL_ADDRESS,
    KernelSandbox,
    KernelScriptRunner,
    KernelTargetError,
    in_namespace,
    serve_echo_in_namespace,
)
from pystack.script.kernel_service import EchoServer
from pystack.script.notation import ScriptSyntaxError, parse_script
from pystack.script.report import ScriptFailure
from pystack.wire.errors import MalformedPacket

FIRST_PEER_PORT = 20000  # case N's peer port is FIRST_PEER_PORT + N % PEER_PORTS
PEER_PORTS = 40000
HEALTH_TIMEOUT = 2.0  # seconds the fresh connection of the health check may take
START_TIMEOUT = 5.0  # seconds a --command service has to start listening
MAX_SAVED = 100  # files a campaign writes at most
MAX_REQUEST = 4000  # bytes a case sends at most
MSS = 1460

# Counters whose rise means the service or the kernel is in trouble (a finding).
ALARM_COUNTERS: dict[str, str] = {
    "TcpExt.ListenOverflows": "the accept queue overflowed: the service stopped accepting",
    "TcpExt.ListenDrops": "SYNs dropped at the listener (overflow or no memory)",
    "TcpExt.TCPBacklogDrop": "the socket backlog was full while the application held the lock",
    "TcpExt.PruneCalled": "receive-queue pruning: the receive buffer ran out of memory",
    "TcpExt.RcvPruned": "packets dropped from the receive queue for lack of memory",
    "TcpExt.OfoPruned": "out-of-order queue pruned for lack of memory",
    "TcpExt.TCPMemoryPressures": "the stack-wide TCP memory pressure mode was entered",
    "TcpExt.TCPAbortOnMemory": "a connection was aborted for lack of memory",
    "TcpExt.TCPAbortFailed": "the kernel could not send the RST of an abort",
    "Tcp.InCsumErrors": "a segment with a bad checksum: the campaign's builder is wrong",
}
# Counters reported per case; the first case that moves each is saved as interesting.
WATCHED_COUNTERS: dict[str, str] = {
    "TcpExt.TCPChallengeACK": "RFC 5961 challenge ACKs sent",
    "TcpExt.TCPOFOQueue": "segments queued out of order",
    "TcpExt.TCPOFODrop": "out-of-order segments dropped (beyond the window, or no memory)",
    "TcpExt.TCPAbortOnData": "connections reset because data came after close",
    "TcpExt.TCPAbortOnClose": "connections reset because unread data was left at close",
    "TcpExt.EmbryonicRsts": "RSTs sent to connections in SYN-RECEIVED",
    "TcpExt.PAWSEstab": "segments dropped by PAWS",
    "TcpExt.TCPSACKDiscard": "SACK blocks discarded as invalid",
    "TcpExt.TCPDSACKOldSent": "D-SACKs sent for old duplicates",
    "TcpExt.TCPACKSkippedSeq": "ACKs for out-of-window segments not sent (rate limit)",
    "TcpExt.TCPZeroWindowDrop": "segments dropped because the receive window was zero",
    "TcpExt.TCPRcvQDrop": "segments dropped because the receive queue was full",
    "Tcp.InErrs": "segments the kernel found erroneous",
    "Tcp.OutRsts": "RSTs sent",
    "Tcp.AttemptFails": "connections that failed in SYN-RECEIVED or SYN-SENT",
    "Tcp.EstabResets": "established connections reset",
}


# the plan of a case ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """One segment pystack's peer sends, in the script's relative numbers."""

    gap: float  # seconds after the previous line
    flags: str  # notation flags: "S", ".", "P.", "F.", "R", "R." ...
    seq: int
    length: int = 0
    ack: int | None = None  # None: no ACK field
    window: int = 65535
    options: str = ""  # the notation's option list without the brackets

    def line(self) -> str:
        ack = "" if self.ack is None else f" ack {self.ack}"
        options = f" <{self.options}>" if self.options else ""
        end = self.seq + self.length
        return (
            f"+{self.gap:.3f} < {self.flags} {self.seq}:{end}({self.length}){ack} "
            f"win {self.window}{options}"
        )


Hook = Callable[[random.Random, list[Planned]], list[Planned]]


def base_plan(rng: random.Random, service: str) -> list[Planned]:
    """The unperturbed exchange: handshake, a request in segments, ACKs of the echo, FIN."""
    size = rng.choice((1, 10, 100, 1000, 3000))
    plan = [
        Planned(0.0, "S", 0, options="mss 1460,sackOK,nop,wscale 0"),
        Planned(0.01, ".", 1, ack=1),
    ]
    sent = 0
    while sent < size:
        piece = min(MSS, size - sent)
        plan.append(Planned(0.01, "P.", 1 + sent, piece, ack=1))
        sent += piece
    echoed = size if service == "echo" else 0
    end = 1 + size
    plan.append(Planned(0.05, ".", end, ack=1 + echoed))
    plan.append(Planned(0.01, "F.", end, ack=1 + echoed))
    plan.append(Planned(0.05, ".", end + 1, ack=2 + echoed))  # the service's FIN, if it closes
    return plan


def _after_handshake(plan: list[Planned]) -> range:
    return range(2, len(plan))


def hook_fields(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """One segment's seq or ack moved, or its flags changed."""
    plan = list(plan)
    index = rng.choice(range(1, len(plan)))
    segment = plan[index]
    what = rng.choice(("seq", "ack", "flags"))
    delta = rng.choice((-1, 1, -1000, 1000, 70000, -70000, 1 << 31))
    if what == "seq":
        plan[index] = replace(segment, seq=(segment.seq + delta) % (1 << 32))
    elif what == "ack" and segment.ack is not None:
        plan[index] = replace(segment, ack=(segment.ack + delta) % (1 << 32))
    else:
        flags = rng.choice(("S.", "SF", "F", "FP.", "R.", "P", ".", "SR", "U."))
        ack = (1 if segment.ack is None else segment.ack) if "." in flags else None
        plan[index] = replace(segment, flags=flags, ack=ack)
    return plan


_SOUP = (
    "nop",
    "eol",
    "mss 1",
    "mss 65535",
    "wscale 14",
    "wscale 15",
    "sackOK",
    "sack 1:2",
    "sack 100:50",
    "TS val 1 ecr 0",
    "TS val 4294967295 ecr 4294967295",
    "opt 254 0000",
    "opt 30 01",
    "opt 99",
)


def hook_options(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """An option soup on one segment (at most 40 bytes, the header's room)."""
    plan = list(plan)
    index = rng.choice(range(len(plan)))
    soup = [rng.choice(_SOUP) for _ in range(rng.randint(1, 4))]
    plan[index] = replace(plan[index], options=",".join(soup))
    return plan


def hook_segmentation(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """A data segment cut in pieces that may overlap by a few bytes."""
    data = [i for i in _after_handshake(plan) if plan[i].length > 1]
    if not data:
        return plan
    index = rng.choice(data)
    segment = plan[index]
    pieces: list[Planned] = []
    start, end = segment.seq, segment.seq + segment.length
    overlap = rng.choice((0, 0, 1, 5))
    while start < end:
        size = min(end - start, rng.choice((1, 2, 10, 100, 500)))
        if start == segment.seq:
            size = min(size, segment.length - 1)  # at least two pieces
        pieces.append(replace(segment, gap=0.002, seq=start, length=size))
        start += max(1, size - overlap) if start + size < end else size
    pieces[0] = replace(pieces[0], gap=segment.gap)
    return [*plan[:index], *pieces, *plan[index + 1 :]]


def hook_ordering(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """Two segments after the handshake swapped (their gaps stay in place)."""
    indexes = list(_after_handshake(plan))
    if len(indexes) < 2:
        return plan
    first = rng.choice(indexes[:-1])
    second = rng.choice([i for i in indexes if i > first])
    plan = list(plan)
    a, b = plan[first], plan[second]
    plan[first], plan[second] = replace(b, gap=a.gap), replace(a, gap=b.gap)
    return plan


def hook_timing(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """Gaps stretched or squeezed (0 to 0.3 s: past Linux's 200 ms minimum RTO at most once)."""
    return [
        replace(s, gap=rng.choice((0.0, s.gap, 0.1, 0.3))) if i else s for i, s in enumerate(plan)
    ]


def hook_window(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """The peer's window closed after one segment and reopened some segments later."""
    plan = list(plan)
    indexes = list(range(1, len(plan)))
    close = rng.choice(indexes)
    reopen = rng.choice([i for i in indexes if i >= close] + [len(plan)])
    for i in range(close, min(reopen, len(plan))):
        plan[i] = replace(plan[i], window=rng.choice((0, 0, 1)))
    return plan


def hook_rst_fin(rng: random.Random, plan: list[Planned]) -> list[Planned]:
    """A RST (exact, in the window, outside it) or a FIN put in after the handshake."""
    index = rng.choice(range(2, len(plan) + 1))
    previous = plan[index - 1]
    seq = previous.seq + previous.length
    kind = rng.choice(("rst_exact", "rst_window", "rst_outside", "fin"))
    if kind == "fin":
        injected = Planned(0.01, "F.", seq, ack=previous.ack or 1)
    else:
        offset = {"rst_exact": 0, "rst_window": rng.choice((1, 100, 30000))}.get(kind, 1 << 30)
        injected = Planned(0.01, "R", (seq + offset) % (1 << 32), window=0)
    return [*plan[:index], injected, *plan[index:]]


HOOKS: dict[str, Hook] = {
    "fields": hook_fields,
    "options": hook_options,
    "segmentation": hook_segmentation,
    "ordering": hook_ordering,
    "timing": hook_timing,
    "window": hook_window,
    "rst_fin": hook_rst_fin,
}


def case_lines(plan: Sequence[Planned], port: int, peer_port: int) -> list[str]:
    """The script of a case: ports, the plan, a RST that ends the connection, a quiet tail."""
    last = plan[-1] if plan else Planned(0.0, ".", 1)
    finish = Planned(0.05, "R", last.seq + last.length + (1 if "F" in last.flags else 0), window=0)
    return [
        "ignore outbound",
        f"ports {peer_port} {port}",
        *(segment.line().replace("+0.000", "0", 1) if i == 0 else segment.line()
          for i, segment in enumerate(plan)),
        finish.line(),
        "+0.05 expect nothing",
    ]  # fmt: skip


# the campaign ----------------------------------------------------------------------------------
@dataclass
class ServiceSettings:
    port: int = 7
    seconds: float = 60.0
    seed: int = 1
    cases: int | None = None
    packets: int | None = None  # budget of '<' segments sent
    service: str = "echo"  # echo, discard, or "command" (then ``command`` is run)
    command: str | None = None
    out: str | None = None
    hooks: Sequence[str] = tuple(HOOKS)
    mutations: int = 2  # hooks applied to each case (at most)


@dataclass
class ServiceFinding:
    case: int
    kind: str  # "unhealthy", "alarm", "interesting", "error"
    what: str
    lines: tuple[str, ...]
    counters: dict[str, int]
    sent: tuple[str, ...]


@dataclass
class ServiceProgress:
    cases: int
    packets: int
    findings: int
    elapsed: float

    def line(self) -> str:
        rate = self.cases / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"fuzz kernel: {self.cases} cases ({rate:.1f}/s), {self.packets} packets, "
            f"{self.findings} findings, {self.elapsed:.0f} s"
        )


@dataclass
class ServiceResult:
    settings: ServiceSettings
    cases: int = 0
    packets: int = 0
    findings: list[ServiceFinding] = field(default_factory=list)
    interesting: list[ServiceFinding] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # totals of the watched ones
    saved: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0
    namespace: str = ""

    def summary(self) -> str:
        lines = [
            f"fuzz --target kernel, port {self.settings.port} ({self.settings.service}), "
            f"seed {self.settings.seed}: {self.cases} cases, {self.packets} packets in "
            f"{self.elapsed:.0f} s; {len(self.findings)} findings, "
            f"{len(self.interesting)} interesting" + (" (interrupted)" if self.interrupted else "")
        ]
        moved = {name: value for name, value in sorted(self.counters.items()) if value}
        if moved:
            lines.append("  kernel counters: " + ", ".join(f"{k} +{v}" for k, v in moved.items()))
        for finding in self.findings:
            lines.append(f"  finding (case {finding.case}, {finding.kind}): {finding.what}")
        lines += [f"  saved {path}" for path in self.saved]
        return "\n".join(lines)


class ServiceCampaign:
    """A campaign against one service in a namespace it makes (and removes, also on Ctrl-C).

    ``hooks`` are names from ``HOOKS`` or callables (``Hook``): custom campaigns add their own.
    """

    def __init__(
        self, settings: ServiceSettings, hooks: Sequence[str | Hook] | None = None
    ) -> None:
        self.settings = settings
        chosen = settings.hooks if hooks is None else hooks
        self.hooks: list[tuple[str, Hook]] = []
        for hook in chosen:
            if isinstance(hook, str):
                if hook not in HOOKS:
                    raise ValueError(f"unknown hook {hook!r} (known: {', '.join(HOOKS)})")
                self.hooks.append((hook, HOOKS[hook]))
            else:
                known = [name for name, builtin in HOOKS.items() if builtin is hook]
                self.hooks.append(
                    (known[0] if known else getattr(hook, "__name__", "custom"), hook)
                )

    # one case -----------------------------------------------------------------------------------
    def plan(self, rng: random.Random) -> tuple[list[Planned], list[str]]:
        """A case's plan and the names of the hooks that changed it."""
        plan = base_plan(rng, self.settings.service)
        used = []
        for _ in range(rng.randint(0, self.settings.mutations)):
            if not self.hooks:
                break
            name, hook = rng.choice(self.hooks)
            plan = hook(rng, plan)
            used.append(name)
        return plan, used

    def run_case(self, sandbox: KernelSandbox, lines: Sequence[str]) -> tuple[str, ...]:
        """Send one case through ``sandbox``; the kernel's packets (script notation, times)."""
        parsed = parse_script("\n".join(lines))
        runner = KernelScriptRunner(parsed, sandbox)
        peer_port = next(
            (line.event.peer for line in parsed if isinstance(line.event, ev.Ports)), 0
        )
        sent: list[str] = []
        keep = runner._keep_outbound

        def record(when: float, frame: bytes) -> None:
            # Only this case's connection: a previous case's retransmission must not re-base
            # the numbering (a SYN-ACK teaches its ISN).
            try:
                _, segment = runner._decode(frame)
            except MalformedPacket:
                return
            if segment is None or segment.dst_port != peer_port:
                return
            keep(when, frame)
            if len(sent) < 1000:
                sent.append(f"{when:.3f} {runner._show(frame)}")

        setattr(runner, "_keep_outbound", record)  # noqa: B010 - this runner only
        try:
            runner.run()
        except ScriptFailure as failure:  # a line the runner could not send (bad options)
            sent.append(f"(the case stopped: {failure.reason})")
        return tuple(sent)

    def healthy(self, sandbox: KernelSandbox) -> str | None:
        """None if the service serves a fresh connection; else what went wrong (one line)."""
        port, service = self.settings.port, self.settings.service

        def check() -> str | None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
                client.settimeout(HEALTH_TIMEOUT)
                try:
                    client.connect((KERNEL_ADDRESS, port))
                    if service != "echo":
                        return None
                    probe = b"pystack health check\n"
                    client.sendall(probe)
                    answer = b""
                    while len(answer) < len(probe):
                        data = client.recv(len(probe) - len(answer))
                        if not data:
                            return f"the echo service closed after {len(answer)} bytes"
                        answer += data
                    if answer != probe:
                        return "the echo service answered other bytes"
                except OSError as error:
                    return f"a fresh connection to port {port} failed: {error.strerror or error}"
            return None

        return in_namespace(sandbox.name, check)

    # the campaign -------------------------------------------------------------------------------
    def run(self, show: Callable[[ServiceProgress], None] | None = None) -> ServiceResult:
        settings = self.settings
        rng = random.Random(settings.seed)
        result = ServiceResult(settings)
        started = time.monotonic()
        try:  # Ctrl-C or SIGTERM at any point: the ``with`` and ``finally`` remove everything
            with KernelSandbox() as sandbox:
                result.namespace = sandbox.name
                server = self._start_service(sandbox)
                try:
                    problem = self.healthy(sandbox)
                    if problem is not None:
                        raise KernelTargetError(
                            f"the service is not serving before any case: {problem}"
                        )
                    self._cases(sandbox, rng, result, started, show)
                finally:
                    if server is not None:
                        server.stop()
        except KeyboardInterrupt:
            result.interrupted = True
        result.elapsed = time.monotonic() - started
        return result

    def _start_service(self, sandbox: KernelSandbox) -> EchoServer | None:
        settings = self.settings
        if settings.command is None:
            return serve_echo_in_namespace(sandbox.name, settings.port, settings.service)
        assert sandbox.namespace is not None
        try:
            sandbox.namespace.popen(
                shlex.split(settings.command),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as error:
            raise KernelTargetError(f"--command: {error.strerror or error}") from None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # bounded: wait for it to listen
            if self.healthy(sandbox) is None:
                return None
            time.sleep(0.1)
        raise KernelTargetError(
            f"--command: nothing serves port {settings.port} after {START_TIMEOUT:.0f} s"
        )

    def _cases(
        self,
        sandbox: KernelSandbox,
        rng: random.Random,
        result: ServiceResult,
        started: float,
        show: Callable[[ServiceProgress], None] | None,
    ) -> None:
        settings = self.settings
        seen: set[str] = set()
        before = _counters(sandbox)
        while time.monotonic() - started < settings.seconds:
            if settings.cases is not None and result.cases >= settings.cases:
                break
            if settings.packets is not None and result.packets >= settings.packets:
                break
            plan, used = self.plan(rng)
            peer_port = FIRST_PEER_PORT + result.cases % PEER_PORTS
            lines = case_lines(plan, settings.port, peer_port)
            result.cases += 1
            result.packets += len(plan) + 1
            try:
                sent = self.run_case(sandbox, lines)
            except (ScriptSyntaxError, ValueError) as error:
                sent = (f"(not sent: {error})",)
            problem = self.healthy(sandbox)
            after = _counters(sandbox)
            delta = {
                name: after.get(name, 0) - before.get(name, 0)
                for name in (*ALARM_COUNTERS, *WATCHED_COUNTERS)
                if after.get(name, 0) != before.get(name, 0)
            }
            before = after
            for name, value in delta.items():
                result.counters[name] = result.counters.get(name, 0) + value
            header = (f"hooks: {', '.join(used) or 'none'}",)
            if problem is not None:
                self._found(result, "unhealthy", problem, lines, delta, sent, header)
                break  # the service is down: more cases would say nothing new
            alarms = [name for name in delta if name in ALARM_COUNTERS and delta[name] > 0]
            if alarms:
                what = "; ".join(
                    f"{name} +{delta[name]}: {ALARM_COUNTERS[name]}" for name in alarms
                )
                self._found(result, "alarm", what, lines, delta, sent, header)
            new = [name for name in delta if name in WATCHED_COUNTERS and name not in seen]
            if new:
                seen.update(new)
                what = "first to move " + ", ".join(new)
                finding = ServiceFinding(
                    result.cases, "interesting", what, tuple(lines), delta, sent
                )
                result.interesting.append(finding)
                self._save(result, finding, header)
            if show is not None:
                show(ServiceProgress(result.cases, result.packets, len(result.findings),
                                     time.monotonic() - started))  # fmt: skip

    def _found(
        self,
        result: ServiceResult,
        kind: str,
        what: str,
        lines: Sequence[str],
        delta: dict[str, int],
        sent: Sequence[str],
        header: Sequence[str],
    ) -> None:
        finding = ServiceFinding(result.cases, kind, what, tuple(lines), delta, tuple(sent))
        result.findings.append(finding)
        self._save(result, finding, header)

    def _save(self, result: ServiceResult, finding: ServiceFinding, header: Sequence[str]) -> None:
        settings = self.settings
        if settings.out is None or len(result.saved) >= MAX_SAVED:
            return
        directory = Path(settings.out)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"kernel-{finding.kind}-seed{settings.seed}-case{finding.case}.pkt"
        path.write_text(service_script(finding, settings, header))
        result.saved.append(str(path))


def service_script(
    finding: ServiceFinding, settings: ServiceSettings, header: Sequence[str] = ()
) -> str:
    """A ``.pkt`` replaying the case with ``pystack script --target kernel``, and in comments
    what was found, the counters that moved and what the kernel sent."""
    serve = (
        [f"serve {settings.service} {settings.port}"]
        if settings.command is None and settings.service == "echo"
        else []
    )
    comments = [
        f"# pystack fuzz --target kernel --port {settings.port} --seed {settings.seed}: "
        f"case {finding.case}",
        f"# {finding.kind}: {finding.what}",
        *(f"# {line}" for line in header),
        "# kernel counters that moved: "
        + (", ".join(f"{k} {v:+d}" for k, v in sorted(finding.counters.items())) or "none"),
        "# the kernel sent:",
        *(f"#   {line}" for line in finding.sent),
    ]
    if settings.command is not None:
        comments.append(f"# start the service first, in the namespace: {settings.command}")
    elif settings.service != "echo":
        comments.append(f"# the {settings.service} service: start it on port {settings.port}")
    lines = list(finding.lines)
    return "\n".join([*comments, lines[0], *serve, *lines[1:]]) + "\n"


def _counters(sandbox: KernelSandbox) -> dict[str, int]:
    """The namespace's counters as ``Group.Name`` -> value."""
    return {f"{group}.{name}": value for (_, group, name), value in sandbox.counters().items()}
