"""Opening lines shared by the transfer tests: pystack listens on 8080 and the peer connects.

Each handshake completes at 0.1 s, so the first RTT sample is 0.1 s and the RTO is the 1 s
minimum. ``step_through`` drives a script line by line, for what the notation has no call for.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from pystack.script import ScriptResult, ScriptRunner
from pystack.tcp.settings import TCPSettings

# RACK-TLP off: losses found by counting duplicate ACKs (RFC 5681, RFC 6675), and no tail loss
# probe, so an RTO is what repairs a lost last segment. For the tests of that machinery.
DUPACK_RECOVERY = TCPSettings(rack_tlp=False)

# No options but the MSS: no SACK, no timestamps, no window scaling; windows as written.
PLAIN = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460>
    +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
    +0.1 < . 1:1(0) ack 1 win 65535
    +0 accept
"""

# SACK permitted, nothing else.
SACK = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460,sackOK>
    +0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,nop>
    +0.1 < . 1:1(0) ack 1 win 65535
    +0 accept
"""

# Everything: SACK, timestamps (the peer's clock reads 100 at the SYN, 200 at the ACK) and
# window scaling (the peer shifts by 7, so its win 512 is 65536; pystack shifts by 3, so its
# 256 KB buffer shows as win 32768). Segments carry 1460 - 12 = 1448 data bytes.
TIMESTAMPS = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
    +0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val * ecr 100,nop,wscale 3>
    +0.1 < . 1:1(0) ack 1 win 512 <nop,nop,TS val 200 ecr *>
    +0 accept
"""


def step_through(
    script: str,
    after: Mapping[str, Callable[[ScriptRunner], None]],
    **options: Any,
) -> ScriptResult:
    """Run ``script``; after the line whose text (comment included) ends with a key, call its hook."""
    runner = ScriptRunner(textwrap.dedent(script), **options)
    while (line := runner.step()) is not None:
        for suffix, hook in after.items():
            if line.text.endswith(suffix):
                hook(runner)
    return runner.result()
