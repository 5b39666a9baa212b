"""Findings as reproducers: minimized scripts (``.pkt``) and captures (pcap) that replay.

A case's lines are already a script (``world.py``); ``reproducer`` turns a finding into one
that fails on its own: an invariant finding gets an ``expect invariants`` line at its moment, a
wrong read or an escaped exception fails at its own line. ``replay`` runs lines in a fresh
``ScriptRunner`` (what ``pystack script`` does: no reference peer, only its packets) and
says which finding it hit; ``minimize`` removes lines (halves, quarters, ... single lines, as
delta debugging does) while the replay still hits the same finding (``Finding.signature``, the
numbers left out), within a budget of replays. ``write_pcap`` records a replay, both ways.
Entry points: ``reproducer``, ``replay``, ``minimize``, ``script_text``, ``write_pcap``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from pystack.fuzz.world import Finding, classify
from pystack.link.base import LinkKind
from pystack.link.pcap import PcapWriter, linktype_for
from pystack.script import events as ev
from pystack.script.notation import ScriptSyntaxError, parse_script
from pystack.script.report import ScriptFailure
from pystack.script.runner import ScriptRunner

HEADER_LINES = 2  # ``ignore outbound``, ``serve echo 7``: always kept
REPLAYABLE = frozenset({"exception", "invariant", "read"})  # kinds a plain replay can check


def reproducer(finding: Finding) -> tuple[str, ...]:
    """The lines that replay ``finding``: the case's lines, and the check that fails."""
    lines = finding.lines
    if finding.kind == "invariant" and lines:
        when = lines[-1].split()[0] if lines[-1][:1].isdigit() else "0"
        lines = (*lines, f"{when} expect invariants")
    return lines


def replay(lines: Sequence[str]) -> Finding | None:
    """Run ``lines`` as a script in a fresh runner; the finding it hits, or None."""
    try:
        parsed = parse_script("\n".join(lines))
    except ScriptSyntaxError as error:
        return Finding("script", str(error).splitlines()[0])
    runner = ScriptRunner(parsed)
    try:
        runner.run()
    except ScriptFailure as failure:
        return classify(failure)
    return None


def minimize(
    lines: Sequence[str], signature: str, max_replays: int = 400, max_seconds: float = 60.0
) -> tuple[tuple[str, ...], int]:
    """The fewest lines (that it finds) whose replay still has ``signature``; and the replays
    made. ``lines`` must replay with it already (else they come back unchanged)."""
    head, body = tuple(lines[:HEADER_LINES]), list(lines[HEADER_LINES:])
    last = body.pop() if body and "expect invariants" in body[-1] else None
    tail = (last,) if last is not None else ()
    replays, started = 0, time.monotonic()

    def still_fails(candidate: list[str]) -> bool:
        nonlocal replays
        replays += 1
        found = replay((*head, *candidate, *tail))
        return found is not None and found.signature == signature

    parts = 2
    while len(body) >= 2:
        size = -(-len(body) // parts)
        for start in range(0, len(body), size):
            if replays >= max_replays or time.monotonic() - started > max_seconds:
                return (*head, *body, *tail), replays
            candidate = body[:start] + body[start + size :]
            if still_fails(candidate):
                body = candidate
                parts = max(parts - 1, 2)
                break
        else:
            if parts >= len(body):
                break
            parts = min(len(body), parts * 2)
    if len(body) == 1 and still_fails([]):
        body = []
    return (*head, *body, *tail), replays


def script_text(lines: Sequence[str], comments: Sequence[str]) -> str:
    """A ``.pkt`` file: ``#`` comment lines first (what it checks), then the lines."""
    head = [f"# {comment}" if comment else "#" for comment in comments]
    return "\n".join([*head, *lines]) + "\n"


def write_pcap(lines: Sequence[str], path: str | Path) -> int:
    """Replay ``lines`` and write every packet both ways to ``path``; returns the count."""
    runner = ScriptRunner(parse_script("\n".join(lines)))
    try:
        runner.run()
    except ScriptFailure:
        pass  # a reproducer fails: the packets up to its failure are what matters
    packets: list[tuple[float, bytes]] = []
    for line in runner.lines[: runner.index]:
        if isinstance(line.event, ev.RawPacket) and line.time is not None:
            packets.append((line.time.start or 0.0, line.event.data))
    packets += list(runner.outbound)
    packets.sort(key=lambda item: item[0])
    with PcapWriter(str(path), linktype_for(LinkKind.IP)) as writer:
        for when, frame in packets:
            writer.write(frame, when)
    return len(packets)
