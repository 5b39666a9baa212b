"""TLS over pystack TCP: the TLS echo service driven by a CPython ``SSLObject`` client.

The client verifies the server against the test CA (``ca.pem``) for the name ``peer.sim``, as a
real client of the simulated network would. Errors (no TLS at all, a client that refuses the
certificate) must close the connection and be counted, never raise out of ``Stack.poll``.
"""

from __future__ import annotations

import ssl

import pytest

from pystack.services.session import PlainStream
from pystack.services.tls import OUTGOING_LIMIT, TLSEchoService, TLSStream, server_context
from pystack.tcp.state import TCPState
from tests.helpers.tcp_transfer import Network, pattern
from tests.services.clients import Driver, client_context


def _echo(net: Network) -> TLSEchoService:
    service = TLSEchoService(net.a)
    net.a.add_application(service)
    return service


def test_tls_echo_verifies_peer_sim_and_echoes_a_line(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    assert client.handshake_done and client.tls_error is None
    assert client.tls is not None and client.tls.version() in ("TLSv1.2", "TLSv1.3")
    assert client.tls.getpeercert()["subject"] == ((("commonName", "peer.sim"),),)
    client.send(b"hello, tls\r\n")
    assert driver.run_until(lambda: len(client.received) >= 12, 10.0)
    assert client.take() == b"hello, tls\r\n"
    assert service.events["tls_handshakes"] == 1
    assert net.a.statistics()["counters"]["tlsecho.tls_handshakes"] == 1


def test_tls_echo_closes_with_close_notify_after_the_client_does(
    net: Network, driver: Driver
) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    client.send(b"bye")
    assert driver.run_until(lambda: len(client.received) == 3, 10.0)
    client.close_notify()
    assert driver.run_until(lambda: client.tls_closed and client.connection.at_eof, 10.0)
    client.close()
    assert driver.run_until(lambda: client.state is TCPState.CLOSED, 200.0)
    assert service.sessions == {} and service.events["tls_errors"] == 0


def test_tls_echo_returns_a_megabyte_through_flow_control(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    data = pattern(1_000_000, "tls echo")
    client.send(data)
    assert driver.run_until(lambda: len(client.received) >= len(data), 100.0)
    assert client.take() == data
    assert service.bytes_in == service.bytes_out == len(data)


def test_a_client_that_expects_another_name_fails_and_the_server_counts_it(
    net: Network, driver: Driver
) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context(), hostname="wrong.example")
    assert isinstance(client.tls_error, ssl.SSLCertVerificationError)
    client.close()
    assert driver.run_until(lambda: not service.sessions, 100.0)
    assert service.events["tls_errors"] == 1 and service.events["tls_handshakes"] == 0


def test_plaintext_to_the_tls_port_is_counted_and_closed(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443)  # no TLS on our side
    client.send(b"GET / HTTP/1.1\r\nHost: peer.sim\r\n\r\n")
    assert driver.run_until(lambda: client.connection.at_eof, 10.0)
    assert service.events["tls_errors"] == 1
    client.close()
    assert driver.run_until(lambda: client.state is TCPState.CLOSED, 200.0)
    assert net.a.statistics()["counters"]["tlsecho.tls_errors"] == 1


def test_a_fin_without_close_notify_is_a_truncated_stream(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    client.send(b"x")
    assert driver.run_until(lambda: client.received == b"x", 10.0)
    client.connection.shutdown(net.sim.now)  # TCP FIN, no close_notify
    assert driver.run_until(lambda: client.tls_closed or client.connection.at_eof, 10.0)
    assert service.events["tls_truncated"] == 1 and service.events["tls_errors"] == 0


def test_a_client_that_never_finishes_the_handshake_holds_no_data(
    net: Network, driver: Driver
) -> None:
    service = _echo(net)
    client = driver.connect(443)
    client.send(b"\x16\x03\x01")  # the start of a record, never completed
    driver.run_for(1.0)
    [session] = service.sessions.values()
    stream = session.stream
    assert isinstance(stream, TLSStream) and not stream.handshake_done
    assert stream.send_room == 0 and stream.readable == 0


def test_tls_stream_bounds_what_the_application_may_queue(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    [session] = service.sessions.values()
    stream = session.stream
    assert isinstance(stream, TLSStream)
    assert driver.run_until(lambda: stream.handshake_done, 10.0)  # (the client finishes first)
    assert 0 < stream.send_room <= OUTGOING_LIMIT
    assert stream.send(b"z" * (2 * OUTGOING_LIMIT), net.sim.now) <= OUTGOING_LIMIT
    assert client.tls_error is None


def test_server_context_defaults_to_the_peer_certificate() -> None:
    context = server_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.num_tickets == 0
    assert not isinstance(PlainStream, TLSStream)


def test_a_handshake_that_does_not_finish_in_time_is_closed(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443)
    client.send(b"\x16\x03\x01")
    start = net.sim.now
    assert driver.run_until(lambda: client.connection.at_eof, 30.0)
    assert 10.0 <= net.sim.now - start <= 10.5
    assert service.events["handshake_timeouts"] == 1 and service.events["timeouts"] == 0


def test_an_idle_echo_connection_is_closed_after_five_minutes(net: Network, driver: Driver) -> None:
    service = _echo(net)
    client = driver.connect(443, client_context())
    driver.run_for(299.0)
    assert not client.at_eof
    assert driver.run_until(lambda: client.tls_closed, 10.0)
    assert service.events["timeouts"] == 1


def test_an_exception_in_a_session_resets_only_that_connection(
    net: Network, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _echo(net)
    healthy = driver.connect(443, client_context())
    doomed = driver.connect(443, client_context())
    [_, doomed_session] = service.sessions.values()

    def broken(now: float) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(doomed_session, "step", broken)
    doomed.send(b"x")
    assert driver.run_until(lambda: doomed.state is TCPState.CLOSED, 10.0)
    assert isinstance(service.last_exception, RuntimeError)
    healthy.send(b"still here")
    assert driver.run_until(lambda: healthy.received == b"still here", 10.0)
    service.events["internal_errors"] = 0  # (expected here; the fixture checks the stack's)
    net.a.counters.counters["tlsecho.internal_errors"] = 0
