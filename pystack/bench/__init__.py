"""``pystack bench``: pystack measured beside the Linux kernel and a raw-TUN ceiling, in one run.

Everything runs inside network namespaces the benchmark creates and removes (root only); traffic
never leaves them. The kernel side is always the same small Python client, so the peers differ
only in what serves it (``pystack.bench.kernel``). Each figure is the median of ``--repeat``
samples, shown with its minimum and maximum, and every ratio divides two figures of the same run.
It then runs smoltcp's netsim window-vs-loss grid with two pystack stacks on virtual time
(``pystack.bench.netsim``; needs no root). Not a test: the numbers vary by machine and load.
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
import time
from pathlib import Path
from types import FrameType
from typing import Any

from pystack import netns
from pystack.bench import netsim
from pystack.bench.kernel import METRICS, ROWS, BenchError, Row, Sizes, codec_rates, measure_all

FULL = Sizes(bulk=100_000_000, count=3000, pings=5000, repeat=5)
QUICK = Sizes(bulk=2_000_000, count=200, pings=200, repeat=5)
MIN_REPEAT = 5  # the issue asks for a median over at least 5 samples
QUICK_NETSIM_BYTES = 256 * 1024  # per grid cell with --quick (smoltcp's cells move 10 MiB)

ROW_HELP = """rows (every one served to the same kernel-side Python client, in its own namespaces):
  pystack, TUN offloads, mtu 1500   pystack up --serve discard,echo,chargen over TUN with TSO and
                                    checksum offloads (the default of pystack up)
  pystack, plain frames, mtu 1500   the same without offloads: one frame per segment, full checksums
  pystack, TUN offloads, mtu 65535  the same with offloads on a 65535-byte MTU
  usocket script, ...               a MicroPython script under pystack run --link tun serving the
                                    same three services through usocket (what user code gets)
  raw-TUN ceiling, plain, mtu 1500  the least a Python TCP endpoint on TUN must do per segment
                                    (pystack.bench.raw_tcp; receive and request/response only)
  Linux kernel, veth, mtu 1500      a kernel server across a veth pair: the kernel reference
columns: kernel -> peer and peer -> kernel are TCP bulk transfers (MB/s); 1-byte RR is the mean
round trip of one-byte request/response messages on one connection (us; transactions/s is its
inverse); ICMP echo RTT is the mean of a flood ping (us). Each cell is the median of --repeat
samples with [min-max]. Ratios: each row against the kernel row and against the raw-TUN ceiling.
JSON (--json): {"config", "codec", "rows": {key: {metric: {median, min, max, samples, unit}}},
"ratios": {key: {metric: {"kernel": x, "raw_tun": y}}}, "netsim"}; a figure a peer lacks is
absent.

netsim (no root needed): smoltcp's window-vs-loss grid (tests/netsim.rs) on pystack's virtual
time: two pystack stacks over Ethernet, 50 ms each way, Bernoulli loss both ways (seeded
random.Random, not smoltcp's ChaCha20 draws), socket buffers of 128 B to 32 KiB, 10 MiB per cell
(--quick: 256 KiB). Each cell shows pystack's goodput / smoltcp's published one (bytes/s of
virtual time); smoltcp's figures are for 10 MiB, so only a full-size run compares exactly. The
multiflow (shared bottleneck) scenario is not reproduced yet. JSON: "netsim": {"transfer",
"seeds", "settings", "cells": [{buffer, loss, goodput, smoltcp, ratio, ...}]}."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pystack bench`` (its ``--help`` explains every row)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {QUICK.bulk // 1_000_000} MB per bulk transfer, {QUICK.count} round "
        f"trips, {QUICK.pings} pings per sample (still {QUICK.repeat} samples per figure)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help=f"samples per figure, at least {MIN_REPEAT} (default {FULL.repeat})",
    )
    parser.add_argument(
        "--size",
        type=int,
        metavar="BYTES",
        help=f"bytes per bulk transfer (default {FULL.bulk}; --quick {QUICK.bulk})",
    )
    parser.add_argument(
        "--count",
        type=int,
        metavar="N",
        help=f"round trips per request/response sample (default {FULL.count}; "
        f"--quick {QUICK.count})",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--netsim-only",
        action="store_true",
        help="only the netsim grid (virtual time; needs no root)",
    )
    which.add_argument(
        "--no-netsim", action="store_true", help="only the kernel rows, without the netsim grid"
    )
    parser.add_argument(
        "--netsim-bytes",
        type=int,
        metavar="BYTES",
        help=f"bytes per netsim cell (default {netsim.TRANSFER}, smoltcp's; --quick "
        f"{QUICK_NETSIM_BYTES})",
    )
    parser.add_argument(
        "--netsim-cells",
        metavar="LIST",
        help="only these cells, as BUFFER:LOSS[,BUFFER:LOSS...] from the grid "
        "(e.g. 1024:0.01,32768:0.1)",
    )


def _sizes(arguments: argparse.Namespace) -> Sizes | str:
    base = QUICK if arguments.quick else FULL
    repeat = base.repeat if arguments.repeat is None else arguments.repeat
    bulk = base.bulk if arguments.size is None else arguments.size
    count = base.count if arguments.count is None else arguments.count
    if repeat < MIN_REPEAT:
        return f"--repeat: at least {MIN_REPEAT} samples, not {repeat}"
    if bulk < 1000:
        return f"--size: at least 1000 bytes, not {bulk}"
    if count < 1:
        return f"--count: at least 1, not {count}"
    return Sizes(bulk=bulk, count=count, pings=base.pings, repeat=repeat)


def _netsim_cells(text: str | None) -> list[tuple[int, float]] | str:
    grid = [(buffer, loss) for buffer in netsim.BUFFERS for loss in netsim.LOSSES]
    if text is None:
        return grid
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


def run_netsim(
    cells: list[tuple[int, float]], transfer: int
) -> tuple[list[netsim.CellResult], str]:
    """The grid's cells, and their table (pystack's goodput / smoltcp's, bytes/s)."""
    results = [netsim.run_cell(buffer, loss, transfer) for buffer, loss in cells]
    losses = sorted({loss for _buffer, loss in cells})
    buffers = sorted({buffer for buffer, _loss in cells})
    found = {(r.buffer, r.loss): r for r in results}
    lines = [
        f"netsim window-vs-loss grid, {transfer} bytes per cell: pystack / smoltcp goodput "
        "(bytes/s, virtual time)",
        f"{'buffer':>7}" + "".join(f"{'loss ' + format(loss, 'g'):>18}" for loss in losses),
    ]
    for buffer in buffers:
        cells_text = []
        for loss in losses:
            result = found.get((buffer, loss))
            if result is None:
                cells_text.append(f"{'':>18}")
            else:
                cells_text.append(f"{f'{result.goodput:.0f}/{result.smoltcp:.0f}':>18}")
        lines.append(f"{buffer:>7}" + "".join(cells_text))
    if transfer != netsim.TRANSFER:
        lines.append(f"(smoltcp's figures are for {netsim.TRANSFER} bytes per cell)")
    return results, "\n".join(lines)


def netsim_document(results: list[netsim.CellResult], transfer: int) -> dict[str, Any]:
    return {
        "scenario": "smoltcp tests/netsim.rs netsim: 1 flow B->A, Ethernet MTU 1500, 50 ms each "
        "way, unlimited bottleneck, Bernoulli loss both ways",
        "transfer": transfer,
        "comparable": transfer == netsim.TRANSFER,
        "seeds": {
            "a_to_b": netsim.SEED_A_TO_B,
            "b_to_a": netsim.SEED_B_TO_A,
            "rng": "random.Random",
        },
        "settings": "pystack defaults (NewReno, SACK with RACK-TLP, PRR and D-SACK, timestamps, "
        "delayed ACK 40 ms, min RTO 1 s) "
        f"but {netsim.RETRIES} retransmissions before giving up (smoltcp: no limit)",
        "cells": [
            {
                **dataclasses.asdict(result),
                "ratio": result.goodput / result.smoltcp if result.smoltcp else None,
            }
            for result in results
        ],
        "multiflow": None,  # not reproduced yet
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
    """Each row's median over the kernel's and the raw-TUN ceiling's, metric by metric."""
    references = {"kernel": rows["kernel_veth_1500"], "raw_tun": rows["raw_tun_1500"]}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for key, row in rows.items():
        result[key] = {}
        for metric, samples in row.items():
            result[key][metric] = {
                name: statistics.median(samples) / statistics.median(reference[metric])
                for name, reference in references.items()
                if metric in reference
            }
    return result


def _cell(samples: list[float] | None) -> str:
    if not samples:
        return "-"
    median, low, high = statistics.median(samples), min(samples), max(samples)
    digits = 0 if median >= 100 else 1
    return f"{median:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def table(rows: dict[str, Row], result_ratios: dict[str, dict[str, dict[str, float]]]) -> str:
    header = f"{'peer':<39}" + "".join(f"{label + ' ' + unit:>24}" for _key, label, unit in METRICS)
    lines = [header]
    for key, label in ROWS:
        lines.append(
            f"{label:<39}" + "".join(f"{_cell(rows[key].get(m)):>24}" for m, _l, _u in METRICS)
        )
    lines.append("")
    lines.append("ratios of medians (time ratios for RR and ping: lower is faster):")
    for key, label in ROWS:
        if key == "kernel_veth_1500":
            continue
        parts = []
        for metric, metric_label, _unit in METRICS:
            found = result_ratios[key].get(metric, {})
            pair = ", ".join(f"{found[n]:.2f}x {n}" for n in ("kernel", "raw_tun") if n in found)
            if pair:
                parts.append(f"{metric_label} {pair}")
        lines.append(f"  {label}: " + "; ".join(parts))
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
    default_bytes = QUICK_NETSIM_BYTES if arguments.quick else netsim.TRANSFER
    transfer = default_bytes if arguments.netsim_bytes is None else arguments.netsim_bytes
    if transfer < 1000:
        return _fail(f"--netsim-bytes: at least 1000 bytes, not {transfer}", 2)
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
            plural = "" if len(cells) == 1 else "s"
            print(f"measuring: netsim grid ({len(cells)} cell{plural})", flush=True)
            results, text = run_netsim(cells, transfer)
            print()
            print(text)
            document["netsim"] = netsim_document(results, transfer)
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


def _fail(message: str, status: int) -> int:
    print(f"pystack bench: {message}", file=sys.stderr)
    return status


def _kernel_part(arguments: argparse.Namespace, sizes: Sizes, document: dict[str, Any]) -> None:
    started = time.monotonic()
    codec = codec_rates(2000 if arguments.quick else 20000)
    rows = measure_all(sizes, lambda label: print(f"measuring: {label}", flush=True))
    result_ratios = ratios(rows)
    print()
    print(table(rows, result_ratios))
    print(
        f"\ncodec: TCP 1460-byte segment parse+build "
        f"{codec['tcp_segment_1460_parse_build_us']:.1f} us; "
        f"IPv4 packet parse+build {codec['ipv4_packet_parse_build_us']:.1f} us\n"
    )
    units = {key: unit for key, _label, unit in METRICS}
    document["config"] = {
        "quick": bool(arguments.quick),
        "repeat": sizes.repeat,
        "bulk_bytes": sizes.bulk,
        "rr_count": sizes.count,
        "pings": sizes.pings,
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
