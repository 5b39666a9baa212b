"""Bulk TCP between two pystack stacks over an impaired in-memory link, on a manual clock.

Every transfer is checked byte-exact by SHA-256, and both connections must end CLOSED (through
TIME-WAIT). The impairment wraps one end of the link with unprefixed settings, so loss,
reordering and duplication hit both directions: data and ACKs alike. Runs are bounded in
virtual time, wall time and iterations (``tests.helpers.tcp_transfer.run_apps``); the link has
no delay unless a test adds one, so a clean 10 MB transfer takes no virtual time at all and a
lossy one is paced by the 1 s minimum RTO. Same seeds give the same run, packet for packet.
"""

from __future__ import annotations

import pytest

from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from tests.helpers.tcp_transfer import Network, Pair, StreamApp, pattern, run_apps, sha256

MB = 1_000_000

# Drops that no impairment (without corruption) can excuse: the sender broke a rule.
FORBIDDEN_DROPS = {
    "IPV4_FRAGMENTATION_NEEDED",  # a segment larger than the MTU (options on top of a full MSS)
    "TCP_BEYOND_WINDOW",
    "TCP_DATA_AFTER_CLOSE",
    "TCP_BAD_ACK",
    "TCP_ACK_UNSENT",
    "TCP_BAD_CHECKSUM",
    "TCP_MALFORMED",
    "TCP_CONNECTION_LIMIT",
    "TCP_SYN_QUEUE_FULL",
    "TCP_ACCEPT_QUEUE_FULL",
    "TCP_OUT_OF_ORDER_LIMIT",
}


PROBE_ECHOES = frozenset({"TCP_OUT_OF_WINDOW", "TCP_NO_LISTENER", "TCP_RST_IN_TIME_WAIT"})


def _assert_sane_drops(net: Network, clean: bool) -> None:
    probes = sum(_counter(stack, "tcp.tlp_probes") for stack in (net.a, net.b))
    for stack in (net.a, net.b):
        drops = stack.statistics()["drops"]
        if clean:
            # The drops a clean link allows, at most one per needless tail loss probe on each
            # side: its copy is old on arrival (and D-SACKed); or it finds the peer closed
            # meanwhile (no connection: answered with RST), and our TIME-WAIT ignores that RST
            # (RFC 1337).
            assert not set(drops) - PROBE_ECHOES, drops
            assert sum(drops.values()) <= probes, (drops, probes)
        else:
            assert not set(drops) & FORBIDDEN_DROPS, drops


def _counter(stack: object, name: str) -> int:
    value = stack.statistics()["counters"].get(name, 0)  # type: ignore[attr-defined]
    assert isinstance(value, int)
    return value


def _assert_nothing_lost(net: Network) -> None:
    """A clean link: no RTO, nothing RACK deemed lost, no probe that repaired a loss. Tail loss
    probes may still go where ACKs lag two round trips behind (here: the queue behind 100
    windows); they are the only retransmissions, and each comes back D-SACKed."""
    for stack in (net.a, net.b):
        for name in ("tcp.timeouts", "tcp.rack_lost_segments", "tcp.tlp_repairs"):
            assert _counter(stack, name) == 0, name
        assert _counter(stack, "tcp.retransmits") <= _counter(stack, "tcp.tlp_probes")
        assert _counter(stack, "tcp.undos") == 0  # no reduction happened to undo


def _assert_closed(net: Network, *connections: TCPConnection) -> None:
    assert net.run_until_closed(connections, timeout=1000.0), [c.state for c in connections]
    for connection in connections:
        assert connection.error is None, (connection.error, connection.tcp_info()["transitions"])


def _one_way(net: Network, size: int, timeout: float) -> tuple[Pair, StreamApp, StreamApp]:
    [pair] = net.connect_pairs(1)
    data = pattern(size, "one-way")
    sender, receiver = StreamApp(pair.client, data), StreamApp(pair.server)
    result = run_apps(net.sim, [sender, receiver], timeout=timeout)
    assert result.completed, (result, pair.client.tcp_info(), pair.server.tcp_info())
    assert receiver.received == size
    assert receiver.received_sha256 == sha256(data)
    assert sender.received == 0  # the receiver half-closed at once and sent nothing
    return pair, sender, receiver


@pytest.mark.parametrize(
    ("loss", "timeout"),
    [("0%", 10.0), ("1%", 1000.0), ("5%", 10_000.0), ("20%", 100_000.0)],
)
def test_10mb_one_way_arrives_byte_exact_under_loss(loss: str, timeout: float) -> None:
    net = Network(f"loss={loss},seed=11")
    pair, _, _ = _one_way(net, 10 * MB, timeout)
    retransmits = pair.client.tcp_info()["retransmits"]
    if loss == "0%":
        assert retransmits == 0
    else:
        assert net.impaired is not None
        lost = net.impaired.impairment_statistics
        assert lost.outbound.lost > 0 and lost.inbound.lost > 0  # data and ACKs were lost
        assert isinstance(retransmits, int) and retransmits > 0
    _assert_closed(net, pair.client, pair.server)
    _assert_sane_drops(net, clean=loss == "0%")


@pytest.mark.parametrize(
    "impairment",
    [
        "reorder=3%,dup=3%,seed=5",
        "loss=1%,reorder=2%,dup=2%,delay=2ms,jitter=1ms,seed=7",
    ],
)
def test_10mb_one_way_arrives_byte_exact_reordered_and_duplicated(impairment: str) -> None:
    net = Network(impairment)
    pair, _, _ = _one_way(net, 10 * MB, timeout=10_000.0)
    assert net.impaired is not None
    statistics = net.impaired.impairment_statistics
    for direction in (statistics.outbound, statistics.inbound):
        assert direction.reordered > 0 and direction.duplicated > 0
    counters = net.a.statistics()["counters"]
    assert counters["tcp.out_of_order_segments"] > 0
    _assert_closed(net, pair.client, pair.server)
    _assert_sane_drops(net, clean=False)


@pytest.mark.parametrize("impairment", [None, "loss=2%,reorder=1%,dup=1%,seed=3"])
def test_both_sides_send_10mb_at_once(impairment: str | None) -> None:
    # Data segments in both directions carry the ACKs (and, with loss, the SACK blocks) for
    # the other direction: a full-sized segment must still fit the MTU.
    net = Network(impairment)
    [pair] = net.connect_pairs(1)
    up, down = pattern(10 * MB, "up"), pattern(10 * MB, "down")
    client, server = StreamApp(pair.client, up), StreamApp(pair.server, down)
    result = run_apps(net.sim, [client, server], timeout=10_000.0)
    assert result.completed, result
    assert (server.received, client.received) == (len(up), len(down))
    assert server.received_sha256 == sha256(up)
    assert client.received_sha256 == sha256(down)
    if impairment is None:
        _assert_nothing_lost(net)
    _assert_closed(net, pair.client, pair.server)
    _assert_sane_drops(net, clean=impairment is None)


@pytest.mark.parametrize(
    "impairment",
    # 2 ms each way, so the connections' windows open over many round trips; the queue is
    # deep enough for 200 windows in flight (the default 4096 frames would tail-drop).
    ["delay=2ms,queue=100000", "delay=2ms,queue=100000,loss=1%,seed=9"],
)
def test_100_concurrent_connections_interleaved_all_byte_exact(impairment: str) -> None:
    count = 100
    clean = "loss" not in impairment
    net = Network(impairment)
    pairs = net.connect_pairs(count)
    assert len({pair.client.local_port for pair in pairs}) == count
    apps: list[StreamApp] = []
    expected: list[tuple[str, str]] = []
    for index, pair in enumerate(pairs):
        # Each upload is larger than the 256 KB window, so no connection finishes in one round.
        up = pattern(260_000 + 1_000 * index, f"up/{index}")
        down = pattern(100_000 + 1_000 * index, f"down/{index}")
        expected.append((sha256(up), sha256(down)))
        apps += [StreamApp(pair.client, up), StreamApp(pair.server, down)]
    result = run_apps(net.sim, apps, timeout=10_000.0)
    assert result.completed, result
    for index, (up_hash, down_hash) in enumerate(expected):
        client, server = apps[2 * index], apps[2 * index + 1]
        assert server.received_sha256 == up_hash, f"connection {index}: upload corrupted"
        assert client.received_sha256 == down_hash, f"connection {index}: download corrupted"
    # Interleaved, not one after another: data flowed on every connection before any closed
    # (with loss, a connection whose first segments were lost waits an RTO: most, then).
    first_close = min(app.closed_at for app in apps if app.closed_at is not None)
    early = sum(app.first_data_at is not None and app.first_data_at < first_close for app in apps)
    assert early == len(apps) if clean else early >= 0.9 * len(apps), early
    if clean:
        _assert_nothing_lost(net)
    _assert_closed(net, *(c for pair in pairs for c in (pair.client, pair.server)))
    _assert_sane_drops(net, clean=clean)
    assert net.a.tcp.connections == {} and net.b.tcp.connections == {}


def _seeded_run(seed: int) -> dict[str, object]:
    net = Network(f"loss=5%,reorder=2%,dup=2%,delay=1ms,seed={seed}", trace=True)
    [pair] = net.connect_pairs(1)
    up, down = pattern(500_000, "up"), pattern(300_000, "down")
    client, server = StreamApp(pair.client, up), StreamApp(pair.server, down)
    result = run_apps(net.sim, [client, server], timeout=10_000.0)
    assert result.completed
    assert server.received_sha256 == sha256(up) and client.received_sha256 == sha256(down)
    _assert_closed(net, pair.client, pair.server)
    assert net.impaired is not None
    return {
        "a": net.a.statistics(),
        "b": net.b.statistics(),
        "impairment": net.impaired.impairment_statistics,
        "retransmits": (
            pair.client.tcp_info()["retransmits"],
            pair.server.tcp_info()["retransmits"],
        ),
        "transitions": (
            pair.client.tcp_info()["transitions"],
            pair.server.tcp_info()["transitions"],
        ),
        "end": net.sim.now,
        "trace": net.trace_digest(),
        "trace_lines": len(net.lines),
    }


def test_same_seed_gives_the_identical_run() -> None:
    first, second = _seeded_run(21), _seeded_run(21)
    assert first["trace_lines"] and first["trace_lines"] == second["trace_lines"]
    assert first == second


def test_different_seeds_give_different_runs() -> None:
    first, second = _seeded_run(21), _seeded_run(22)
    assert first["trace"] != second["trace"]
    assert first["impairment"] != second["impairment"]
    assert first["a"] != second["a"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_connection_survives_30_percent_loss_both_ways(seed: int) -> None:
    net = Network(f"loss=30%,seed={seed}")
    [pair] = net.connect_pairs(1)
    up, down = pattern(100_000, f"up/{seed}"), pattern(60_000, f"down/{seed}")
    client, server = StreamApp(pair.client, up), StreamApp(pair.server, down)
    result = run_apps(net.sim, [client, server], timeout=100_000.0)
    assert result.completed, (result, pair.client.tcp_info())
    assert server.received_sha256 == sha256(up) and client.received_sha256 == sha256(down)
    assert net.impaired is not None
    statistics = net.impaired.impairment_statistics
    assert statistics.outbound.lost > 0 and statistics.inbound.lost > 0
    _assert_closed(net, pair.client, pair.server)
    _assert_sane_drops(net, clean=False)


def test_receiver_that_never_reads_stalls_the_sender_without_loss_of_data() -> None:
    # Flow control under loss: the sender fills the peer's buffer, probes the zero window, and
    # resumes when the application reads; nothing is lost or duplicated in between.
    net = Network("loss=2%,seed=4")
    [pair] = net.connect_pairs(1)
    data = pattern(2 * MB, "stall")
    sender = StreamApp(pair.client, data)
    result = run_apps(net.sim, [sender], timeout=30.0)
    assert not result.completed
    assert pair.client.state is TCPState.ESTABLISHED
    buffered = pair.server.readable
    assert 0 < buffered <= pair.server.receive_buffer.capacity
    assert pair.client.snd_wnd < pair.client.mss  # closed, or too small to use
    assert (
        net.a.statistics()["counters"].get("tcp.window_probes", 0)
        + net.b.statistics()["counters"].get("tcp.window_probes", 0)
        > 0
    )
    receiver = StreamApp(pair.server)
    result = run_apps(net.sim, [sender, receiver], timeout=10_000.0)
    assert result.completed, result
    assert receiver.received_sha256 == sha256(data)
    _assert_closed(net, pair.client, pair.server)


def test_lost_window_update_after_a_small_window_stall_is_recovered_by_a_probe() -> None:
    # 256 KB = 181 full segments + 56 bytes: the sender fills the window down to 56 bytes and
    # sender SWS avoidance (RFC 9293 3.8.6.2.1) holds the rest, with nothing in flight. The
    # window update sent when the application reads is lost; only a persist probe (as Linux
    # arms it whenever data waits with nothing in flight) can find out that the window opened.
    net = Network()
    [pair] = net.connect_pairs(1)
    data = pattern(1 * MB, "sws")
    sender = StreamApp(pair.client, data)
    assert not run_apps(net.sim, [sender], timeout=0.5).completed  # the delayed ACK, no probe yet
    client, server = pair.client, pair.server
    assert 0 < client.snd_wnd < client.mss and client.snd_una == client.snd_max
    assert server.readable == server.receive_buffer.capacity - client.snd_wnd
    now = net.sim.now
    first = server.receive(server.readable)
    net.a.flush(now)  # the window update leaves the server ...
    lost = net.b.link.receive(now, 100)  # ... and is lost on the way
    assert len(lost) == 1
    receiver = StreamApp(server, half_close=False)  # its FIN would carry the window too
    receiver._hash.update(first)
    receiver.received = len(first)
    result = run_apps(net.sim, [sender, receiver], timeout=1000.0)
    assert result.completed, (result, client.tcp_info())
    assert receiver.received_sha256 == sha256(data)
    assert net.b.statistics()["counters"]["tcp.window_probes"] >= 1
    _assert_closed(net, client, server)
