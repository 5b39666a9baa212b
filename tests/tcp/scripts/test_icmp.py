"""ICMP errors about TCP: hard and soft errors (RFC 5461, RFC 1122 4.2.3.9), path MTU discovery
(RFC 1191) and the sequence check on the quoted segment (RFC 5927)."""

from __future__ import annotations

import errno

import pytest

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN, connection_of, transitions

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


def test_established_icmp_host_unreachable_is_soft() -> None:
    run(
        PASSIVE_OPEN
        + f"""
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.1 < icmp unreachable host
        +0 expect state ESTABLISHED
        +0 expect error none
        +0 expect info soft_error {UNREACHABLE}
        +0.9 > . 1:101(100) ack 1                 # the retransmission timer goes on as before
        +0.01 < . 1:1(0) ack 101 win 65535
        +0 expect info unacked 0
        """
    )


def test_established_icmp_port_unreachable_is_soft_too() -> None:
    # RFC 5461 4.1: in synchronized states hard errors are handled as soft ones.
    run(
        PASSIVE_OPEN
        + f"""
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.1 < icmp unreachable port
        +0 expect state ESTABLISHED
        +0 expect error none
        +0 expect info soft_error {REFUSED}
        """
    )


def test_established_icmp_fragmentation_needed_lowers_the_mss() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0 write 2920
        +0 > . 1:1461(1460) ack 1
        +0 > P. 1461:2921(1460) ack 1
        +0.01 < icmp unreachable need-frag mtu 1000   # quotes the second segment
        +0 > . 1:961(960) ack 1                   # resent at once in the smaller size
        +0 > . 961:1921(960) ack 1
        +0 > . 1921:2881(960) ack 1
        +0 expect counter tcp.path_mtu_lowered 1
        +0 expect info mss 960                    # RFC 1191: 1000 - 40 bytes of headers
        +0.01 < . 1:1(0) ack 2881 win 65535
        +0 > P. 2881:2921(40) ack 1
        +0.01 < . 1:1(0) ack 2921 win 65535
        +0 write 1000                             # new data: smaller segments from now on
        +0 > . 2921:3881(960) ack 1
        +0.01 < . 1:1(0) ack 3881 win 65535       # (Nagle holds the small rest until then)
        +0 > P. 3881:3921(40) ack 1
        """
    )


def test_established_icmp_fragmentation_needed_never_raises_the_mss() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.01 < icmp unreachable need-frag mtu 9000
        +0 expect info mss 1460
        +0 expect counter tcp.path_mtu_lowered 0
        +0.01 < . 1:1(0) ack 101 win 65535
        """
    )


def test_established_icmp_quoting_acknowledged_sequence_dropped() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.01 < . 1:1(0) ack 101 win 65535        # SND.UNA = SND.MAX = 101
        +0 < icmp unreachable need-frag mtu 1000  # quotes seq 1: outside SND.UNA..SND.MAX
        +0 expect drop TCP_ICMP_BAD_SEQUENCE 1
        +0 expect counter tcp.icmp_errors 0
        +0 expect info mss 1460
        +0 < icmp unreachable host
        +0 expect drop TCP_ICMP_BAD_SEQUENCE 2
        +0 expect info soft_error None
        """
    )
