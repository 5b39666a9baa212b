"""Persist done right (RFC 1122 4.2.2.17, RFC 9293 3.8.6.1, RFC 5681 2, RFC 6298 5.5).

A receiver that keeps its window closed but answers every probe is probed for ever, on one
timer, with the interval doubling from the RTO up to the maximum RTO (60 s); zero-window ACKs are
not duplicate ACKs, so neither fast retransmit nor the retransmission timer ever fires, and no
probe counts against the 15 data retries. A peer that stops answering is given up after 15
unanswered probes in a row. Handshakes end at 0.1 s with RTO 1 s (``handshakes.py``).
"""

from __future__ import annotations

from pystack.script import ScriptRunner
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from tests.helpers.scripts import run
from tests.helpers.tcp_transfer import Network, StreamApp, pattern, run_apps, sha256
from tests.tcp.transfer.handshakes import PLAIN, step_through

MAX_RTO = TCPSettings().max_rto
HOUR = 3600.0

# 100 bytes out and acknowledged with a closed window at 0.1 s; 3000 more wait. The persist
# timer starts at 0.1 s (nothing in flight), so probe k goes at 0.1 + 1 + 2 + ... (RTO 1 s,
# doubled each time, capped at 60 s).
CLOSED_WINDOW = (
    PLAIN
    + """
    +0 write 100
    +0 > P. 1:101(100) ack 1
    +0.1 < . 1:1(0) ack 101 win 0               # all taken, and the window closed
    +0 write 3000
    """
)
CLOSED_AT = 0.2  # when the lines above leave the clock


def probe_times(until: float, start: float = CLOSED_AT, first: float = 1.0) -> list[float]:
    """When the probes of a persist timer started at ``start`` go, up to ``until``."""
    times, interval, when = [], first, start
    while when + interval <= until:
        when += interval
        times.append(round(when, 6))
        interval = min(2 * interval, MAX_RTO)
    return times


def test_probe_times_follow_rfc_6298_backoff_capped_at_max_rto() -> None:
    # the helper itself: 1, 2, 4, ..., 32, then 60 s gaps
    times = probe_times(400.0)
    gaps = [round(b - a, 6) for a, b in zip([CLOSED_AT, *times], times, strict=False)]
    assert gaps[:8] == [1, 2, 4, 8, 16, 32, 60, 60]


def _no_retransmission_timer(runner: ScriptRunner) -> None:
    connection = runner.result().connection
    assert isinstance(connection, TCPConnection)
    assert connection.retransmit_deadline is None, connection.tcp_info()["timers"]
    assert connection.retransmissions == 0


def test_a_zero_window_held_for_an_hour_is_probed_and_the_transfer_completes() -> None:
    lines = []
    for when in probe_times(HOUR):
        lines.append(f"{when} > . 101:102(1) ack 1          # probe")
        lines.append("+0.05 < . 1:1(0) ack 101 win 0          # still closed, but here")
    script = (
        CLOSED_WINDOW
        + "\n".join(lines)
        + f"""
        +0 expect state ESTABLISHED
        +0 expect counter tcp.window_probes {len(lines) // 2}
        +0 expect counter tcp.timeouts 0
        +0 expect counter tcp.duplicate_acks 0
        +0 expect counter tcp.fast_retransmits 0
        +0 expect counter tcp.retransmits 0
        {HOUR + 1} < . 1:1(0) ack 101 win 65535     # the window opens after an hour
        +0 > . 101:1561(1460) ack 1                 # from the left edge: the probed octet too
        +0 > . 1561:3021(1460) ack 1
        +0.1 < . 1:1(0) ack 3021 win 65535
        +0 > P. 3021:3101(80) ack 1
        +0.1 < . 1:1(0) ack 3101 win 65535
        +0 expect info unacked 0
        +0 expect error none
        end strict 5
        """
    )
    result = step_through(script, {"# probe": _no_retransmission_timer})
    assert len(lines) // 2 > 60  # an hour at 60 s per probe, after the first minutes
    connection = result.connection
    assert isinstance(connection, TCPConnection)
    assert connection.state is TCPState.ESTABLISHED and connection.error is None


def test_zero_window_acks_are_not_duplicate_acks() -> None:
    # Five identical zero-window ACKs for each probe: with the probe's octet outstanding they
    # would look like duplicates (same ACK, same window); they must not start fast retransmit.
    answers = "\n".join(["+0.01 < . 1:1(0) ack 101 win 0"] * 5)
    first, second, third = probe_times(10.0)[:3]
    run(
        CLOSED_WINDOW
        + f"""
        {first} > . 101:102(1) ack 1
        {answers}
        {second} > . 101:102(1) ack 1             # the next probe on time, nothing between
        {answers}
        {third} > . 101:102(1) ack 1
        +0 expect counter tcp.duplicate_acks 0
        +0 expect counter tcp.fast_retransmits 0
        +0 expect counter tcp.retransmits 0
        +0 expect counter tcp.timeouts 0
        +0.01 < . 1:1(0) ack 101 win 65535
        +0 > . 101:1561(1460) ack 1
        +0 > . 1561:3021(1460) ack 1
        """
    )


def test_probes_whose_octet_is_taken_go_on_without_end() -> None:
    # The receiver takes each probe's octet (an ACK of the probe's sequence space) and closes
    # again. Progress sets the backoff back, so after the first probe at 1 s they come every
    # 2 s; none counts toward any limit (2000 s is longer than 15 RTOs would last).
    times = [round(CLOSED_AT + 1.0 + 2.0 * k, 6) for k in range(1000)]
    lines = []
    for number, when in enumerate(times, 1):
        lines.append(f"{when} > . {100 + number}:{101 + number}(1) ack 1")
        lines.append(f"+0.05 < . 1:1(0) ack {101 + number} win 0")
    run(
        CLOSED_WINDOW
        + "\n".join(lines)
        + f"""
        +0 expect state ESTABLISHED
        +0 expect info unacked 0
        +0 expect counter tcp.window_probes {len(times)}
        +0 expect counter tcp.timeouts 0
        """
    )


def test_a_peer_that_stops_answering_probes_is_given_up() -> None:
    # Three probes answered, then silence: 15 more probes (Linux's tcp_retries2 for probes),
    # and at the next expiry the connection is reset with ETIMEDOUT.
    times = probe_times(2000.0)
    answered, silent = times[:3], times[3:18]
    lines = []
    for when in answered:
        lines.append(f"{when} > . 101:102(1) ack 1")
        lines.append("+0.05 < . 1:1(0) ack 101 win 0")
    lines += [f"{when} > . 101:102(1) ack 1" for when in silent]
    give_up = times[18]
    run(
        CLOSED_WINDOW
        + "\n".join(lines)
        + f"""
        {give_up} > R. 101:101(0) ack 1 win 0
        +0 expect state CLOSED
        +0 expect error ETIMEDOUT
        +0 expect counter tcp.persist_timeouts 1
        +0 expect counter tcp.window_probes 18
        +0 expect counter tcp.timeouts 0
        +0 write 1 = ETIMEDOUT
        end strict 100
        """
    )
    assert round(give_up - silent[0], 6) == 16 + 32 + 13 * MAX_RTO  # 15 gaps after the first


def test_a_window_shrunk_under_data_in_flight_turns_rtos_into_probes() -> None:
    # The peer takes the first segment and closes its window with the second in flight
    # (shrinking, RFC 1122 4.2.2.16). The RTO goes back to SND.UNA and probes; from then on the
    # persist timer alone drives the probes, answered for longer than 15 RTOs would last.
    first_probe = 0.3 + 1.0  # the RTO, restarted by the ACK at 0.3
    times = probe_times(1500.0, start=first_probe, first=2.0)
    lines = [f"{first_probe} > . 1461:1462(1) ack 1          # probe"]
    lines.append("+0.05 < . 1:1(0) ack 1461 win 0")
    for when in times:
        lines.append(f"{when} > . 1461:1462(1) ack 1          # probe")
        lines.append("+0.05 < . 1:1(0) ack 1461 win 0")
    step_through(
        PLAIN
        + """
        +0.1 write 2920
        +0 > . 1:1461(1460) ack 1
        +0 > P. 1461:2921(1460) ack 1
        +0.1 < . 1:1(0) ack 1461 win 0              # the window shrank under 1460 bytes
        """
        + "\n".join(lines)
        + f"""
        +0 expect state ESTABLISHED
        +0 expect counter tcp.timeouts 1
        +0 expect counter tcp.window_probes {len(lines) // 2}
        +1 < . 1:1(0) ack 1461 win 65535
        +0 > P. 1461:2921(1460) ack 1
        +0.1 < . 1:1(0) ack 2921 win 65535
        +0 expect info unacked 0
        +0 expect error none
        """,
        {"# probe": _no_retransmission_timer},
    )


# -- two pystack stacks ------------------------------------------------------------------------
def test_two_stacks_a_receiver_that_stops_reading_for_an_hour() -> None:
    # The 670 s case: b sends 1 MB to a, whose application reads nothing for an hour. Before,
    # b's probes drew duplicate ACKs, fast retransmit and RTOs, and b gave up with "retransmission
    # limit (15) reached" after about 670 s.
    net = Network()
    [pair] = net.connect_pairs(1)
    data = pattern(1_000_000, "persist")
    sender = StreamApp(pair.client, data)
    paused = run_apps(net.sim, [sender], timeout=HOUR)  # a's application does not read
    assert not paused.completed
    client, server = pair.client, pair.server
    assert client.state is TCPState.ESTABLISHED and client.error is None, client.tcp_info()
    assert server.receive_buffer.room == 0 and client.snd_wnd == 0
    assert client.retransmit_deadline is None and client.persist_deadline is not None
    counters = net.b.counters.counters
    assert counters["tcp.timeouts"] == 0 and counters["tcp.fast_retransmits"] == 0
    assert counters["tcp.duplicate_acks"] == 0
    probes = counters["tcp.window_probes"]
    assert len(probe_times(HOUR - 70.0)) <= probes <= len(probe_times(HOUR)) + 1, probes
    receiver = StreamApp(server)
    result = run_apps(net.sim, [sender, receiver], timeout=600.0)
    assert result.completed, (result, client.tcp_info(), server.tcp_info())
    assert receiver.received == len(data)
    assert receiver.received_sha256 == sha256(data)
    assert net.run_until_closed([client, server], timeout=1000.0)
    assert client.error is None and server.error is None
