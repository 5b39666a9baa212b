"""ICMP errors about TCP: hard and soft errors (RFC 5461, RFC 1122 4.2.3.9), path MTU discovery
(RFC 1191) and the sequence check on the quoted segment (RFC 5927).

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/icmp/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

import errno

import pytest

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import connection_of, transitions

REFUSED, UNREACHABLE = errno.ECONNREFUSED, errno.EHOSTUNREACH  # as tcp_info's soft_error


@pytest.mark.parametrize("code", ["port", "protocol"])
def test_syn_sent_icmp_unreachable_aborts_econnrefused(code: str) -> None:
    result = run(f"""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < icmp unreachable {code}
        +0 expect state CLOSED
        +0 expect error ECONNREFUSED
        +0 expect counter tcp.icmp_errors 1
        end strict 10                             # no more SYNs
    """)
    cause = transitions(connection_of(result))[-1][3]
    assert cause.startswith("ICMP ") and cause.endswith(" in SYN-SENT")


def test_syn_sent_icmp_port_unreachable_soft_when_not_aborting() -> None:
    run(
        f"""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < icmp unreachable port
        +0 expect state SYN-SENT                  # icmp_aborts_syn_sent=False: keep trying
        +0 expect error none
        +0 expect info soft_error {REFUSED}
        +0.9 > S 0:0(0) <...>
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        """,
        tcp_settings=TCPSettings(icmp_aborts_syn_sent=False),
    )


def test_syn_sent_soft_error_reported_when_the_open_times_out() -> None:
    # RFC 1122 4.2.3.9: a soft error is kept and told to the user if the connection then fails.
    run(
        f"""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < icmp unreachable host
        +0 expect state SYN-SENT
        +0 expect info soft_error {UNREACHABLE}
        +0.9 > S 0:0(0) <...>
        +2 expect state CLOSED                    # syn_retries 1: gone at 3 s
        +0 expect error EHOSTUNREACH              # rather than ETIMEDOUT
        """,
        tcp_settings=TCPSettings(syn_retries=1),
    )
