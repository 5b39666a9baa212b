"""``pystack bench``: pystack measured beside the Linux kernel and a raw-TUN ceiling, in one run.

Everything runs inside network namespaces the benchmark creates and removes (root only); traffic
never leaves them. The kernel side is always the same small Python client, so the peers differ
only in what serves it (``pystack.bench.kernel``). Each figure is the median of ``--repeat``
samples, shown with its minimum and maximum, and every ratio divides two figures of the same run.
Not a test: the numbers vary by machine and load.
"""

from __future__ import annotations

import argparse
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
from pystack.bench.kernel import METRICS, ROWS, BenchError, Row, Sizes, codec_rates, measure_all

FULL = Sizes(bulk=100_000_000, count=3000, pings=5000, repeat=5)
QUICK = Sizes(bulk=2_000_000, count=200, pings=200, repeat=5)
MIN_REPEAT = 5  # the issue asks for a median over at least 5 samples

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
"ratios": {key: {metric: {"kernel": x, "raw_tun": y}}}}; a figure a peer lacks is absent."""


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
        print(f"pystack bench: {sizes}", file=sys.stderr)
        return 2
    reason = netns.require_root()
    if reason is not None:
        print(f"pystack bench: needs root for its network namespaces ({reason})", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    try:
        codec = codec_rates(2000 if arguments.quick else 20000)
        rows = measure_all(sizes, lambda label: print(f"measuring: {label}", flush=True))
    except BenchError as error:
        print(f"pystack bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pystack bench: interrupted (namespaces removed)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    result_ratios = ratios(rows)
    print()
    print(table(rows, result_ratios))
    print(
        f"\ncodec: TCP 1460-byte segment parse+build "
        f"{codec['tcp_segment_1460_parse_build_us']:.1f} us; "
        f"IPv4 packet parse+build {codec['ipv4_packet_parse_build_us']:.1f} us"
    )
    if arguments.json:
        units = {key: unit for key, _label, unit in METRICS}
        document = {
            "config": {
                "quick": bool(arguments.quick),
                "repeat": sizes.repeat,
                "bulk_bytes": sizes.bulk,
                "rr_count": sizes.count,
                "pings": sizes.pings,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count() or 0,
                "seconds": round(time.monotonic() - started, 1),
            },
            "codec": codec,
            "rows": {
                key: {
                    "label": label,
                    **{m: summary(s, units[m]) for m, s in rows[key].items()},
                }
                for key, label in ROWS
            },
            "ratios": result_ratios,
        }
        try:
            Path(arguments.json).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        except (OSError, ValueError) as error:
            print(f"pystack bench: --json {arguments.json}: {error}", file=sys.stderr)
            return 1
    return 0
