"""RFC 6298 RTT estimation and retransmission timeout (pystack.tcp.rtt)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.tcp.rtt import RTTEstimator


def test_rto_before_any_sample_is_the_initial_rto() -> None:
    rtt = RTTEstimator()
    assert rtt.srtt is None
    assert rtt.rto == 1.0 and rtt.base_rto == 1.0 and rtt.backoffs == 0


def test_first_sample_sets_srtt_r_and_rttvar_half_r() -> None:
    # RFC 6298 (2.2): R = 0.5 -> SRTT 0.5, RTTVAR 0.25, RTO = 0.5 + max(G, 4*0.25) = 1.5.
    rtt = RTTEstimator()
    rtt.sample(0.5)
    assert rtt.srtt == 0.5
    assert rtt.rttvar == 0.25
    assert rtt.rto == pytest.approx(1.5)


def test_second_sample_uses_alpha_one_eighth_and_beta_one_quarter() -> None:
    # RFC 6298 (2.3): RTTVAR = 3/4*0.25 + 1/4*|0.5 - 0.3| = 0.2375; SRTT = 7/8*0.5 + 1/8*0.3.
    rtt = RTTEstimator()
    rtt.sample(0.5)
    rtt.sample(0.3)
    assert rtt.rttvar == pytest.approx(0.2375)
    assert rtt.srtt == pytest.approx(0.475)
    assert rtt.rto == pytest.approx(0.475 + 4 * 0.2375)


def test_rttvar_is_updated_with_the_old_srtt() -> None:
    rtt = RTTEstimator(min_rto=0.001)
    rtt.sample(1.0)
    rtt.sample(2.0)
    assert rtt.rttvar == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)  # |old SRTT 1.0 - 2.0|
    assert rtt.srtt == pytest.approx(1.125)


def test_small_rtt_is_clamped_to_min_rto() -> None:
    # RFC 6298 (2.4): 0.01 + 4*0.005 = 0.03 -> rounded up to the 1 s minimum.
    rtt = RTTEstimator()
    rtt.sample(0.01)
    assert rtt.rto == 1.0


def test_lower_min_rto_allows_a_short_timeout() -> None:
    rtt = RTTEstimator(min_rto=0.2)
    rtt.sample(0.01)
    assert rtt.rto == 0.2


def test_granularity_bounds_the_variance_term() -> None:
    # RFC 6298 (2.3): RTO = SRTT + max(G, K*RTTVAR); identical samples drive RTTVAR to 0.
    rtt = RTTEstimator(min_rto=0.001, granularity=0.1)
    for _ in range(200):
        rtt.sample(0.05)
    assert rtt.rttvar < 0.001
    assert rtt.rto == pytest.approx(0.05 + 0.1)


def test_large_rtt_is_clamped_to_max_rto() -> None:
    rtt = RTTEstimator(max_rto=60.0)
    rtt.sample(40.0)
    assert rtt.rto == 60.0


def test_rto_backs_off_and_clamps_at_max() -> None:
    # RFC 6298 (5.5): RTO <- RTO * 2 on each expiry; the maximum (2.5) still applies.
    rtt = RTTEstimator()
    rtt.sample(0.5)  # RTO 1.5
    assert rtt.backoff() == pytest.approx(3.0)
    assert rtt.backoff() == pytest.approx(6.0)
    for _ in range(10):
        rtt.backoff()
    assert rtt.rto == 60.0
    assert rtt.backoffs == 12
    assert rtt.base_rto == pytest.approx(1.5)


def test_new_sample_ends_the_backoff() -> None:
    rtt = RTTEstimator()
    rtt.backoff()
    rtt.backoff()
    assert rtt.rto == 4.0
    rtt.sample(0.5)
    assert rtt.backoffs == 0
    assert rtt.rto == pytest.approx(1.5)


def test_reset_backoff_restores_the_base_rto() -> None:
    rtt = RTTEstimator()
    rtt.sample(0.5)
    rtt.backoff()
    rtt.reset_backoff()
    assert rtt.backoffs == 0 and rtt.rto == pytest.approx(1.5)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_negative_nan_and_infinite_samples_are_ignored(bad: float) -> None:
    rtt = RTTEstimator()
    rtt.sample(bad)
    assert rtt.srtt is None and rtt.rto == 1.0
    rtt.sample(0.5)
    rtt.sample(bad)
    assert rtt.srtt == 0.5 and rtt.rto == pytest.approx(1.5)


def test_zero_sample_is_accepted() -> None:
    rtt = RTTEstimator()
    rtt.sample(0.0)
    assert rtt.srtt == 0.0 and rtt.rto == 1.0


def test_forget_samples_makes_the_next_sample_a_first_one() -> None:
    rtt = RTTEstimator()
    rtt.sample(2.0)
    rtt.backoff()
    rtt.forget_samples()
    assert rtt.srtt is None and rtt.backoffs == 1
    rtt.sample(0.5)
    assert rtt.srtt == 0.5 and rtt.rttvar == 0.25


def test_syn_loss_raises_the_rto_to_three_seconds() -> None:
    # RFC 6298 5.7: after a SYN timeout an RTO below 3 s becomes 3 s for data.
    rtt = RTTEstimator()
    rtt.backoff()
    rtt.apply_syn_loss_rule()
    assert rtt.rto == 3.0 and rtt.backoffs == 0
    rtt.sample(0.5)
    assert rtt.rto == pytest.approx(1.5)


def test_invalid_bounds_are_rejected() -> None:
    with pytest.raises(ValueError):
        RTTEstimator(min_rto=2.0, max_rto=1.0)


@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=50), st.integers(0, 20))
def test_rto_always_stays_within_bounds(samples: list[float], backoffs: int) -> None:
    rtt = RTTEstimator(min_rto=0.2, max_rto=60.0)
    for value in samples:
        rtt.sample(value)
        assert 0.2 <= rtt.rto <= 60.0
        assert rtt.rttvar >= 0.0
    for _ in range(backoffs):
        previous = rtt.rto
        assert rtt.backoff() == min(previous * 2, 60.0)
    assert rtt.rto >= rtt.base_rto
