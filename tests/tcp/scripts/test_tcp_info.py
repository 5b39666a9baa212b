"""``tcp_info()``: every field present, the values consistent with what went over the wire, and
the transitions record complete and in order."""

from __future__ import annotations

import pytest

from pystack.tcp.seq import seq_add
from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN, connection_of

FIELDS = {
    "state", "local", "remote", "iss", "irs",
    "snd_una", "snd_nxt", "snd_max", "snd_wnd", "snd_wscale",
    "rcv_nxt", "rcv_wnd", "rcv_wscale", "mss", "peer_mss",
    "cwnd", "ssthresh", "congestion_control", "congestion_state", "in_recovery", "duplicate_acks",
    "srtt", "rttvar", "rto", "retransmits", "consecutive_timeouts",
    "timestamps", "sack", "sack_scoreboard", "out_of_order",
    "send_buffered", "receive_buffered", "unacked", "timers",
    "error", "soft_error", "transitions",
}  # fmt: skip
TIMERS = {
    "retransmit",
    "persist",
    "delayed_ack",
    "keepalive",
    "time_wait",
    "fin_wait_2",
    "rack_reordering",
    "tail_loss_probe",
}

# Active open with SACK and window scaling (no timestamps, so RTT comes from the SYN's timing):
# RTT 0.1 s. Two segments out; the peer SACKs the second and sends data out of order.
SACKED = """
    0 connect 10.0.0.1:9000
    +0 > S 0:0(0) <mss 1460,sackOK,TS val * ecr 0,nop,wscale 3>
    +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 2>
    +0 > . 1:1(0) ack 1
    +0 write 2920
    +0 > . 1:1461(1460) ack 1
    +0 > P. 1461:2921(1460) ack 1
    +0.1 < . 1:1(0) ack 1 win 16384 <nop,nop,sack 1461:2921>
    +0 < P. 101:201(100) ack 1 win 16384          # a hole of 100 bytes before it
    +0 > . 2921:2921(0) ack 1 <nop,nop,sack 101:201>
"""


def test_tcp_info_has_every_field() -> None:
    info = connection_of(run(PASSIVE_OPEN)).tcp_info()
    assert set(info) == FIELDS
    timers = info["timers"]
    assert isinstance(timers, dict) and set(timers) == TIMERS


def test_tcp_info_sequence_variables_and_windows_consistent() -> None:
    connection = connection_of(run(SACKED))
    info = connection.tcp_info()
    iss, irs = connection.iss, connection.irs
    assert info["state"] == "ESTABLISHED"
    assert info["iss"] == iss and info["irs"] == irs
    assert info["snd_una"] == seq_add(iss, 1)
    assert info["snd_nxt"] == info["snd_max"] == seq_add(iss, 2921)
    assert info["unacked"] == 2920 and info["send_buffered"] == 2920
    assert info["rcv_nxt"] == seq_add(irs, 1)  # the hole keeps RCV.NXT where it was
    assert info["receive_buffered"] == 0
    assert info["snd_wscale"] == 2 and info["rcv_wscale"] == 3
    assert info["snd_wnd"] == 16384 << 2  # the peer's latest window, scaled
    assert info["rcv_wnd"] == 256 * 1024  # the whole buffer: held out-of-order data is not counted
    assert info["mss"] == 1460 and info["peer_mss"] == 1460
    assert info["sack"] is True and info["timestamps"] is False
    assert info["local"] == (connection.local_address, connection.local_port)
    assert info["remote"] == (connection.remote_address, 9000)
    assert info["error"] is None and info["soft_error"] is None


def test_tcp_info_sack_scoreboard_and_out_of_order_ranges() -> None:
    connection = connection_of(run(SACKED))
    info = connection.tcp_info()
    iss, irs = connection.iss, connection.irs
    assert info["sack_scoreboard"] == [(seq_add(iss, 1461), seq_add(iss, 2921))]
    assert info["out_of_order"] == [(seq_add(irs, 101), seq_add(irs, 201))]


def test_tcp_info_rtt_and_congestion_after_the_handshake_sample() -> None:
    info = connection_of(run(SACKED)).tcp_info()
    # RFC 6298 (2.2): SRTT = R, RTTVAR = R/2; RTO = max(1 s, SRTT + 4 RTTVAR).
    assert info["srtt"] == pytest.approx(0.1)
    assert info["rttvar"] == pytest.approx(0.05)
    assert info["rto"] == pytest.approx(1.0)
    assert info["cwnd"] == 10 * 1460  # RFC 6928 initial window
    ssthresh = info["ssthresh"]
    assert isinstance(ssthresh, int) and ssthresh >= 65535
    assert info["congestion_control"] == "newreno"
    assert info["in_recovery"] is False and info["duplicate_acks"] == 0
    assert info["retransmits"] == 0 and info["consecutive_timeouts"] == 0


def test_tcp_info_timers_are_the_pending_deadlines() -> None:
    timers = connection_of(run(SACKED)).tcp_info()["timers"]
    assert timers == {
        "retransmit": pytest.approx(1.1),  # data first sent at 0.1, RTO 1 s
        "persist": None,
        "delayed_ack": None,  # the out-of-order segment was ACKed at once
        "keepalive": None,
        "time_wait": None,
        "fin_wait_2": None,
        # RFC 8985: 1:1461 (sent at 0.1) is lost unless delivered by 0.1 + RACK.rtt 0.1 +
        # reo_wnd (min_RTT / 4 = 0.025); the PTO (2 * SRTT) was armed by the last new segment.
        "rack_reordering": pytest.approx(0.225),
        "tail_loss_probe": pytest.approx(0.3),
    }
    result = run(PASSIVE_OPEN + "+0.1 < P. 1:11(10) ack 1 win 65535\n")
    timers = connection_of(result).tcp_info()["timers"]
    assert isinstance(timers, dict) and timers["delayed_ack"] == pytest.approx(0.15)


def test_tcp_info_after_a_retransmission_timeout() -> None:
    connection = connection_of(
        run(
            SACKED
            + """
            0.2 expect info retransmits 0
            1.1 > . 1:1461(1460) ack 1 <>     # RTO: the first segment (full: no room for SACK)
            +0 expect info retransmits 1
            +0 expect info consecutive_timeouts 1
            +0 expect info cwnd 1460                      # RFC 5681 3.1: one segment
            +0 expect info ssthresh 2920                  # max(FlightSize / 2, 2 * SMSS)
            +0 expect info rto 2.0                        # RFC 6298 (5.5): backed off
            +0 expect info sack_scoreboard []             # RFC 2018 8: SACK marks forgotten
            """,
            tcp_settings=TCPSettings(rack_tlp=False),  # (RACK would resend it at 0.225)
        )
    )
    timers = connection.tcp_info()["timers"]
    assert isinstance(timers, dict) and timers["retransmit"] == pytest.approx(3.1)


def test_tcp_info_transitions_every_change_with_its_cause_in_order() -> None:
    result = run(
        """
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +1 > S 0:0(0) <...>
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0.5 close
        +0 > F. 1:1(0) ack 1
        +0.1 < . 1:1(0) ack 2 win 65535
        +0.1 < F. 1:1(0) ack 2 win 65535
        +0 > . 2:2(0) ack 2
        +20 expect state CLOSED
        """,
        tcp_settings=TCPSettings(msl=10.0),
    )
    assert connection_of(result).tcp_info()["transitions"] == [
        "0.000000 CLOSED -> SYN-SENT (active open)",
        "1.100000 SYN-SENT -> ESTABLISHED (SYN-ACK received)",
        "1.600000 ESTABLISHED -> FIN-WAIT-1 (close)",
        "1.700000 FIN-WAIT-1 -> FIN-WAIT-2 (our FIN acknowledged)",
        "1.800000 FIN-WAIT-2 -> TIME-WAIT (FIN received in FIN-WAIT-2)",
        "21.800000 TIME-WAIT -> CLOSED (TIME-WAIT expired (2*MSL))",
    ]


def test_tcp_info_transitions_bounded_by_transitions_kept() -> None:
    connection = connection_of(
        run(
            PASSIVE_OPEN
            + """
            +0 < F. 1:1(0) ack 1 win 65535
            +0 > . 1:1(0) ack 2
            +0 close
            +0 > F. 1:1(0) ack 2
            +0.01 < . 2:2(0) ack 2 win 65535
            """,
            tcp_settings=TCPSettings(transitions_kept=2),
        )
    )
    transitions = connection.tcp_info()["transitions"]
    assert transitions == [
        "0.010000 CLOSE-WAIT -> LAST-ACK (close)",
        "0.020000 LAST-ACK -> CLOSED (our FIN acknowledged in LAST-ACK)",
    ]
