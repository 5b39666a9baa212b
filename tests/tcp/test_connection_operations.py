"""The named operations through which the listener and the layer change a connection."""

from __future__ import annotations

import errno
import textwrap

import pytest

from pystack.script import ScriptRunner
from pystack.tcp.connection import TCPConnection
from pystack.tcp.layer import TCPLayer
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from pystack.wire.tcp import (
    ACK,
    SYN,
    TCPSegment,
    mss_option,
    sack_permitted_option,
    timestamp_option,
    wscale_option,
)

MOD = 1 << 32
LOCAL = ip_from_str("10.0.0.2")
REMOTE = ip_from_str("10.0.0.1")
LISTENER = object()  # stands for a TCPListener: the connection only keeps it


def make_layer() -> TCPLayer:
    layer = ScriptRunner(textwrap.dedent("0 listen 8080\n")).stack.tcp
    assert isinstance(layer, TCPLayer)
    return layer


def new_connection(layer: TCPLayer, iss: int) -> TCPConnection:
    connection = layer.new_connection((LOCAL, 8080), (REMOTE, 9000), 0.0, iss=iss)
    assert connection is not None
    return connection


@pytest.mark.parametrize(("iss", "irs"), [(5000, 7000), (MOD - 1, MOD - 1), (0, 0)])
def test_open_from_cookie_sets_one_consistent_sequence_space(iss: int, irs: int) -> None:
    layer = make_layer()
    connection = new_connection(layer, iss)
    ack = TCPSegment(9000, 8080, (irs + 1) % MOD, (iss + 1) % MOD, ACK, 1000)
    connection.open_from_cookie(ack, 1200, LISTENER, 0.5)
    assert connection.state is TCPState.ESTABLISHED
    assert connection.irs == irs and connection.rcv_nxt == (irs + 1) % MOD
    assert connection.snd_una == connection.snd_nxt == connection.snd_max == (iss + 1) % MOD
    assert connection.flight_size() == 0
    assert connection.snd_wnd == 1000 and connection.max_snd_wnd == 1000
    assert (connection.snd_wl1, connection.snd_wl2) == (ack.seq, ack.ack)
    assert connection.peer_mss == 1200 and connection.mss == 1200
    assert not (connection.timestamps or connection.sack or connection.snd_wscale)
    assert connection.passive and connection.listener is LISTENER
    assert connection.transitions[-1].cause == "valid SYN cookie"
    assert connection.outbox == []  # nothing to answer: the ACK completed the handshake
    connection.detach_listener()
    assert connection.listener is None


def test_open_from_cookie_refuses_an_ack_of_another_iss() -> None:
    connection = new_connection(make_layer(), 5000)
    with pytest.raises(ValueError, match="cookie ISS 5000"):
        connection.open_from_cookie(TCPSegment(9000, 8080, 1, 5002, ACK, 1000), 1200, None, 0.0)
    assert connection.state is TCPState.CLOSED


def test_open_passive_answers_the_syn_and_negotiates_its_options() -> None:
    connection = new_connection(make_layer(), 5000)
    options = (mss_option(1400), sack_permitted_option(), timestamp_option(77, 0), wscale_option(7))
    syn = TCPSegment(9000, 8080, MOD - 1, 0, SYN, 29200, b"", options)
    connection.open_passive(syn, LISTENER, 0.0)
    assert connection.state is TCPState.SYN_RECEIVED
    assert connection.irs == MOD - 1 and connection.rcv_nxt == 0  # across the wrap
    assert connection.snd_una == 5000 and connection.snd_nxt == connection.snd_max == 5001
    assert connection.snd_wnd == 29200  # a SYN's window is never scaled
    assert connection.snd_wscale == 7 and connection.rcv_wscale > 0
    assert connection.timestamps and connection.sack and connection.ts_recent == 77
    assert connection.peer_mss == 1400
    assert connection.passive and connection.listener is LISTENER
    [reply] = connection.outbox
    assert reply.flags == SYN | ACK and reply.seq == 5000 and reply.ack == 0
    assert connection.rcv_adv == reply.window  # the SYN-ACK's window, from RCV.NXT = 0


def test_open_passive_without_window_scale_offers_none() -> None:
    connection = new_connection(make_layer(), 5000)
    connection.open_passive(TCPSegment(9000, 8080, 100, 0, SYN, 65535), LISTENER, 0.0)
    assert connection.rcv_wscale == 0 and connection.snd_wscale == 0
    assert connection.peer_mss == 536  # RFC 9293 3.7.1 default without an MSS option


def test_lower_path_mss_goes_back_to_snd_una_and_never_below_the_minimum() -> None:
    layer = make_layer()
    connection = new_connection(layer, 5000)
    connection.open_from_cookie(TCPSegment(9000, 8080, 1, 5001, ACK, 65535), 1460, None, 0.0)
    connection.send(b"x" * 5000, 0.0)
    assert connection.segments_to_send(0.0)
    sent = connection.snd_max
    assert connection.snd_nxt == sent != connection.snd_una
    assert connection.lower_path_mss(1000)
    assert connection.mss_limit == 960 and connection.mss == 960
    assert connection.snd_nxt == connection.snd_una and connection.snd_max == sent
    assert layer.statistics.counters["tcp.path_mtu_lowered"] == 1
    assert not connection.lower_path_mss(1500)  # not smaller: nothing changes
    assert connection.lower_path_mss(100)  # 100 - 40 is below min_path_mss
    assert connection.mss_limit == layer.settings.min_path_mss == 88
    assert not connection.lower_path_mss(0)  # no next-hop MTU: the minimum, already there
    assert layer.statistics.counters["tcp.path_mtu_lowered"] == 2


def test_icmp_error_is_soft_except_a_hard_one_in_syn_sent() -> None:
    layer = make_layer()
    connection = layer.connect(REMOTE, 9000, 0.0)
    connection.icmp_error(errno.EHOSTUNREACH, False, "host unreachable", 0.1)
    assert connection.state is TCPState.SYN_SENT
    assert connection.soft_error == errno.EHOSTUNREACH and connection.error is None
    connection.icmp_error(errno.ECONNREFUSED, True, "port unreachable", 0.2)
    assert connection.state is TCPState.CLOSED and connection.error == errno.ECONNREFUSED
    assert connection.transitions[-1].cause == "ICMP port unreachable in SYN-SENT"


def test_a_hard_icmp_error_after_the_handshake_is_only_recorded() -> None:
    connection = new_connection(make_layer(), 5000)
    connection.open_from_cookie(TCPSegment(9000, 8080, 1, 5001, ACK, 65535), 1460, None, 0.0)
    connection.icmp_error(errno.ECONNREFUSED, True, "port unreachable", 0.1)
    assert connection.state is TCPState.ESTABLISHED
    assert connection.soft_error == errno.ECONNREFUSED and connection.error is None


def test_the_block_has_no_instance_dict() -> None:
    connection = new_connection(make_layer(), 5000)
    assert not hasattr(connection, "__dict__")
    with pytest.raises(AttributeError):
        connection.snd_nxtt = 1  # type: ignore[attr-defined]
