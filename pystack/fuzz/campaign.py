"""A self-fuzzing campaign: many cases, guided by state-transition coverage, bounded, seeded.

A worker makes cases from its seed (``random.Random("pystack-fuzz:SEED:WORKER")``): half of them
fresh bytes, half mutations of the bytes of a kept case (``choices.mutate_bytes``). A case is
kept when it reached a (state, cause, next state) triple no earlier case of the worker reached,
the guidance TCP-Fuzz uses instead of line coverage. A finding is minimized and, with an
output directory, saved as ``finding-N-KIND.pkt`` and ``.pcap``; findings with the same
signature are counted once. Everything is a pure function of the seed and the case budget: the
same seed gives the same cases in the same order (a time budget only decides how many run).

Bounds: ``seconds`` of wall time, ``cases`` and ``packets`` (whichever comes first), ``MAX_ACTIONS`` actions
and ``world.MAX_LINES`` lines per case, ``CORPUS_LIMIT`` kept cases, a replay budget for each
minimization. ``jobs`` > 1 runs that many worker processes with derived seeds (worker k takes
``cases`` / ``jobs`` cases) and merges their coverage and findings. Ctrl-C (or ``stop``) ends
the campaign after the case in progress, with the summary of what ran.
Entry points: ``CampaignSettings``, ``run_campaign``, ``CampaignResult``, ``Progress``.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pystack.fuzz.choices import fresh_bytes, mutate_bytes
from pystack.fuzz.generator import MAX_ACTIONS, run_case
from pystack.fuzz.reproducer import (
    REPLAYABLE,
    minimize,
    replay,
    reproducer,
    script_text,
    write_pcap,
)
from pystack.fuzz.world import Finding, Triple

CORPUS_LIMIT = 512  # kept cases per worker (the oldest go first)
PROGRESS_INTERVAL = 0.5  # seconds between progress reports


@dataclass(frozen=True)
class CampaignSettings:
    seed: int = 1
    seconds: float = 60.0  # wall-clock budget
    cases: int | None = None  # case budget (None: only the time bounds the campaign)
    packets: int | None = None  # budget of injected packets (checked between cases)
    jobs: int = 1
    out: str | None = None  # where findings are written (None: nowhere)
    reference: bool = True  # run the reference exchanges through the host
    max_actions: int = MAX_ACTIONS
    minimize_replays: int = 400


@dataclass
class SavedFinding:
    finding: Finding
    lines: tuple[str, ...]  # the minimized reproducer (the full case when it does not replay)
    replays: bool  # does the reproducer, replayed by the script runner, hit the finding?
    worker: int
    case: int
    count: int = 1  # cases that hit this signature
    script: str | None = None  # the files written
    pcap: str | None = None


@dataclass
class Progress:
    cases: int
    elapsed: float
    coverage: int
    findings: int
    corpus: int

    @property
    def rate(self) -> float:
        return self.cases / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.cases} cases ({self.rate:.1f}/s), {self.coverage} transitions, "
            f"{self.corpus} kept, {self.findings} findings, {self.elapsed:.0f} s"
        )


@dataclass
class CampaignResult:
    settings: CampaignSettings
    cases: int = 0
    packets: int = 0
    lines: int = 0
    coverage: set[Triple] = field(default_factory=set)
    findings: list[SavedFinding] = field(default_factory=list)
    corpus: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    def summary(self) -> str:
        lines = [
            f"fuzz --self seed {self.settings.seed}: {self.cases} cases, {self.packets} packets "
            f"injected, {self.lines} script lines in {self.elapsed:.1f} s"
            + (" (interrupted)" if self.interrupted else ""),
            f"transition coverage: {len(self.coverage)} (state, cause, next state) triples",
            f"findings: {len(self.findings)}",
        ]
        for saved in self.findings:
            where = f" -> {saved.script}" if saved.script else ""
            replays = "replays" if saved.replays else "does not replay as a script"
            lines.append(
                f"  {saved.finding.kind}: {saved.finding.message} ({saved.count} cases; "
                f"{len(saved.lines)} lines, {replays}){where}"
            )
        return "\n".join(lines)

    def merge(self, other: CampaignResult) -> None:
        self.cases += other.cases
        self.packets += other.packets
        self.lines += other.lines
        self.coverage |= other.coverage
        self.corpus += other.corpus
        self.interrupted |= other.interrupted
        known = {saved.finding.signature: saved for saved in self.findings}
        for saved in other.findings:
            if saved.finding.signature in known:
                known[saved.finding.signature].count += saved.count
            else:
                self.findings.append(saved)


def worker_rng(seed: int, worker: int) -> random.Random:
    return random.Random(f"pystack-fuzz:{seed}:{worker}")


def run_worker(
    settings: CampaignSettings,
    worker: int = 0,
    *,
    cases: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> CampaignResult:
    """One worker's share of the campaign, in this process."""
    rng = worker_rng(settings.seed, worker)
    result = CampaignResult(settings)
    corpus: list[bytes] = []
    signatures: dict[str, SavedFinding] = {}
    started = last_report = time.monotonic()
    budget = settings.cases if cases is None else cases
    try:
        while budget is None or result.cases < budget:
            now = time.monotonic()
            if now - started >= settings.seconds or (stop is not None and stop()):
                break
            if settings.packets is not None and result.packets >= _share(settings, worker):
                break
            data = (
                mutate_bytes(rng.choice(corpus), rng)
                if corpus and rng.random() < 0.5
                else fresh_bytes(rng)
            )
            case = run_case(data, reference=settings.reference, max_actions=settings.max_actions)
            result.cases += 1
            result.packets += case.packets
            result.lines += len(case.lines)
            if not case.coverage <= result.coverage:
                result.coverage |= case.coverage
                corpus = [*corpus[-CORPUS_LIMIT + 1 :], data]
            if case.finding is not None:
                _note_finding(settings, case.finding, signatures, result, worker)
            if progress is not None and now - last_report >= PROGRESS_INTERVAL:
                last_report = now
                progress(_progress(result, started, corpus))
    except KeyboardInterrupt:
        result.interrupted = True
    result.corpus = len(corpus)
    result.elapsed = time.monotonic() - started
    if progress is not None:
        progress(_progress(result, started, corpus))
    return result


def _progress(result: CampaignResult, started: float, corpus: list[bytes]) -> Progress:
    elapsed = time.monotonic() - started
    return Progress(result.cases, elapsed, len(result.coverage), len(result.findings), len(corpus))


def _note_finding(
    settings: CampaignSettings,
    finding: Finding,
    signatures: dict[str, SavedFinding],
    result: CampaignResult,
    worker: int,
) -> None:
    known = signatures.get(finding.signature)
    if known is not None:
        known.count += 1
        return
    lines = reproducer(finding)
    replayed = replay(lines) if finding.kind in REPLAYABLE else None
    replays = replayed is not None and replayed.signature == finding.signature
    if replays:
        lines, _ = minimize(lines, finding.signature, settings.minimize_replays)
    saved = SavedFinding(finding, lines, replays, worker, result.cases)
    signatures[finding.signature] = saved
    result.findings.append(saved)
    if settings.out is not None:
        save(saved, settings, len(result.findings), worker)


def save(saved: SavedFinding, settings: CampaignSettings, number: int, worker: int) -> None:
    """Write the finding's ``.pkt`` and ``.pcap`` into ``settings.out``."""
    out = Path(settings.out or ".")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"finding-{worker}-{number}-{saved.finding.kind}"
    finding = saved.finding
    comments = [
        f"fuzz finding ({finding.kind}): {finding.message}",
        f"policy: found by 'pystack fuzz --self --seed {settings.seed}' "
        f"(worker {worker}, case {saved.case})",
        "replays with the script runner: it fails at the finding"
        if saved.replays
        else "does NOT fail when replayed as a script: it needs the campaign's echo service "
        "or reference peer (the lines are the whole case)",
        *[f"  {detail}" for detail in finding.details[:5]],
        "",
    ]
    script = stem.with_suffix(".pkt")
    script.write_text(script_text(saved.lines, comments))
    saved.script = str(script)
    pcap = stem.with_suffix(".pcap")
    write_pcap(saved.lines, pcap)
    saved.pcap = str(pcap)


# several workers ----------------------------------------------------------------------------------
def _worker_main(
    settings: CampaignSettings, worker: int, cases: int | None, reports: Any, stop: Any
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent says when to stop (``stop``)

    def report(progress: Progress) -> None:
        reports.put(("progress", worker, progress))

    result = run_worker(settings, worker, cases=cases, progress=report, stop=stop.is_set)
    reports.put(("result", worker, result))


def run_campaign(
    settings: CampaignSettings,
    progress: Callable[[Progress], None] | None = None,
) -> CampaignResult:
    """The whole campaign: in this process (``jobs`` 1) or in ``jobs`` worker processes."""
    if settings.jobs <= 1:
        return run_worker(settings, 0, progress=progress)
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    stop = context.Event()
    shares = _shares(settings.cases, settings.jobs)
    workers = [
        context.Process(
            target=_worker_main, args=(settings, k, shares[k], reports, stop), daemon=True
        )
        for k in range(settings.jobs)
    ]
    started = time.monotonic()
    for process in workers:
        process.start()
    merged = CampaignResult(settings)
    latest: dict[int, Progress] = {}
    results: dict[int, CampaignResult] = {}
    interrupted = False
    while len(results) < len(workers):
        try:
            kind, worker, payload = reports.get(timeout=PROGRESS_INTERVAL)
        except queue.Empty:
            if not any(p.is_alive() for p in workers) and reports.empty():
                break  # a worker died without a result: what the others found still counts
            continue
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            continue
        if kind == "result":
            results[worker] = payload
        else:
            latest[worker] = payload
            if progress is not None:
                progress(_combined(latest, started))
    for process in workers:
        process.join(timeout=10)
    for worker in sorted(results):
        merged.merge(results[worker])
    merged.interrupted |= interrupted
    merged.elapsed = time.monotonic() - started
    return merged


def _share(settings: CampaignSettings, worker: int) -> int:
    """This worker's part of the packet budget."""
    packets = settings.packets or 0
    jobs = max(settings.jobs, 1)
    return packets // jobs + (1 if worker < packets % jobs else 0)


def _shares(cases: int | None, jobs: int) -> list[int | None]:
    if cases is None:
        return [None] * jobs
    return [cases // jobs + (1 if k < cases % jobs else 0) for k in range(jobs)]


def _combined(latest: dict[int, Progress], started: float) -> Progress:
    return Progress(
        sum(p.cases for p in latest.values()),
        time.monotonic() - started,
        max((p.coverage for p in latest.values()), default=0),  # a lower bound until merged
        sum(p.findings for p in latest.values()),
        sum(p.corpus for p in latest.values()),
    )
