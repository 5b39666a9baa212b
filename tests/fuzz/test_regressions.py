"""pystack bugs the self-fuzzing campaign found, each kept as a test that failed before the fix."""

from __future__ import annotations

import pytest

from pystack.script import ScriptFailure, ScriptRunner, run_script

# Found by `pystack fuzz --self --seed 1` (case 167): a fragmentation-needed ICMP error quoting
# the SYN-ACK set SND.NXT back to SND.UNA (to resend at the smaller size); the ACK of the
# SYN-ACK then moved SND.UNA past SND.NXT, and the first data went out at the SYN's number.
PASSIVE_OPEN_AFTER_NEED_FRAG = """
0 listen 8080
+0 < S 0:0(0) win 65535 <mss 1460>
+0 > S. 0:0(0) ack 1 <...>
+0.1 < icmp unreachable need-frag mtu 296
+0.1 < . 1:1(0) ack 1 win 65535
+0 accept
+0 expect invariants
+0 write 100
+0 > P. 1:101(100) ack 1
"""

# The same in SYN-SENT: the SYN-ACK acknowledges the SYN that SND.NXT was set back before.
ACTIVE_OPEN_AFTER_NEED_FRAG = """
0 connect 10.0.0.1:9000
+0 > S 0:0(0) <...>
+0.1 < icmp unreachable need-frag mtu 296
+0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0 > . 1:1(0) ack 1
+0 expect invariants
+0 write 100
+0 > P. 1:101(100) ack 1
"""


@pytest.mark.parametrize("script", [PASSIVE_OPEN_AFTER_NEED_FRAG, ACTIVE_OPEN_AFTER_NEED_FRAG])
def test_the_ack_of_our_syn_pulls_snd_nxt_up(script: str) -> None:
    """SND.UNA <= SND.NXT after the handshake, and the first data byte is at 1, not 0."""
    run_script(script)


def test_expect_invariants_fails_on_a_broken_block() -> None:
    """The script check the reproducers rely on fails when SND.UNA passes SND.NXT."""
    result = run_script(PASSIVE_OPEN_AFTER_NEED_FRAG)
    connection = result.connection
    assert connection is not None
    connection.snd_nxt = (connection.snd_una - 1) & 0xFFFFFFFF  # what the bug left
    with pytest.raises(ScriptFailure, match=r"SND\.UNA \d+ is beyond SND\.NXT"):
        ScriptRunner("expect invariants", stack=result.stack, wire=result.wire).run()


# Found by `pystack fuzz --self --seed 100` (case 2376, after a SYN flood made the listener send
# cookies): an ACK whose number claims a cookie made up to two periods before the clock's
# counter began (virtual time starts at 0) made the cookie check pack a negative counter:
# `struct.error` escaped the stack. Such a cookie is forged; it is dropped like any other.
COOKIE_FROM_BEFORE_TIME_ZERO = """
ignore outbound
0 listen 8080
+10 < . 1:1(0) ack 4160749569 win 65535
+0 expect invariants
"""


def test_a_cookie_from_before_time_zero_is_forged_not_a_crash() -> None:
    runner = ScriptRunner(COOKIE_FROM_BEFORE_TIME_ZERO)
    runner.step()  # ignore outbound
    runner.step()  # listen
    listener = next(iter(runner.stack.tcp.listeners.values()))
    listener.cookies_sent = 1  # as after a SYN flood: ACKs to the listener are cookie checked
    runner.run()
    assert runner.stack.tcp.connections == {}
    assert not listener.accept_queue


def test_check_cookie_rejects_a_counter_before_zero() -> None:
    import random

    from pystack.tcp.isn import SequenceGenerator

    generator = SequenceGenerator(random.Random(1))
    cookie = 31 << 27 | 0x123456  # counter 31: with the clock at counter 0, "one step old"
    assert generator.check_cookie(cookie, 1, 8080, 2, 9000, 5, now=10.0) is None
