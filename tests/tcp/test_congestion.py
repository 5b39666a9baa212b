"""RFC 5681 / RFC 3465 / RFC 6582 window arithmetic (pystack.tcp.congestion)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.tcp.congestion import (
    INITIAL_SSTHRESH,
    CongestionControl,
    NewReno,
    algorithms,
    create,
    initial_window,
)

MSS = 1460


def test_initial_window_is_ten_segments_of_1460() -> None:
    # RFC 6928 2: min(10*MSS, max(2*MSS, 14600)).
    assert initial_window(1460, 10) == 14600
    assert initial_window(536, 10) == 5360
    assert initial_window(9000, 10) == 18000  # max(2*MSS, 14600) wins for jumbo MSS


def test_initial_window_of_up_to_four_segments_follows_rfc_3390() -> None:
    # RFC 3390: min(4*MSS, max(2*MSS, 4380)).
    assert initial_window(1460, 4) == 4380
    assert initial_window(536, 4) == 2144
    assert initial_window(4000, 4) == 8000
    assert initial_window(1460, 2) == 2920
    assert initial_window(1460, 1) == 1460


def test_new_connection_starts_with_iw_and_high_ssthresh() -> None:
    reno = NewReno(MSS)
    assert reno.cwnd == 14600
    assert reno.ssthresh == INITIAL_SSTHRESH == 2**31
    assert reno.name == "newreno"


def test_set_mss_before_any_ack_recomputes_the_initial_window() -> None:
    reno = NewReno(536)
    reno.set_mss(1460)
    assert reno.mss == 1460 and reno.cwnd == 14600


def test_set_mss_after_growth_keeps_cwnd() -> None:
    reno = NewReno(MSS)
    reno.on_ack(MSS, 0.0, None)
    reno.set_mss(1000)
    assert reno.cwnd == 14600 + MSS


def test_slow_start_grows_by_bytes_acked() -> None:
    reno = NewReno(MSS)
    reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 14600 + MSS
    reno.on_ack(100, 0.0, None)
    assert reno.cwnd == 14600 + MSS + 100


def test_slow_start_growth_per_ack_is_limited_to_two_smss() -> None:
    # RFC 3465 2.2: L = 2*SMSS.
    reno = NewReno(MSS)
    reno.on_ack(10 * MSS, 0.0, None)
    assert reno.cwnd == 14600 + 2 * MSS


def test_slow_start_doubles_cwnd_per_round_trip_with_delayed_acks() -> None:
    reno = NewReno(MSS)
    window = reno.cwnd
    for _ in range(window // (2 * MSS)):
        reno.on_ack(2 * MSS, 0.0, None)  # one delayed ACK per two segments
    assert reno.cwnd == 2 * window


def test_ack_of_nothing_changes_nothing() -> None:
    reno = NewReno(MSS)
    reno.on_ack(0, 0.0, None)
    assert reno.cwnd == 14600


def test_congestion_avoidance_adds_one_smss_per_cwnd_of_bytes_acknowledged() -> None:
    # RFC 5681 3.1 (its recommended byte counting, RFC 3465 2.1) once cwnd >= ssthresh.
    reno = NewReno(MSS)
    reno.ssthresh = reno.cwnd = 10 * MSS
    for _ in range(9):
        reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 10 * MSS
    reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 11 * MSS


def test_congestion_avoidance_grows_about_one_smss_per_round_trip() -> None:
    reno = NewReno(MSS)
    reno.ssthresh = reno.cwnd = 10 * MSS
    for _ in range(10):
        reno.on_ack(MSS, 0.0, None)
    # Each ACK adds a little less as cwnd grows: just under one SMSS per window of ACKs.
    assert 10 * MSS + 0.9 * MSS <= reno.cwnd <= 11 * MSS


def test_congestion_avoidance_carries_the_bytes_beyond_a_window_over() -> None:
    # Delayed ACKs acknowledge two segments each: the count is of bytes, not of ACKs.
    reno = NewReno(MSS)
    reno.ssthresh = reno.cwnd = 10 * MSS
    reno.on_ack(6 * MSS, 0.0, None)
    reno.on_ack(6 * MSS, 0.0, None)
    assert reno.cwnd == 11 * MSS  # 12 MSS acked: one step, 2 MSS carried over
    reno.on_ack(8 * MSS, 0.0, None)
    assert reno.cwnd == 11 * MSS
    reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 12 * MSS


def test_a_timeout_forgets_the_bytes_counted() -> None:
    reno = NewReno(MSS)
    reno.ssthresh = reno.cwnd = 10 * MSS
    reno.on_ack(9 * MSS, 0.0, None)
    reno.on_timeout(4 * MSS)  # RFC 3465 2.1: bytes_acked = 0 on an RTO
    reno.cwnd = reno.ssthresh = 2 * MSS
    reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 2 * MSS


def test_enter_recovery_halves_flight_size_and_inflates_by_three_segments() -> None:
    # RFC 5681 3.2 steps 2-3 / RFC 6582 3.2 step 2.
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    assert reno.ssthresh == 10 * MSS
    assert reno.cwnd == 13 * MSS


def test_enter_recovery_with_sack_sets_cwnd_to_ssthresh() -> None:
    # RFC 6675 5 (4.2).
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=True)
    assert reno.ssthresh == reno.cwnd == 10 * MSS


def test_ssthresh_is_at_least_two_segments() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(MSS, sack=False)
    assert reno.ssthresh == 2 * MSS and reno.cwnd == 5 * MSS


def test_duplicate_ack_in_recovery_inflates_by_smss() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    reno.on_duplicate_ack_in_recovery()
    assert reno.cwnd == 14 * MSS


def test_duplicate_ack_in_sack_recovery_does_not_inflate() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=True)
    reno.on_duplicate_ack_in_recovery()
    assert reno.cwnd == 10 * MSS


def test_partial_ack_deflates_by_acked_and_adds_back_one_smss() -> None:
    # RFC 6582 3.2 step 5: acked >= SMSS -> cwnd - acked + SMSS.
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)  # cwnd 13 MSS
    reno.on_partial_ack(3 * MSS)
    assert reno.cwnd == 11 * MSS


def test_partial_ack_below_one_smss_only_deflates() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    reno.on_partial_ack(100)
    assert reno.cwnd == 13 * MSS - 100


def test_partial_ack_never_deflates_below_one_segment() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(4 * MSS, sack=False)  # cwnd 5 MSS
    reno.on_partial_ack(20 * MSS)
    assert reno.cwnd == MSS


def test_partial_ack_in_sack_recovery_leaves_cwnd_at_ssthresh() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=True)
    reno.on_partial_ack(3 * MSS)
    assert reno.cwnd == 10 * MSS


def test_full_ack_sets_cwnd_to_min_of_ssthresh_and_flight_plus_smss() -> None:
    # RFC 6582 3.2 step 4 option 1: min(ssthresh, max(FlightSize, SMSS) + SMSS).
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    for _ in range(5):
        reno.on_duplicate_ack_in_recovery()
    reno.exit_recovery(flight_size=20 * MSS)
    assert reno.cwnd == 10 * MSS  # ssthresh is smaller


def test_full_ack_with_little_in_flight_avoids_a_burst() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    reno.exit_recovery(flight_size=2 * MSS)
    assert reno.cwnd == 3 * MSS
    reno.enter_recovery(20 * MSS, sack=False)
    reno.exit_recovery(flight_size=0)
    assert reno.cwnd == 2 * MSS  # max(FlightSize, SMSS) + SMSS


def test_after_recovery_the_window_grows_in_congestion_avoidance() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=True)
    reno.exit_recovery(flight_size=20 * MSS)
    for _ in range(10):
        reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 11 * MSS


def test_timeout_sets_ssthresh_to_half_flight_and_cwnd_to_one_segment() -> None:
    # RFC 5681 3.1 (4) and LW = 1 SMSS.
    reno = NewReno(MSS)
    reno.on_timeout(16 * MSS)
    assert reno.ssthresh == 8 * MSS
    assert reno.cwnd == MSS


def test_timeout_with_tiny_flight_keeps_ssthresh_at_two_segments() -> None:
    reno = NewReno(MSS)
    reno.on_timeout(100)
    assert reno.ssthresh == 2 * MSS and reno.cwnd == MSS


def test_repeated_timeout_holds_ssthresh() -> None:
    reno = NewReno(MSS)
    reno.on_timeout(16 * MSS)
    reno.on_timeout(MSS, repeated=True)
    assert reno.ssthresh == 8 * MSS and reno.cwnd == MSS


def test_slow_start_after_timeout_climbs_back_to_ssthresh() -> None:
    reno = NewReno(MSS)
    reno.on_timeout(16 * MSS)
    reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 2 * MSS
    while reno.cwnd < reno.ssthresh:
        reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 8 * MSS
    for _ in range(8):
        reno.on_ack(MSS, 0.0, None)
    assert reno.cwnd == 9 * MSS


def test_timeout_during_recovery_ends_sack_mode() -> None:
    reno = NewReno(MSS)
    reno.enter_recovery(20 * MSS, sack=True)
    reno.on_timeout(20 * MSS)
    reno.enter_recovery(20 * MSS, sack=False)
    reno.on_duplicate_ack_in_recovery()
    assert reno.cwnd == 14 * MSS


def test_idle_longer_than_rto_restarts_from_the_initial_window() -> None:
    # RFC 5681 4.1: RW = min(IW, cwnd).
    reno = NewReno(MSS)
    reno.cwnd = 40 * MSS
    reno.on_idle_restart(idle=2.0, rto=1.0)
    assert reno.cwnd == 14600


def test_short_idle_keeps_cwnd() -> None:
    reno = NewReno(MSS)
    reno.cwnd = 40 * MSS
    reno.on_idle_restart(idle=0.5, rto=1.0)
    assert reno.cwnd == 40 * MSS


def test_idle_restart_never_raises_a_small_cwnd() -> None:
    reno = NewReno(MSS)
    reno.on_timeout(4 * MSS)
    reno.on_idle_restart(idle=10.0, rto=1.0)
    assert reno.cwnd == MSS


def test_syn_loss_leaves_one_segment_and_survives_set_mss() -> None:
    reno = NewReno(536)
    reno.on_syn_loss()
    reno.set_mss(MSS)
    assert reno.cwnd == MSS


def test_create_builds_newreno_by_name() -> None:
    controller: CongestionControl = create("newreno", MSS, 4)
    assert isinstance(controller, NewReno)
    assert controller.cwnd == 4380
    assert create("NewReno", MSS).cwnd == 14600


def test_create_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown congestion control"):
        create("vegas", MSS)


def test_algorithms_returns_a_fresh_mapping() -> None:
    first = algorithms()
    assert "newreno" in first
    assert first is not algorithms()


def test_invalid_mss_is_rejected() -> None:
    with pytest.raises(ValueError):
        NewReno(0)
    with pytest.raises(ValueError):
        NewReno(MSS).set_mss(-1)


events = st.lists(
    st.one_of(
        st.tuples(st.just("ack"), st.integers(0, 100_000)),
        st.tuples(st.just("enter"), st.integers(0, 1_000_000)),
        st.tuples(st.just("dup"), st.just(0)),
        st.tuples(st.just("partial"), st.integers(0, 100_000)),
        st.tuples(st.just("exit"), st.integers(0, 1_000_000)),
        st.tuples(st.just("timeout"), st.integers(0, 1_000_000)),
        st.tuples(st.just("idle"), st.integers(0, 5)),
    ),
    max_size=60,
)


@given(st.integers(100, 9000), events, st.booleans(), st.sampled_from(["newreno", "cubic"]))
def test_cwnd_never_drops_below_one_segment_nor_ssthresh_below_two(
    mss: int, script: list[tuple[str, int]], sack: bool, algorithm: str
) -> None:
    reno = create(algorithm, mss)
    now = 0.0
    for event, value in script:
        now += 0.05  # CUBIC's window depends on time: one event every 50 ms
        if event == "ack":
            reno.on_ack(value, now, 0.1)
        elif event == "enter":
            reno.enter_recovery(value, sack)
        elif event == "dup":
            reno.on_duplicate_ack_in_recovery()
        elif event == "partial":
            reno.on_partial_ack(value)
        elif event == "exit":
            reno.exit_recovery(value)
        elif event == "timeout":
            reno.on_timeout(value)
        else:
            reno.on_idle_restart(float(value), 1.0)
        assert reno.cwnd >= mss
        assert reno.ssthresh >= 2 * mss
