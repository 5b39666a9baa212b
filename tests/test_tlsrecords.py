"""RecordPump on its own: two pumps (a client and the simulated peer's server certificate) talk
through plain byte transports in memory, no stack involved."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest

from pystack.services.certs import CA_PEM
from pystack.services.tls import server_context
from pystack.tlsrecords import HEADER, BadRecord, RecordPump, WouldBlock


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(CA_PEM)
    return context


def pair() -> tuple[RecordPump, RecordPump]:
    client = RecordPump.wrap(client_context(), False, "peer.sim")
    server = RecordPump.wrap(server_context(), True)
    return client, server


def into(pump: RecordPump) -> Callable[[bytearray], int]:
    """A transport's send that delivers everything to ``pump`` at once."""

    def send(data: bytearray) -> int:
        pump.feed(bytes(data))
        return len(data)

    return send


def handshake(client: RecordPump, server: RecordPump) -> None:
    done = [False, False]
    for _ in range(10):
        done = [client.handshake_step(), server.handshake_step()]
        assert client.flush(into(server))
        assert server.flush(into(client))
        if all(done):
            return
    raise AssertionError(f"handshake stuck: {done}")


def test_handshake_steps_report_wanting_input_then_complete() -> None:
    client, server = pair()
    assert client.handshake_step() is False  # ClientHello queued, the answer needed
    assert client.outgoing_pending > 0
    assert server.handshake_step() is False  # nothing fed yet
    handshake(client, server)
    assert client.tls.version() in ("TLSv1.2", "TLSv1.3")
    assert client.tls.getpeercert()["subject"] == ((("commonName", "peer.sim"),),)


def test_data_both_ways_and_read_wants_input_when_empty() -> None:
    client, server = pair()
    handshake(client, server)
    assert server.read(100) is None
    assert client.write(b"hello") == 5
    client.flush(into(server))
    assert server.read(100) == b"hello"
    server.write(b"world")
    server.flush(into(client))
    assert client.read(3) == b"wor" and client.read(10) == b"ld"


def test_close_notify_reads_as_empty_and_bare_eof_as_an_error() -> None:
    client, server = pair()
    handshake(client, server)
    client.close_notify()
    client.close_notify()  # twice: never an error
    client.flush(into(server))
    assert server.read(10) == b""

    client, server = pair()
    handshake(client, server)
    server.feed_eof()
    assert server.eof_fed
    with pytest.raises(ssl.SSLEOFError):
        server.read(10)


def test_flush_with_a_limit_keeps_the_rest_and_take_or_discard_empties() -> None:
    client, server = pair()
    handshake(client, server)
    client.write(b"x" * 1000)
    total = client.outgoing_pending
    sent: list[int] = []

    def send(data: bytearray) -> int:
        sent.append(len(data))
        return len(data)

    assert client.flush(send, 100) is False
    assert sent == [100] and client.outgoing_pending == total - 100
    assert client.flush(lambda data: None) is False  # the transport would block
    assert client.outgoing_pending == total - 100
    assert len(client.take_outgoing()) == total - 100 and client.outgoing_pending == 0
    client.write(b"y")
    client.discard_outgoing()
    assert client.outgoing_pending == 0


def test_receive_record_asks_for_the_header_then_exactly_the_record() -> None:
    client, server = pair()
    client.handshake_step()
    hello = client.take_outgoing()
    asked: list[int] = []
    chunks = [hello[:3], None, hello[3:HEADER], hello[HEADER:]]

    def read(size: int) -> bytes | None:
        asked.append(size)
        return chunks.pop(0)

    assert server.receive_record(read) is False  # would block part-way: the part is kept
    assert server.receive_record(read) is True
    length = int.from_bytes(hello[3:5], "big")
    assert asked == [HEADER, HEADER - 3, HEADER - 3, length]
    assert server.incoming.pending == len(hello)


def test_receive_record_rejects_what_is_not_tls_and_takes_eof() -> None:
    _, server = pair()
    with pytest.raises(BadRecord):
        server.receive_record(lambda size: b"GET / HTTP/1.1\r\n"[:size])
    _, server = pair()
    assert server.receive_record(lambda size: b"") is True
    assert server.eof_fed and server.incoming.eof


def test_drive_blocks_in_the_direction_the_transport_needs() -> None:
    client, server = pair()
    with pytest.raises(WouldBlock) as blocked:  # the ClientHello cannot leave
        client.drive(client.tls.do_handshake, lambda data: None, lambda size: None, True)
    assert blocked.value.writing is True
    with pytest.raises(WouldBlock) as blocked:  # it left; the answer has not come
        client.drive(client.tls.do_handshake, into(server), lambda size: None, True)
    assert blocked.value.writing is False
    with pytest.raises(ssl.SSLEOFError):  # the transport ended before the answer
        client.drive(client.tls.do_handshake, into(server), lambda size: b"", True)


def test_drive_completes_a_handshake_and_a_read_over_stream_transports() -> None:
    client, server = pair()
    to_client = bytearray()

    def into_buffer(data: bytearray) -> int:
        to_client.extend(data)
        return len(data)

    def from_server(size: int) -> bytes | None:
        server.handshake_step()
        server.flush(into_buffer)
        if not to_client:
            return None
        data = bytes(to_client[:size])
        del to_client[:size]
        return data

    client.drive(client.tls.do_handshake, into(server), from_server, True)
    assert client.flush(into(server))  # the client's last flight
    assert server.handshake_step()
    server.write(b"ping")
    assert client.drive(lambda: client.tls.read(10), into(server), from_server, False) == b"ping"
