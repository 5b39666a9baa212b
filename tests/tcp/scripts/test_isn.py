"""Initial sequence numbers (RFC 6528), SYN cookies, and a whole connection across the 2**32 wrap."""

from __future__ import annotations

import itertools
import random

import pytest

from pystack.tcp.isn import COOKIE_MSS, COOKIE_PERIOD, SequenceGenerator
from pystack.tcp.seq import seq_diff, seq_gt
from pystack.tcp.state import TCPState
from tests.tcp.scripts import run_recording

LOCAL, REMOTE = 0x0A000002, 0x0A000001  # 10.0.0.2, 10.0.0.1
MASK = (1 << 32) - 1


def generator(seed: int = 1) -> SequenceGenerator:
    return SequenceGenerator(random.Random(seed))


# -- RFC 6528 ------------------------------------------------------------------------------------
def test_isn_different_4_tuples_unrelated() -> None:
    sequence = generator()
    isns = [sequence.isn(LOCAL, 8080, REMOTE, port, 10.0) for port in range(9000, 9100)]
    assert len(set(isns)) == 100
    # Neighbouring ports give no neighbouring ISNs: the differences spread over the whole space.
    gaps = sorted(abs(seq_diff(b, a)) for a, b in itertools.pairwise(isns))
    assert gaps[0] > 1000 and gaps[len(gaps) // 2] > 1 << 28
    other = [sequence.isn(LOCAL, 8081, REMOTE, port, 10.0) for port in range(9000, 9100)]
    assert not set(other) & set(isns)  # the local port matters too


def test_isn_same_4_tuple_later_larger_by_250000_per_second() -> None:
    sequence = generator()
    base = sequence.isn(LOCAL, 8080, REMOTE, 9000, 100.0)
    for elapsed in (0.000004, 0.5, 1.0, 60.0):
        later = sequence.isn(LOCAL, 8080, REMOTE, 9000, 100.0 + elapsed)
        assert seq_gt(later, base)
        assert (later - base) & MASK == round(elapsed * 250_000)  # M ticks every 4 us


def test_isn_secret_comes_from_the_injected_rng() -> None:
    same = [generator(7).isn(LOCAL, 8080, REMOTE, 9000, 1.0) for _ in range(2)]
    assert same[0] == same[1]  # a run replays exactly from its seed
    assert generator(8).isn(LOCAL, 8080, REMOTE, 9000, 1.0) != same[0]


# -- SYN cookies -------------------------------------------------------------------------------
def test_cookie_round_trip_encodes_the_mss_step() -> None:
    sequence = generator()
    for mss, step in ((1460, 1460), (1000, 536), (9000, 8960), (100, 536)):
        cookie = sequence.cookie(LOCAL, 8080, REMOTE, 9000, 12345, mss, 70.0)
        assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12345, 70.0) == step
    assert 8960 in COOKIE_MSS


def test_cookie_forged_or_for_another_tuple_rejected() -> None:
    sequence = generator()
    cookie = sequence.cookie(LOCAL, 8080, REMOTE, 9000, 12345, 1460, 70.0)
    assert sequence.check_cookie(cookie ^ 1, LOCAL, 8080, REMOTE, 9000, 12345, 70.0) is None
    assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9001, 12345, 70.0) is None
    assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12346, 70.0) is None
    assert generator(2).check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12345, 70.0) is None


def test_cookie_valid_for_two_periods_then_stale() -> None:
    sequence = generator()
    cookie = sequence.cookie(LOCAL, 8080, REMOTE, 9000, 12345, 1460, 0.0)
    valid_until = 3 * COOKIE_PERIOD  # counter steps 0, 1 and 2
    assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12345, valid_until - 1) == 1460
    assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12345, valid_until) is None


def test_cookie_stale_after_its_5_bit_counter_wraps() -> None:
    # The cookie carries 5 bits of the counter; 32 periods later they match again, but the
    # keyed hash covers the whole counter, so an old cookie does not come back to life.
    sequence = generator()
    cookie = sequence.cookie(LOCAL, 8080, REMOTE, 9000, 12345, 1460, 10.0)
    wrapped = 10.0 + 32 * COOKIE_PERIOD
    assert sequence.check_cookie(cookie, LOCAL, 8080, REMOTE, 9000, 12345, wrapped) is None


# -- a whole connection across the wrap ----------------------------------------------------------
WRAP_CONNECTION = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460>
    +0 > S. 0:0(0) ack 1 <mss 1460>
    +0.01 < . 1:1(0) ack 1 win 65535
    +0 accept
    +0 < P. 1:101(100) ack 1 win 65535            # the peer's data crosses 2**32
    +0.04 > . 1:1(0) ack 101
    +0 read 100
    +0 write 100                                  # and so does ours
    +0 > P. 1:101(100) ack 101
    +0.01 < . 101:101(0) ack 101 win 65535
    +0 expect info unacked 0
    +0 write 1000
    +0 > P. 101:1101(1000) ack 101
    +0.01 < P. 101:201(100) ack 601 win 65535     # a partial ACK: half of it
    +0 expect info unacked 500
    +0.04 > . 1101:1101(0) ack 201
    +0 read 100
    +0.01 < F. 201:201(0) ack 1101 win 65535
    +0 > . 1101:1101(0) ack 202
    +0 close
    +0 > F. 1101:1101(0) ack 202
    +0.01 < . 202:202(0) ack 1102 win 65535
    +0 expect state CLOSED
"""


@pytest.mark.parametrize("isn", [2**32 - 50, 2**32 - 1, 2**31 - 10])
def test_whole_connection_across_the_sequence_wrap(isn: int) -> None:
    result, (connection,) = run_recording(WRAP_CONNECTION, isn=isn, peer_isn_offset=2**32 - 50)
    assert connection.iss == isn and connection.irs == 2**32 - 50
    assert connection.state is TCPState.CLOSED and connection.error is None
    assert connection.snd_una == (isn + 1102) & MASK  # past the wrap
    assert connection.rcv_nxt == (2**32 - 50 + 202) & MASK
    assert not [reason for reason in result.stack.counters.drops if reason.name.startswith("TCP")]
