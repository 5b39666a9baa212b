"""``--stats``: a stack's connections, counters and drops as aligned text tables.

``statistics_report(stack)`` is what ``pystack run --stats`` prints at exit and ``pystack up
--stats`` at exit and on SIGUSR1: one row per TCP connection with the main ``tcp_info`` fields,
then every non-zero counter with its meaning (from ``pystack.counters``), every non-zero drop
with its reason, and what an impairment link did. Call it under the stack's lock.
Entry points: ``statistics_report``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pystack.counters import COUNTERS, MALFORMED_REASONS
from pystack.link.impair import ImpairmentLink
from pystack.stack import Stack
from pystack.stats import DropReason
from pystack.wire.addresses import ip_to_str

_CONNECTION_COLUMNS = (
    "state",
    "local",
    "remote",
    "cwnd",
    "ssthresh",
    "srtt ms",
    "rto s",
    "retrans",
    "send buf",
    "recv buf",
    "congestion control",
)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: range = range(3, 10)
) -> list[str]:
    """Columns padded to their widest cell; the columns in ``right`` (numbers) right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _endpoint(pair: object) -> str:
    if isinstance(pair, tuple) and len(pair) == 2:
        return f"{ip_to_str(pair[0])}:{pair[1]}"
    return str(pair)


def connection_rows(stack: Stack) -> list[list[str]]:
    rows = []
    for connection in stack.tcp.connections.values():
        info = connection.tcp_info()
        srtt = info["srtt"]
        rto = info["rto"]
        rows.append(
            [
                str(info["state"]),
                _endpoint(info["local"]),
                _endpoint(info["remote"]),
                str(info["cwnd"]),
                str(info["ssthresh"]),
                f"{srtt * 1000:.1f}" if isinstance(srtt, float) else "-",
                f"{rto:.3f}" if isinstance(rto, float) else "-",
                str(info["retransmits"]),
                str(info["send_buffered"]),
                str(info["receive_buffered"]),
                connection.congestion.summary(),  # the algorithm; CUBIC's region, W_max, K
            ]
        )
    return rows


def statistics_report(stack: Stack, title: str = "") -> str:
    """The connection table, the non-zero counters and drops, and the impairment's work."""
    lines = [f"statistics{f' of {title}' if title else ''}: {stack.describe()}"]
    rows = connection_rows(stack)
    tcp = stack.tcp
    lines.append(
        f"TCP connections ({len(rows)} of {tcp.settings.max_connections}; buffers hold "
        f"{tcp.memory.held} of {tcp.settings.memory_limit} bytes):"
    )
    if rows:
        lines += _table(_CONNECTION_COLUMNS, rows)
    snapshot = stack.statistics()
    counters = snapshot["counters"]
    counted = [(name, value) for name, value in counters.items() if value]
    lines.append(f"counters ({len(counted)} not zero):")
    if counted:
        lines += _table(
            ("counter", "value", "meaning"),
            [[name, str(value), COUNTERS.get(name, "")] for name, value in counted],
            right=range(1, 2),
        )
    drops = [(name, value) for name, value in snapshot["drops"].items() if value]
    lines.append(f"drops ({sum(v for _, v in drops)}):")
    if drops:
        lines += _table(
            ("reason", "packets", "meaning"),
            [[name, str(value), DropReason[name].value] for name, value in drops],
            right=range(1, 2),
        )
    malformed = [(name, value) for name, value in snapshot["malformed"].items() if value]
    if malformed:
        lines.append("malformed packets, by the check that failed:")
        lines += _table(
            ("reason", "packets", "meaning"),
            [[name, str(value), MALFORMED_REASONS.get(name, "")] for name, value in malformed],
            right=range(1, 2),
        )
    link: object = stack.link
    while link is not None:
        if isinstance(link, ImpairmentLink):
            lines.append("impairment:")
            both = link.impairment_statistics
            fields = [
                name
                for name in both.inbound.__dataclass_fields__
                if getattr(both.inbound, name) or getattr(both.outbound, name)
            ]
            lines += _table(
                ("what", "inbound", "outbound"),
                [
                    [name, str(getattr(both.inbound, name)), str(getattr(both.outbound, name))]
                    for name in fields
                ],
                right=range(1, 3),
            )
        link = getattr(link, "inner", None)
    return "\n".join(lines)
