"""CUBIC's window arithmetic against RFC 9438 (pystack.tcp.congestion.Cubic).

Windows in the RFC are in segments and time in seconds; the controller keeps cwnd in bytes, so
the expected values below are the RFC's formulas times the MSS. Each test drives the controller
with explicit times (no clock): ``on_ack(acked, now, srtt)``.
"""

from __future__ import annotations

import itertools
import math

import pytest

from pystack.tcp.congestion import (
    ALPHA_CUBIC,
    BETA_CUBIC,
    C_CUBIC,
    Cubic,
    NewReno,
    create,
    cubic_k,
    cubic_window,
    switch,
)
from pystack.tcp.settings import CongestionControlName

MSS = 1000  # round numbers: 100 segments are 100,000 bytes


def test_constants_are_the_rfc_values() -> None:
    # RFC 9438 4.6 (beta 0.7), 5 (C 0.4), 4.3 Figure 3 (alpha = 3(1-beta)/(1+beta)).
    assert C_CUBIC == 0.4
    assert BETA_CUBIC == 0.7
    assert pytest.approx(0.9 / 1.7) == ALPHA_CUBIC


def test_k_is_the_time_the_curve_takes_back_to_w_max() -> None:
    # Figure 2: K = cbrt((W_max - cwnd_epoch) / C). W_max 100, cwnd_epoch 70: cbrt(75) s.
    k = cubic_k(100.0, 70.0)
    assert k == pytest.approx(75 ** (1 / 3))
    assert k == pytest.approx(4.2172, abs=1e-4)
    assert cubic_k(100.0, 100.0) == 0.0
    assert cubic_k(50.0, 70.0) == 0.0  # starting above W_max: no concave part


def test_w_cubic_at_given_times() -> None:
    # Figure 1: W_cubic(t) = C (t - K)^3 + W_max.
    k = cubic_k(100.0, 70.0)
    assert cubic_window(0.0, k, 100.0) == pytest.approx(70.0)  # starts at cwnd_epoch
    assert cubic_window(k, k, 100.0) == pytest.approx(100.0)  # plateau at W_max
    assert cubic_window(k + 1, k, 100.0) == pytest.approx(100.4)  # convex: +C after 1 s
    assert cubic_window(k + 2, k, 100.0) == pytest.approx(103.2)  # +C * 8
    assert cubic_window(1.0, k, 100.0) == pytest.approx(0.4 * (1 - k) ** 3 + 100)


def loaded(cwnd_segments: float = 100, w_max: float = 0.0) -> Cubic:
    """A controller in congestion avoidance at ``cwnd_segments``."""
    cubic = Cubic(MSS)
    cubic.cwnd = int(cwnd_segments * MSS)
    cubic.ssthresh = cubic.cwnd
    cubic.w_max = w_max
    return cubic


def test_loss_keeps_seventy_percent_not_half() -> None:
    # 4.6: ssthresh = flight_size * beta_cubic; cwnd = ssthresh (SACK recovery).
    cubic = loaded(100)
    cubic.enter_recovery(100 * MSS, sack=True)
    assert cubic.ssthresh == cubic.cwnd == 70 * MSS
    assert cubic.w_max == pytest.approx(100.0)  # 4.7: the window before the reduction
    reno = NewReno(MSS)
    reno.cwnd = reno.ssthresh = 100 * MSS
    reno.enter_recovery(100 * MSS, sack=True)
    assert reno.cwnd == 50 * MSS  # NewReno halves


def test_loss_without_sack_inflates_by_three_segments_like_newreno() -> None:
    cubic = loaded(100)
    cubic.enter_recovery(100 * MSS, sack=False)
    assert cubic.ssthresh == 70 * MSS
    assert cubic.cwnd == 73 * MSS  # RFC 5681 3.2 step 3 on CUBIC's ssthresh
    cubic.on_duplicate_ack_in_recovery()
    assert cubic.cwnd == 74 * MSS
    cubic.exit_recovery(80 * MSS)
    assert cubic.cwnd == 70 * MSS  # min(ssthresh, FlightSize + SMSS)


def test_ssthresh_is_at_least_two_segments() -> None:
    cubic = loaded(2)
    cubic.enter_recovery(2 * MSS, sack=True)
    assert cubic.ssthresh == 2 * MSS and cubic.cwnd == 2 * MSS


def test_fast_convergence_lowers_w_max_on_a_loss_below_the_last_one() -> None:
    # 4.7: cwnd 90 < W_max 100 -> W_max = 90 * (1 + 0.7) / 2 = 76.5.
    cubic = loaded(90, w_max=100.0)
    cubic.enter_recovery(90 * MSS, sack=True)
    assert cubic.w_max == pytest.approx(76.5)
    assert cubic.ssthresh == 63 * MSS
    plain = Cubic(MSS, fast_convergence=False)
    plain.cwnd = plain.ssthresh = 90 * MSS
    plain.w_max = 100.0
    plain.enter_recovery(90 * MSS, sack=True)
    assert plain.w_max == pytest.approx(90.0)
    # A loss above the last W_max sets W_max to cwnd with or without fast convergence.
    above = loaded(120, w_max=100.0)
    above.enter_recovery(120 * MSS, sack=True)
    assert above.w_max == pytest.approx(120.0)


def test_epoch_starts_at_the_first_congestion_avoidance_ack_with_k_from_the_rfc() -> None:
    cubic = loaded(100)
    cubic.enter_recovery(100 * MSS, sack=True)
    cubic.exit_recovery(100 * MSS)  # cwnd = min(ssthresh, flight + SMSS) = 70 segments
    assert cubic.epoch_start is None
    cubic.on_ack(MSS, 5.0, 0.1)
    assert cubic.epoch_start == 5.0
    assert cubic.cwnd_epoch == pytest.approx(70.0)
    assert cubic.k == pytest.approx(75 ** (1 / 3))
    info = cubic.state()
    assert info["w_max"] == 100 * MSS and info["cwnd_epoch"] == 70 * MSS
    assert info["k"] == pytest.approx(4.2172, abs=1e-4)
    assert "W_max 100000, K 4.217 s" in cubic.summary()


def test_first_ack_of_an_epoch_is_in_the_reno_friendly_region() -> None:
    # At t = 0, W_cubic(0) = cwnd_epoch, and W_est has already grown past it by
    # alpha * segments_acked / cwnd (Figure 4): 4.3 says cwnd = W_est.
    cubic = loaded(70, w_max=100.0)
    cubic.on_ack(7 * MSS, 0.0, 0.1)
    assert cubic.region == "reno-friendly"
    assert cubic.w_est == pytest.approx(70 + ALPHA_CUBIC * 7 / 70)
    assert cubic.cwnd == int((70 + ALPHA_CUBIC * 0.1) * MSS)


def acks_over(cubic: Cubic, start: float, seconds: float, rtt: float) -> list[tuple[float, int]]:
    """Feed one ACK per two segments of cwnd, spread evenly over each RTT (a saturated sender
    on a path of ``rtt``); return (time, cwnd) at the end of every RTT."""
    samples = []
    now = start
    while now < start + seconds - 1e-9:
        acks = max(1, cubic.cwnd // (2 * MSS))
        for i in range(acks):
            cubic.on_ack(2 * MSS, now + rtt * i / acks, rtt)
        now += rtt
        samples.append((now - start, cubic.cwnd))
    return samples


def test_after_a_loss_cwnd_follows_the_curve_concave_plateau_convex() -> None:
    cubic = loaded(100)
    cubic.enter_recovery(100 * MSS, sack=True)
    cubic.exit_recovery(100 * MSS)
    k = 75 ** (1 / 3)  # 4.217 s
    samples = acks_over(cubic, 0.0, 8.0, rtt=0.25)
    by_time = {round(t, 2): cwnd / MSS for t, cwnd in samples}
    # cwnd tracks W_cubic(t) within a segment (4.4, 4.5: each RTT it closes the gap to
    # W_cubic(t + RTT)), and stays above Reno's estimate W_est (not Reno-friendly).
    for t, cwnd in by_time.items():
        if t >= 0.5:
            assert cwnd == pytest.approx(cubic_window(t, k, 100.0), abs=1.0), t
    assert cubic.w_est < 90
    # Concave: growth per second shrinks as cwnd approaches W_max ...
    first, second, third = (by_time[x] for x in (1.0, 2.0, 3.0))
    assert by_time[1.0] - by_time[0.25] > second - first > third - second > 0
    # ... the plateau around K: less than one segment gained in the second around K ...
    assert by_time[4.75] - by_time[3.75] < 1.0
    assert 99.0 < by_time[4.25] < 101.0
    # ... then convex: growth per second increases past W_max.
    assert by_time[8.0] - by_time[7.0] > by_time[7.0] - by_time[6.0] > by_time[6.0] - by_time[5.0]
    assert cubic.region == "convex"
    assert by_time[8.0] == pytest.approx(100 + 0.4 * (8.0 - k) ** 3, abs=1.0)


def test_growth_per_rtt_is_at_most_half_a_window() -> None:
    # 4.2: target <= 1.5 cwnd. Far past K the curve would jump; cwnd grows at most 1.5x per RTT.
    cubic = loaded(10, w_max=10.0)
    cubic.on_ack(MSS, 0.0, 1.0)  # epoch start, K = 0
    before = cubic.cwnd
    acks_over(cubic, 30.0, 1.0, rtt=1.0)  # W_cubic(31) = 10 + 0.4 * 31^3: thousands
    assert cubic.cwnd <= 1.5 * before + MSS


def test_short_rtt_flow_grows_like_reno_in_the_reno_friendly_region() -> None:
    # A 10-ms RTT and a small W_max: Reno's estimate W_est, which grows per RTT, outruns the
    # cubic curve, which grows per second; cwnd follows W_est (4.3): alpha_cubic (0.53)
    # segments per RTT until W_est reaches cwnd_prior (20), then 1 per RTT like Reno.
    cubic = loaded(20)
    cubic.enter_recovery(20 * MSS, sack=True)  # W_max 20, cwnd 14, cwnd_prior 20
    samples = acks_over(cubic, 0.0, 0.3, rtt=0.01)
    assert cubic.region == "reno-friendly"
    for t, cwnd in samples:
        assert cubic_window(t, cubic.k, 20.0) < cwnd / MSS
    windows = [cwnd / MSS for _, cwnd in samples]
    slopes = [b - a for a, b in itertools.pairwise(windows)]
    below = [slope for slope, w in zip(slopes, windows[1:], strict=False) if w < 19.5]
    above = [slope for slope, w in zip(slopes, windows, strict=False) if w > 21]
    assert len(below) >= 8 and all(0.4 < slope < 0.65 for slope in below)
    assert len(above) >= 8 and all(0.85 < slope < 1.1 for slope in above)
    assert cubic.alpha == 1.0  # W_est reached cwnd_prior


def test_timeout_sets_one_segment_and_ssthresh_by_beta_then_k_zero() -> None:
    cubic = loaded(100, w_max=150.0)
    cubic.on_timeout(100 * MSS)
    assert cubic.cwnd == MSS  # 4.8: RFC 5681's loss window
    assert cubic.ssthresh == 70 * MSS  # ... but ssthresh by beta_cubic
    cubic.on_timeout(100 * MSS, repeated=True)
    assert cubic.ssthresh == 70 * MSS  # a repeated timeout does not lower it again
    while cubic.cwnd < cubic.ssthresh:
        cubic.on_ack(MSS, 1.0, 0.1)  # slow start back to ssthresh
    assert cubic.region == "slow start"
    cubic.on_ack(MSS, 2.0, 0.1)
    # 4.8: the first stage after a timeout has K = 0 and W_max = cwnd at its start (70), not
    # the W_max of before the timeout (150, or 100 after fast convergence).
    assert cubic.k == 0.0
    assert cubic.cwnd_epoch == pytest.approx(70.0)
    assert cubic.w_max == pytest.approx(70.0)


def test_a_timeout_during_recovery_keeps_the_reduction_recovery_made() -> None:
    # One congestion event, one reduction: the RTO in recovery sets cwnd to one segment but
    # keeps ssthresh and W_max, although FlightSize (SACKed data above the hole included) is
    # now ten times the window.
    cubic = loaded(100)
    cubic.enter_recovery(100 * MSS, sack=True)
    assert cubic.ssthresh == 70 * MSS
    cubic.on_timeout(1000 * MSS)
    assert cubic.cwnd == MSS
    assert cubic.ssthresh == 70 * MSS
    assert cubic.w_max == pytest.approx(100.0)
    # A later timeout outside recovery is a new event: ssthresh from its FlightSize.
    cubic.on_ack(MSS, 1.0, 0.1)
    cubic.on_timeout(20 * MSS)
    assert cubic.ssthresh == 14 * MSS


def test_slow_start_is_rfc_5681s() -> None:
    cubic = Cubic(MSS)
    cubic.on_ack(MSS, 0.0, None)
    assert cubic.cwnd == 11 * MSS
    cubic.on_ack(5 * MSS, 0.0, None)
    assert cubic.cwnd == 13 * MSS  # at most 2 SMSS per ACK (RFC 3465)


def test_idle_time_does_not_count_in_t() -> None:
    cubic = loaded(70, w_max=100.0)
    cubic.on_ack(MSS, 10.0, 0.1)
    cubic.on_idle_restart(0.5, 1.0)  # shorter than RTO: cwnd kept, epoch moved on
    assert cubic.epoch_start == 10.5
    assert cubic.cwnd >= 70 * MSS


def test_no_rtt_sample_yet_aims_at_the_curve_now() -> None:
    cubic = loaded(70, w_max=100.0)
    cubic.on_ack(MSS, 0.0, None)
    cubic.on_ack(MSS, 2.0, None)  # W_cubic(2) ~ 95.6 > W_est: concave
    assert cubic.region == "concave"
    assert cubic.cwnd > 70 * MSS


def test_create_and_switch_by_name() -> None:
    assert isinstance(create(CongestionControlName.CUBIC, MSS), Cubic)
    assert isinstance(create("CUBIC", MSS), Cubic)
    reno = NewReno(MSS)
    reno.cwnd, reno.ssthresh = 30 * MSS, 20 * MSS
    cubic = switch(reno, "cubic")
    assert isinstance(cubic, Cubic)
    assert (cubic.cwnd, cubic.ssthresh) == (30 * MSS, 20 * MSS)
    assert switch(cubic, CongestionControlName.CUBIC) is cubic
    back = switch(cubic, "newreno")
    assert type(back) is NewReno and back.cwnd == 30 * MSS
    with pytest.raises(ValueError, match="unknown congestion control 'vegas'"):
        switch(reno, "vegas")


def test_mss_change_keeps_windows_in_segments() -> None:
    cubic = loaded(70, w_max=100.0)
    cubic.on_ack(MSS, 0.0, 0.1)
    cubic.set_mss(500)
    assert math.isclose(cubic.w_max, 100.0)
    assert cubic.state()["w_max"] == 100 * 500
