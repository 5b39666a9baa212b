"""Bounded replies to hostile segments: injection storms on virtual time.

Every reply to an unacceptable segment goes through a per-connection limit (one per
``invalid_ack_interval``, Linux's tcp_invalid_ratelimit) and a per-stack budget per second
(``challenge_ack_limit``, Linux's tcp_challenge_ack_limit, randomised); RSTs to segments for no
connection through a per-stack token bucket (``reset_rate``, ``reset_burst``). Each storm is
1,000 segments about a millisecond apart; which ones are answered is worked out here from the
limits alone, in exact arithmetic (the times are binary fractions, so pystack's floats are exact
too), and the script demands exactly those replies, at once, and nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from fractions import Fraction

from pystack.clock import ManualClock
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN

STORM = 1000
START = Fraction(1, 8)  # after PASSIVE_OPEN (0.01 s)
INTERVAL = Fraction(1, 2)  # TCPSettings().invalid_ack_interval
DEFAULTS = TCPSettings()


def storm_times(spacing: Fraction, count: int = STORM, start: Fraction = START) -> list[Fraction]:
    return [start + spacing * i for i in range(count)]


def per_connection(times: Sequence[Fraction], interval: Fraction = INTERVAL) -> list[bool]:
    """Which segments the per-connection limit answers: the first, then one per interval."""
    answered, last = [], None
    for when in times:
        ok = last is None or when - last >= interval
        if ok:
            last = when
        answered.append(ok)
    return answered


def per_second(times: Sequence[Fraction], budget: int) -> list[bool]:
    """Which segments a fixed per-second budget answers."""
    answered, used = [], {}
    for when in times:
        second = int(when)
        ok = used.get(second, 0) < budget
        if ok:
            used[second] = used.get(second, 0) + 1
        answered.append(ok)
    return answered


def token_bucket(times: Sequence[Fraction], rate: int, burst: int) -> list[bool]:
    """Which segments a token bucket (full at the start) answers."""
    answered, tokens, last = [], Fraction(burst), None
    for when in times:
        if last is not None:
            tokens = min(Fraction(burst), tokens + (when - last) * rate)
        last = when
        ok = tokens >= 1
        if ok:
            tokens -= 1
        answered.append(ok)
    return answered


def storm_script(
    times: Sequence[Fraction], answered: Sequence[bool], inject: str, reply: str
) -> str:
    lines = []
    for when, ok in zip(times, answered, strict=True):
        lines.append(f"{float(when)!r} < {inject}")
        if ok:
            lines.append(f"+0 > {reply}")  # at once: the same instant as its segment
    return "\n".join(lines) + "\n"


def connection_storm(
    inject: str,
    reply: str,
    sent: str,
    suppressed: str,
    drop: str,
    answered: Callable[[list[Fraction]], list[bool]] = per_connection,
    settings: TCPSettings = DEFAULTS,
    spacing: Fraction = Fraction(1, 1024),
) -> int:
    """1,000 copies of ``inject`` into an established connection; returns the replies."""
    times = storm_times(spacing)
    which = answered(times)
    replies = sum(which)
    run(
        PASSIVE_OPEN
        + storm_script(times, which, inject, reply)
        + f"""
        +0 expect state ESTABLISHED
        +0 expect counter {sent} {replies}
        +0 expect counter {suppressed} {STORM - replies}
        +0 expect drop {drop} {STORM}
        +0 expect error none
        +0 write 10                               # and the connection still works
        +0 > P. 1:11(10) ack 1
        +0.01 < . 1:1(0) ack 11 win 65535
        end strict 2
        """,
        tcp_settings=settings,
    )
    return replies


# -- per connection ----------------------------------------------------------------------------
def test_acks_of_unsent_data_get_one_reply_per_half_second() -> None:
    # RFC 9293 3.10.7.4: "If the ACK acks something not yet sent (SEG.ACK > SND.NXT) then send
    # an ACK, drop the segment": before, every one was answered (1.08 replies per segment).
    replies = connection_storm(
        ". 1:1(0) ack 5000 win 65535",
        ". 1:1(0) ack 1",
        "tcp.unsent_acks_sent",
        "tcp.unsent_acks_suppressed",
        "TCP_ACK_UNSENT",
    )
    assert replies == 2  # 1,000 segments over 0.98 s: at 0 and at 0.5 s


def test_acks_older_than_the_window_get_one_challenge_ack_per_half_second() -> None:
    # RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND gets a challenge ACK (relative 4294900000
    # is 67,296 below ISN+1, MAX.SND.WND is 65,535).
    replies = connection_storm(
        ". 1:1(0) ack 4294900000 win 65535",
        ". 1:1(0) ack 1",
        "tcp.challenge_acks_sent",
        "tcp.challenge_acks_suppressed",
        "TCP_ACK_TOO_OLD",
        spacing=Fraction(1, 256),  # 3.9 s: 8 half-seconds
    )
    assert replies == 8


def test_out_of_window_data_gets_one_reply_per_half_second() -> None:
    # Data too: Linux answers every out-of-window segment that carries data; pystack limits
    # them like the rest, so blind data injection is not answered one for one.
    replies = connection_storm(
        "P. 100000:100010(10) ack 1 win 65535",
        ". 1:1(0) ack 1",
        "tcp.invalid_acks_sent",
        "tcp.invalid_acks_suppressed",
        "TCP_OUT_OF_WINDOW",
    )
    assert replies == 2


def test_in_window_rsts_get_one_challenge_ack_per_half_second() -> None:
    replies = connection_storm(
        "R 1000:1000(0) win 0",
        ". 1:1(0) ack 1",
        "tcp.challenge_acks_sent",
        "tcp.challenge_acks_suppressed",
        "TCP_RST_NOT_EXACT",
    )
    assert replies == 2


def test_one_interval_for_every_kind_of_reply() -> None:
    # A challenge ACK, then an out-of-window segment 0.25 s later: the second reply waits.
    run(
        PASSIVE_OPEN
        + """
        0.125 < R 1000:1000(0) win 0
        +0 > . 1:1(0) ack 1
        0.375 < P. 100000:100010(10) ack 1 win 65535
        0.5 < . 1:1(0) ack 5000 win 65535
        +0 expect counter tcp.invalid_acks_suppressed 1
        +0 expect counter tcp.unsent_acks_suppressed 1
        0.625 < P. 100000:100010(10) ack 1 win 65535
        +0 > . 1:1(0) ack 1
        +0 expect counter tcp.invalid_acks_sent 1
        end strict 1
        """
    )


# -- per stack ---------------------------------------------------------------------------------
def test_the_stack_budget_limits_replies_per_second() -> None:
    # Without the per-connection interval only the stack's budget is left: 10 a second.
    settings = TCPSettings(
        challenge_ack_limit=10, challenge_ack_jitter=False, invalid_ack_interval=0
    )
    replies = connection_storm(
        ". 1:1(0) ack 5000 win 65535",
        ". 1:1(0) ack 1",
        "tcp.unsent_acks_sent",
        "tcp.unsent_acks_suppressed",
        "TCP_ACK_UNSENT",
        answered=lambda times: per_second(times, 10),
        settings=settings,
    )
    assert replies == 20  # the storm spans seconds 0 and 1


def test_the_stack_budget_per_second_is_randomised_like_linux() -> None:
    # Linux: half the limit plus a random number below the limit, drawn again every second.
    budgets = []
    for seed in (1, 2):
        config = StackConfig(address="10.0.0.2/24", tcp=TCPSettings(challenge_ack_limit=100))
        stack = Stack(config, MemoryLink.pair()[0], ManualClock(), random.Random(seed))
        per_second_budget = []
        for second in range(50):
            allowed = sum(stack.tcp.allow_reply(second + i / 1000) for i in range(1000))
            per_second_budget.append(allowed)
        assert all(50 <= budget < 150 for budget in per_second_budget), per_second_budget
        assert len(set(per_second_budget)) > 10  # it varies
        budgets.append(per_second_budget)
    assert budgets[0] != budgets[1]  # keyed by the stack's own secret


# -- RSTs for no connection (RFC 9293 3.10.7.1) ------------------------------------------------
def test_syns_to_a_closed_port_get_a_bounded_number_of_resets() -> None:
    # 1,000 SYNs at 4,096 a second: the first 50 (the burst) answered at once, then 1,000 a
    # second (Linux's ICMP budget: icmp_msgs_burst, icmp_msgs_per_sec).
    times = storm_times(Fraction(1, 4096))
    which = token_bucket(times, int(DEFAULTS.reset_rate), DEFAULTS.reset_burst)
    replies = sum(which)
    assert all(which[: DEFAULTS.reset_burst])
    assert replies == DEFAULTS.reset_burst + 243  # 999/4096 s at 1,000 a second: 243.9 tokens
    run(
        storm_script(times, which, "S 1000:1000(0) win 65535", "R. 0:0(0) ack 1001 win 0")
        + f"""
        +0 expect drop TCP_NO_LISTENER {STORM}
        +0 expect counter tcp.reply_resets_sent {replies}
        +0 expect counter tcp.reply_resets_suppressed {STORM - replies}
        +0 expect counter tcp.resets_sent {replies}
        1 < S 1000:1000(0) win 65535              # the bucket has filled again
        +0 > R. 0:0(0) ack 1001 win 0
        end strict 1
        """
    )


def test_bad_acks_to_a_listener_share_the_reset_budget() -> None:
    settings = TCPSettings(reset_rate=4, reset_burst=2)
    times = storm_times(Fraction(1, 64), count=200)
    which = token_bucket(times, 4, 2)
    run(
        "0 listen 8080\n"
        + storm_script(times, which, ". 1000:1000(0) ack 77 win 65535", "R 77:77(0) win 0")
        + f"""
        +0 expect counter tcp.reply_resets_sent {sum(which)}
        +0 expect counter tcp.reply_resets_suppressed {200 - sum(which)}
        end strict 1
        """,
        tcp_settings=settings,
    )
    assert sum(which) == 2 + 12  # 3.1 s at 4 a second after the burst of 2
