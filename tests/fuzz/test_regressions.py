"""pystack bugs the self-fuzzing campaign found, each kept as a script that failed before the fix."""

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
