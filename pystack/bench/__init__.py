"""``pystack bench``: pystack measured beside the Linux kernel and a raw-TUN ceiling, in one run.

Everything runs inside network namespaces the benchmark creates and removes (root only); traffic
never leaves them. The kernel side is always the same small Python client, so the peers differ
only in what serves it (``pystack.bench.kernel``). Each figure is the median of ``--repeat``
samples, shown with its minimum and maximum, and every ratio divides two figures of the same run.
It then runs smoltcp's two netsim scenarios (the window-vs-loss grid and the shared-bottleneck
multiflow run) with pystack stacks on virtual time (``pystack.bench.netsim``; needs no root).
Not a test: the numbers vary by machine and load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import statistics
import sys
import textwrap
import time
from pathlib import Path
from types import FrameType
from typing import Any

from pystack import netns
from pystack.bench import netsim
from pystack.bench.kernel import (
    BIG_MTU,
    LOSS_REFERENCE,
    MEMORY_METRICS,
    METRICS,
    RAW_REFERENCE,
    ROW_METRICS,
    ROWS,
    BenchError,
    Row,
    Sizes,
    codec_rates,
    measure_all,
)

FULL = Sizes(
    bulk=100_000_000,
    count=3000,
    pings=5000,
    repeat=5,
    connects=1000,
    datagrams=20000,
    connections=10000,
)
QUICK = Sizes(
    bulk=2_000_000, count=200, pings=200, repeat=5, connects=100, datagrams=2000, connections=500
)
MIN_REPEAT = 5  # the issue asks for a median over at least 5 samples
QUICK_NETSIM_BYTES = 256 * 1024  # per grid cell with --quick (smoltcp's cells move 10 MiB)
QUICK_MULTIFLOW_BYTES = 256 * 1024  # per flow with --quick (smoltcp's flows move 2 MiB)
KERNEL_REFERENCE = "kernel_veth_1500"

# What each figure measures, for --help (keys of kernel.METRICS and kernel.MEMORY_METRICS).
EXPLAIN = {
    "in": "one connection moving --size bytes from the kernel-side client to the peer",
    "out": "one connection moving --size bytes from the peer to the client",
    "rr_p50": "--count one-byte request/response round trips on one connection: the median",
    "rr_p99": "the same round trips' 99th percentile",
    "rr_tps": "the same round trips per second",
    "connect": "connections the client opens, closes and sees closed, one after the other "
    "(to the discard port)",
    "udp_in": "64-byte datagrams/s the peer's application counts (first to last) while the "
    "client sends --datagrams of them as fast as it can",
    "udp_out": "64-byte datagrams/s the client receives while the peer sends --datagrams of "
    "them as fast as it can",
    "ping": "mean round trip of a flood ping",
    "traced_per_connection": "--connections idle established connections to pystack, held "
    "by one kernel-side client: tracemalloc's traced bytes in the process running the stack, "
    "per connection (a fresh interpreter per sample)",
    "rss_per_connection": "the resident set's growth per connection, less tracemalloc's own "
    "bookkeeping",
    "traced_total": "tracemalloc's traced bytes for all of them",
    "rss_total": "the resident set's growth for all of them",
}
FIGURE_HELP = "figures (each the median of --repeat samples, with [min-max]):\n" + "\n".join(
    textwrap.fill(
        f"{label} ({unit}): {EXPLAIN[key]}",
        width=98,
        initial_indent="  ",
        subsequent_indent="      ",
        break_on_hyphens=False,
    )
    for key, label, unit in (*METRICS, *MEMORY_METRICS)
)

ROW_HELP = f"""rows (every one served to the same kernel-side Python client, in its own namespaces):
  pystack services, ...             pystack up --serve discard,echo,chargen over TUN, with the
                                    TUN offloads (virtio-net header, TSO, checksum offload: the
                                    default of pystack up) or plain frames (one frame per segment,
                                    full checksums), at MTU 1500 and {BIG_MTU} (TUN allows up to
                                    65535; {BIG_MTU} is the issue's figure), plus a UDP counting
                                    sink and source on the same stack
  pystack services, ..., 1% loss    the plain row's bulk transfers through pystack's impairment
                                    link losing 1% of the frames each way (seeded): bulk only
  usocket script, ...               a MicroPython script under pystack run --link tun serving the
                                    same ports through usocket (what user code gets), same variants
  raw-TUN ceiling, ...              the least a Python TCP endpoint on TUN must do per segment
                                    (pystack.bench.raw_tcp, no state machine), plain and with the
                                    offloads; TCP only (bulk both ways and RR)
  Linux kernel, veth, mtu 1500      a kernel server across a veth pair: the kernel reference
{FIGURE_HELP}
ratios: each row's median over the kernel row's, and over the raw-TUN ceiling of its frame kind
(plain rows: the plain ceiling; offload rows and MTU {BIG_MTU}: the offload ceiling), and the
lossy row's over the same row without loss ("loss_free").
JSON (--json): {{"config", "codec", "rows": {{key: {{"label", metric: {{median, min, max, samples,
unit}}}}}}, "ratios": {{key: {{metric: {{"kernel": x, "raw_tun": y, "loss_free": z}}}}}}, "connections": {{"count",
metric: {{...}}}}, "netsim": {{...}}}}; a figure a peer lacks is absent.

netsim (no root needed), smoltcp's tests/netsim.rs on pystack's virtual time, pystack beside
smoltcp's published figures:
  window-vs-loss grid   1 flow, Ethernet MTU 1500, 50 ms each way, unlimited link, Bernoulli loss
                        both ways (seeded random.Random, not smoltcp's ChaCha20 draws;
                        --netsim-seeds N runs seed pairs (0,1), (2,3), ... and shows the median
                        [min-max]),
                        socket buffers of 128 B to 32 KiB, 10 MiB per cell (--quick: 256 KiB);
                        each cell: pystack's goodput / smoltcp's (bytes/s of virtual time)
  multiflow             1, 2, 4, 16, 32, 64 flows sharing one 25 MB/s bottleneck with a 64 KiB
                        drop-tail queue per direction, per-flow RTTs 50-150 ms, 256 KiB buffers,
                        2 MiB per flow (--quick: 256 KiB): aggregate, min and max per-flow
                        throughput, Jain fairness, bottleneck drop ratio, and the share of the
                        link/window ceiling min(25 MB/s, sum of 256 KiB / RTT)
smoltcp's figures are for its full sizes, so only a full-size run compares exactly."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pystack bench`` (its ``--help`` explains every row)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK.bulk // 1_000_000} MB per bulk transfer, {QUICK.count} round "
        f"trips, {QUICK.pings} pings, {QUICK.connects} connections, {QUICK.datagrams} datagrams "
        f"per sample, {QUICK.connections} idle connections (still {QUICK.repeat} samples per "
        "figure), smaller netsim transfers",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"samples per figure, at least {MIN_REPEAT} (default {FULL.repeat})",
    )
    sizes = (
        ("--size", "BYTES", "bytes per bulk transfer", FULL.bulk, QUICK.bulk),
        ("--count", "N", "round trips per request/response sample", FULL.count, QUICK.count),
        ("--connects", "N", "connect+close per connection-rate sample", FULL.connects,
         QUICK.connects),
        ("--datagrams", "N", "datagrams per UDP sample", FULL.datagrams, QUICK.datagrams),
        ("--connections", "N", "idle established connections for the memory figures",
         FULL.connections, QUICK.connections),
    )  # fmt: skip
    for option, metavar, text, full, quick in sizes:
        parser.add_argument(
            option, type=int, metavar=metavar, help=f"{text} (default {full}; --quick {quick})"
        )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--netsim-only",
        action="store_true",
        help="only the netsim scenarios (virtual time; needs no root)",
    )
    which.add_argument(
        "--no-netsim", action="store_true", help="only the kernel rows, without netsim"
    )
    parser.add_argument(
        "--netsim-bytes",
        type=int,
        metavar="BYTES",
        help=f"bytes per grid cell (default {netsim.TRANSFER}, smoltcp's; --quick "
        f"{QUICK_NETSIM_BYTES})",
    )
    parser.add_argument(
        "--netsim-cells",
        metavar="LIST",
        help="only these grid cells, as BUFFER:LOSS[,BUFFER:LOSS...] "
        "(e.g. 1024:0.01,32768:0.1); 'none' for no grid",
    )
    parser.add_argument(
        "--netsim-seeds",
        type=int,
        metavar="N",
        default=1,
        help="loss seed pairs per grid cell, (0,1), (2,3), ...: more show the spread (default 1)",
    )
    parser.add_argument(
        "--multiflow",
        metavar="LIST",
        help="flow counts of the multiflow run, a subset of "
        f"{','.join(map(str, netsim.FLOW_COUNTS))} (default all); 'none' for no multiflow run",
    )
    parser.add_argument(
        "--multiflow-bytes",
        type=int,
        metavar="BYTES",
        help=f"bytes per multiflow flow (default {netsim.MULTIFLOW_TRANSFER}, smoltcp's; "
        f"--quick {QUICK_MULTIFLOW_BYTES})",
    )


def _sizes(arguments: argparse.Namespace) -> Sizes | str:
    base = QUICK if arguments.quick else FULL
    values: dict[str, int] = {}
    for name, minimum in (
        ("repeat", MIN_REPEAT),
        ("bulk", 1000),
        ("count", 1),
        ("connects", 1),
        ("datagrams", 2),
        ("connections", 1),
    ):
        option = "size" if name == "bulk" else name
        given = getattr(arguments, option)
        value = getattr(base, name) if given is None else given
        if value < minimum:
            what = "samples" if name == "repeat" else "bytes" if name == "bulk" else ""
            return f"--{option}: at least {minimum}{' ' + what if what else ''}, not {value}"
        values[name] = value
    return Sizes(pings=base.pings, **values)


def _netsim_cells(text: str | None) -> list[tuple[int, float]] | str:
    grid = [(buffer, loss) for buffer in netsim.BUFFERS for loss in netsim.LOSSES]
    if text is None:
        return grid
    if text == "none":
        return []
    cells = []
    for item in text.split(","):
        buffer, _, loss = item.partition(":")
        try:
            cell = (int(buffer), float(loss))
        except ValueError:
            return f"--netsim-cells: not BUFFER:LOSS: {item!r}"
        if cell not in grid:
            return f"--netsim-cells: {item!r} is not a cell of the grid"
        cells.append(cell)
    return cells


def _flow_counts(text: str | None) -> list[int] | str:
    if text is None:
        return list(netsim.FLOW_COUNTS)
    if text == "none":
        return []
    counts = []
    for item in text.split(","):
        try:
            count = int(item)
        except ValueError:
            count = -1
        if count not in netsim.FLOW_COUNTS:
            return f"--multiflow: {item!r} is not one of {','.join(map(str, netsim.FLOW_COUNTS))}"
        counts.append(count)
    return counts


def _median_cell(values: list[float]) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.0f}"
    return f"{median:.0f} [{min(values):.0f}-{max(values):.0f}]"


def run_netsim(
    cells: list[tuple[int, float]], transfer: int, seeds: int = 1
) -> tuple[list[netsim.CellResult], str]:
    """The grid's cells (``seeds`` runs each), and their table (pystack's goodput / smoltcp's,
    bytes/s; with several seeds pystack's median [min-max])."""
    results = [
        netsim.run_cell(buffer, loss, transfer, seed=seed)
        for buffer, loss in cells
        for seed in range(seeds)
    ]
    losses = sorted({loss for _buffer, loss in cells})
    buffers = sorted({buffer for buffer, _loss in cells})
    found: dict[tuple[int, float], list[netsim.CellResult]] = {}
    for result in results:
        found.setdefault((result.buffer, result.loss), []).append(result)
    width = 18 if seeds == 1 else 30
    spread = "" if seeds == 1 else f", median [min-max] over {seeds} seed pairs"
    lines = [
        f"netsim window-vs-loss grid, {transfer} bytes per cell: pystack / smoltcp goodput "
        f"(bytes/s, virtual time{spread})",
        f"{'buffer':>7}" + "".join(f"{'loss ' + format(loss, 'g'):>{width}}" for loss in losses),
    ]
    for buffer in buffers:
        cells_text = []
        for loss in losses:
            runs = found.get((buffer, loss))
            if not runs:
                cells_text.append(f"{'':>{width}}")
            else:
                ours = _median_cell([r.goodput for r in runs])
                cells_text.append(f"{f'{ours}/{runs[0].smoltcp:.0f}':>{width}}")
        lines.append(f"{buffer:>7}" + "".join(cells_text))
    if transfer != netsim.TRANSFER:
        lines.append(f"(smoltcp's figures are for {netsim.TRANSFER} bytes per cell)")
    return results, "\n".join(lines)


def netsim_document(results: list[netsim.CellResult], transfer: int, seeds: int) -> dict[str, Any]:
    cells = []
    for result in results:
        cells.append(
            {
                **dataclasses.asdict(result),
                "seeds": list(result.seeds),
                "ratio": result.goodput / result.smoltcp if result.smoltcp else None,
            }
        )
    return {
        "scenario": "smoltcp tests/netsim.rs netsim: 1 flow B->A, Ethernet MTU 1500, 50 ms each "
        "way, unlimited bottleneck, Bernoulli loss both ways",
        "transfer": transfer,
        "comparable": transfer == netsim.TRANSFER,
        "seeds": {
            "pairs": [
                [netsim.SEED_A_TO_B + 2 * k, netsim.SEED_B_TO_A + 2 * k] for k in range(seeds)
            ],
            "rng": "random.Random",
        },
        "settings": SETTINGS,
        "cells": cells,
    }


SETTINGS = (
    "pystack defaults (NewReno, SACK with RACK-TLP, PRR and D-SACK, timestamps so 1448-byte "
    f"payloads, delayed ACK 40 ms, min RTO 1 s) but {netsim.RETRIES} retransmissions before giving up (smoltcp: no limit)"
)


def run_multiflow(counts: list[int], transfer: int) -> tuple[list[netsim.MultiflowResult], str]:
    results = [netsim.run_multiflow(count, transfer) for count in counts]
    lines = [
        f"netsim multiflow (shared 25 MB/s bottleneck, 64 KiB drop-tail queue), {transfer} bytes "
        "per flow: pystack / smoltcp (throughput in bytes/s of virtual time)",
        f"{'flows':>5}{'agg_thru':>22}{'min_thru':>20}{'max_thru':>20}{'fairness':>16}"
        f"{'drops':>16}{'of ceiling':>12}",
    ]
    for r in results:
        s = r.smoltcp or (0.0, 0.0, 0.0, 0.0, 0.0)
        lines.append(
            f"{r.flows:>5}{f'{r.agg_thru:.0f}/{s[0]:.0f}':>22}{f'{r.min_thru:.0f}/{s[1]:.0f}':>20}"
            f"{f'{r.max_thru:.0f}/{s[2]:.0f}':>20}{f'{r.fairness:.4f}/{s[3]:.4f}':>16}"
            f"{f'{r.drops:.4f}/{s[4]:.4f}':>16}{r.agg_thru / r.ceiling:>12.1%}"
        )
    if transfer != netsim.MULTIFLOW_TRANSFER:
        lines.append(f"(smoltcp's figures are for {netsim.MULTIFLOW_TRANSFER} bytes per flow)")
    return results, "\n".join(lines)


def multiflow_document(results: list[netsim.MultiflowResult], transfer: int) -> dict[str, Any]:
    names = ("agg_thru", "min_thru", "max_thru", "fairness", "drops")
    return {
        "scenario": "smoltcp tests/netsim.rs netsim_multiflow: n flows B->A sharing one "
        f"{netsim.MULTIFLOW_RATE} B/s bottleneck per direction, {netsim.MULTIFLOW_QUEUE}-byte "
        f"drop-tail queues, {netsim.MULTIFLOW_BUFFER}-byte buffers, no loss",
        "transfer": transfer,
        "comparable": transfer == netsim.MULTIFLOW_TRANSFER,
        "settings": SETTINGS,
        "runs": [
            {
                **dataclasses.asdict(r),
                "received": list(r.received),
                "of_ceiling": r.agg_thru / r.ceiling,
                "smoltcp": dict(zip(names, r.smoltcp, strict=True)) if r.smoltcp else None,
            }
            for r in results
        ],
    }


def summary(samples: list[float], unit: str) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
        "unit": unit,
    }


def ratios(rows: dict[str, Row]) -> dict[str, dict[str, dict[str, float]]]:
    """Each row's median over the kernel's, over the raw-TUN ceiling of its frame kind, and
    (the lossy row) over the same row without loss."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for key, row in rows.items():
        references = {"kernel": rows[KERNEL_REFERENCE]}
        if key in RAW_REFERENCE:
            references["raw_tun"] = rows[RAW_REFERENCE[key]]
        if key in LOSS_REFERENCE:
            references["loss_free"] = rows[LOSS_REFERENCE[key]]
        result[key] = {}
        for metric, samples in row.items():
            result[key][metric] = {
                name: statistics.median(samples) / statistics.median(reference[metric])
                for name, reference in references.items()
                if metric in reference and statistics.median(reference[metric])
            }
    return result


def _cell(samples: list[float]) -> str:
    median, low, high = statistics.median(samples), min(samples), max(samples)
    digits = 0 if median >= 100 else 1
    return f"{median:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def table(rows: dict[str, Row], result_ratios: dict[str, dict[str, dict[str, float]]]) -> str:
    """One block per row: a line per figure, median [min-max] and its ratios."""
    lines = []
    for key, label in ROWS:
        lines.append(label)
        for metric, metric_label, unit in METRICS:
            samples = rows[key].get(metric)
            if not samples:
                continue
            found = result_ratios[key].get(metric, {})
            names = ("kernel", "raw_tun", "loss_free")
            pair = "  ".join(f"{found[n]:.2f}x {n}" for n in names if n in found)
            if key == KERNEL_REFERENCE:
                pair = ""
            lines.append(f"  {metric_label + ' ' + unit:<40}{_cell(samples):>34}  {pair}")
    lines.append("(ratios: time ratios for RR p50/p99 and ping, lower is faster)")
    return "\n".join(lines)


def memory_table(memory: Row, count: int) -> str:
    lines = [f"{count} idle established connections to pystack (accepted and held on port 9):"]
    for metric, label, unit in MEMORY_METRICS:
        lines.append(f"  {label + ' ' + unit:<40}{_cell(memory[metric]):>34}")
    return "\n".join(lines)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every ``with``: namespaces and devices are removed


def run(arguments: argparse.Namespace) -> int:
    """``pystack bench``: 0 measured, 1 a measurement failed, 2 bad options or no root."""
    sizes = _sizes(arguments)
    if isinstance(sizes, str):
        return _fail(sizes, 2)
    cells = _netsim_cells(arguments.netsim_cells)
    if isinstance(cells, str):
        return _fail(cells, 2)
    counts = _flow_counts(arguments.multiflow)
    if isinstance(counts, str):
        return _fail(counts, 2)
    if not 1 <= arguments.netsim_seeds <= 100:
        return _fail(f"--netsim-seeds: 1..100, not {arguments.netsim_seeds}", 2)
    default_bytes = QUICK_NETSIM_BYTES if arguments.quick else netsim.TRANSFER
    transfer = default_bytes if arguments.netsim_bytes is None else arguments.netsim_bytes
    if transfer < 1000:
        return _fail(f"--netsim-bytes: at least 1000 bytes, not {transfer}", 2)
    default_flow = QUICK_MULTIFLOW_BYTES if arguments.quick else netsim.MULTIFLOW_TRANSFER
    flow_bytes = default_flow if arguments.multiflow_bytes is None else arguments.multiflow_bytes
    if flow_bytes < 1000:
        return _fail(f"--multiflow-bytes: at least 1000 bytes, not {flow_bytes}", 2)
    if not arguments.netsim_only:
        reason = netns.require_root()
        if reason is not None:
            return _fail(f"{reason}; run as root, or with --netsim-only (no root needed)", 2)
    document: dict[str, Any] = {}
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if not arguments.netsim_only:
            _kernel_part(arguments, sizes, document)
        if not arguments.no_netsim:
            document["netsim"] = _netsim_part(cells, transfer, arguments.netsim_seeds, counts,
                                              flow_bytes)  # fmt: skip
    except BenchError as error:
        return _fail(str(error), 1)
    except netsim.NetsimStuck as error:
        return _fail(f"netsim: {error}", 1)
    except KeyboardInterrupt:
        return _fail("interrupted (namespaces removed)", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if arguments.json:
        try:
            Path(arguments.json).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        except (OSError, ValueError) as error:
            return _fail(f"--json {arguments.json}: {error}", 1)
    return 0


def _netsim_part(
    cells: list[tuple[int, float]], transfer: int, seeds: int, counts: list[int], flow_bytes: int
) -> dict[str, Any]:
    part: dict[str, Any] = {"grid": None, "multiflow": None}
    if cells:
        runs = len(cells) * seeds
        print(f"measuring: netsim grid ({runs} run{'' if runs == 1 else 's'})", flush=True)
        results, text = run_netsim(cells, transfer, seeds)
        print()
        print(text)
        part["grid"] = netsim_document(results, transfer, seeds)
    if counts:
        print(f"measuring: netsim multiflow ({','.join(map(str, counts))} flows)", flush=True)
        flows, text = run_multiflow(counts, flow_bytes)
        print()
        print(text)
        part["multiflow"] = multiflow_document(flows, flow_bytes)
    return part


def _fail(message: str, status: int) -> int:
    print(f"pystack bench: {message}", file=sys.stderr)
    return status


def _kernel_part(arguments: argparse.Namespace, sizes: Sizes, document: dict[str, Any]) -> None:
    started = time.monotonic()
    codec = codec_rates(2000 if arguments.quick else 20000)
    rows, memory = measure_all(sizes, lambda label: print(f"measuring: {label}", flush=True))
    result_ratios = ratios(rows)
    print()
    print(table(rows, result_ratios))
    print()
    print(memory_table(memory, sizes.connections))
    print(
        f"\ncodec: TCP 1460-byte segment parse+build "
        f"{codec['tcp_segment_1460_parse_build_us']:.1f} us; "
        f"IPv4 packet parse+build {codec['ipv4_packet_parse_build_us']:.1f} us\n"
    )
    units = {key: unit for key, _label, unit in METRICS}
    document["config"] = {
        "quick": bool(arguments.quick),
        **dataclasses.asdict(sizes),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count() or 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    document["codec"] = codec
    document["rows"] = {
        key: {"label": label, **{m: summary(s, units[m]) for m, s in rows[key].items()}}
        for key, label in ROWS
    }
    document["ratios"] = result_ratios
    memory_units = {key: unit for key, _label, unit in MEMORY_METRICS}
    document["connections"] = {
        "count": sizes.connections,
        **{m: summary(s, memory_units[m]) for m, s in memory.items()},
    }
    assert all(set(rows[key]) == ROW_METRICS[key] for key, _label in ROWS)
