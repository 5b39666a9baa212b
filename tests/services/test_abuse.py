"""The session services under abuse, on virtual time: slow or silent clients holding every slot
must not keep a legitimate client out (phase deadlines and least-progress eviction,
``session.py``), and every malformed request is answered and closed within a bound.

Each attack is bounded in clients and virtual seconds; the services run on host ``a`` with
their default limits (64 slots), the clients on ``b``.
"""

from __future__ import annotations

import json
import ssl

import pytest

from pystack.services.http import HEAD_TIMEOUT, HTTPService, HTTPSService
from pystack.services.mqtt import MQTTBroker
from pystack.services.session import MAX_CONNECTIONS, Phase
from pystack.services.tls import TLSEchoService
from pystack.tcp.state import TCPState
from tests.helpers.tcp_transfer import Network
from tests.services.clients import (
    Client,
    Driver,
    HTTPResponse,
    client_context,
    http_request,
    mqtt_connect,
    mqtt_publish,
    mqtt_subscribe,
    read_response,
    split_packets,
)

SLOW_CLIENTS = 100  # more than the 64 slots
TRICKLE = 3.0  # seconds between the bytes of a slowloris client
SLOW_HEAD = b"GET /json HTTP/1.1\r\nHost: peer.sim\r\nX-Padding: " + b"a" * 4000


def _http(net: Network, **options: object) -> HTTPService:
    service = HTTPService(net.a, **options)  # type: ignore[arg-type]
    net.a.add_application(service)
    return service


def _response(driver: Driver, client: Client, timeout: float = 10.0) -> HTTPResponse | None:
    found: list[HTTPResponse] = []

    def ready() -> bool:
        response = read_response(client.received, eof=client.at_eof)
        if response is not None:
            found.append(response)
        return bool(found) or client.state is TCPState.CLOSED

    driver.run_until(ready, timeout)
    return found[0] if found else None


def _get_json(driver: Driver, port: int = 80, tls: ssl.SSLContext | None = None) -> int:
    """A legitimate client: connect, GET /json, read the answer; its status (0: none)."""
    client = driver.connect(port, tls)
    client.send(http_request("GET", "/json", {"Connection": "close"}))
    response = _response(driver, client)
    driver.clients.remove(client)
    if response is None:
        return 0
    assert json.loads(response.body)["ok"] is True
    return response.status


class Slowloris:
    """``count`` clients that each send one byte of a request head every ``TRICKLE`` seconds
    and, like the attack tool, reconnect at once when the server drops them."""

    def __init__(self, driver: Driver, port: int, count: int) -> None:
        self.driver, self.port = driver, port
        self.clients = [self._open() for _ in range(count)]
        self.sent = [0] * count
        self.reconnects = 0

    def _open(self) -> Client:
        client = Client(self.driver.net, self.port)
        self.driver.clients.append(client)
        return client

    def trickle(self) -> None:
        for index, client in enumerate(self.clients):
            if client.state in (TCPState.CLOSED, TCPState.CLOSE_WAIT, TCPState.TIME_WAIT):
                self.driver.clients.remove(client)
                client.connection.abort(self.driver.net.sim.now)
                self.clients[index], self.sent[index] = self._open(), 0
                self.reconnects += 1
            elif client.state is TCPState.ESTABLISHED:
                offset = self.sent[index] % len(SLOW_HEAD)
                client.send(SLOW_HEAD[offset : offset + 1])
                self.sent[index] += 1


# -- slowloris ------------------------------------------------------------------------------------
def test_slowloris_holding_every_slot_does_not_keep_get_json_out(
    net: Network, driver: Driver
) -> None:
    http = _http(net)
    attack = Slowloris(driver, 80, SLOW_CLIENTS)
    driver.run_for(1.0)
    assert len(http.sessions) == MAX_CONNECTIONS  # every slot is taken by a slow head
    statuses = []
    for _ in range(4):  # 4 attempts spread over 4 x 4 trickle periods
        for _ in range(4):
            attack.trickle()
            driver.run_for(TRICKLE)
        assert len(http.sessions) >= MAX_CONNECTIONS - 1
        statuses.append(_get_json(driver))
    assert statuses == [200, 200, 200, 200]
    # The slow heads were dropped to make room (36 more than the slots keep reconnecting).
    assert http.events["evicted"] > 0 and http.refused == 0
    assert attack.reconnects > 0
    longest = max(
        net.sim.now - s.opened_at for s in http.sessions.values() if s.phase is Phase.OPENING
    )
    assert longest <= HEAD_TIMEOUT + TRICKLE  # nobody held a slot past the head deadline


def test_a_head_deadline_is_a_total_that_trickling_does_not_extend(
    net: Network, driver: Driver
) -> None:
    http = _http(net)
    client = driver.connect(80)
    start = net.sim.now
    for index in range(20):  # one byte a second: each arrives well inside any per-byte timeout
        client.send(SLOW_HEAD[index : index + 1])
        driver.run_for(1.0)
        if client.at_eof:
            break
    response = read_response(client.received)
    assert response is not None and response.status == 408
    assert HEAD_TIMEOUT <= net.sim.now - start <= HEAD_TIMEOUT + 1.0
    assert http.events["timeouts"] == 1


def test_a_slow_body_is_cut_off_at_the_minimum_rate(net: Network, driver: Driver) -> None:
    http = _http(net, body_timeout=5.0, body_rate=100.0)
    client = driver.connect(80)
    client.send(http_request("POST", "/status/200", {"Content-Length": "100000"}))
    response = _response(driver, client)  # (the route does not read the body: answered at once)
    assert response is not None and response.status == 200
    start = net.sim.now
    for _ in range(60):  # 10 bytes a second: a tenth of the minimum rate
        client.send(b"x" * 10)
        driver.run_for(1.0)
        if client.at_eof:
            break
    assert client.at_eof
    assert 5.0 <= net.sim.now - start <= 7.0  # 5 s, plus the 0.1 s each 10 bytes bought
    assert http.events["body_timeouts"] == 1


def test_a_body_at_the_minimum_rate_is_read_to_the_end(net: Network, driver: Driver) -> None:
    http = _http(net, body_timeout=5.0, body_rate=100.0)
    client = driver.connect(80)
    body = bytes(range(256)) * 12  # 3072 bytes, sent at 150 bytes a second
    client.send(http_request("POST", "/echo", {"Content-Length": str(len(body))}))
    for offset in range(0, len(body), 150):
        client.send(body[offset : offset + 150])
        driver.run_for(1.0)
    response = _response(driver, client)
    assert response is not None and response.status == 200 and response.body == body
    assert http.events["body_timeouts"] == 0


# -- abandoned TLS handshakes -------------------------------------------------------------------
def _client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname="peer.sim")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_abandoned_handshakes_do_not_block_a_legitimate_tls_client(
    net: Network, driver: Driver
) -> None:
    echo = TLSEchoService(net.a)
    https = HTTPSService(net.a)
    net.a.add_application(echo)
    net.a.add_application(https)
    hello = _client_hello()
    assert hello[:1] == b"\x16"
    # A ClientHello each, then nothing more (the driver stops pumping them after a second).
    abandoned = [Client(net, port) for port in (443, 8443) for _ in range(SLOW_CLIENTS)]
    for client in abandoned:
        client.send(hello)
    driver.clients += abandoned
    driver.run_for(1.0)
    driver.clients = []
    assert len(echo.sessions) == len(https.sessions) == MAX_CONNECTIONS
    legit = driver.connect(443, client_context())
    assert legit.handshake_done and legit.tls_error is None
    legit.send(b"still served\n")
    assert driver.run_until(lambda: legit.received == b"still served\n", 5.0)
    assert _get_json(driver, 8443, client_context()) == 200
    assert echo.events["evicted"] > 0 and https.events["evicted"] > 0
    assert echo.refused == https.refused == 0
    driver.run_for(15.0)  # the rest of the abandoned handshakes time out
    assert echo.events["handshake_timeouts"] > 0 and https.events["handshake_timeouts"] > 0
    assert legit.state is TCPState.ESTABLISHED


# -- idle MQTT floods ---------------------------------------------------------------------------
def _mqtt(driver: Driver, client_id: str, keepalive: int) -> Client:
    client = driver.connect(1883)
    client.send(mqtt_connect(client_id, keepalive=keepalive))
    assert driver.run_until(lambda: len(client.received) >= 4, 5.0)
    assert bytes(client.received[:4]) == b"\x20\x02\x00\x00"
    del client.received[:4]
    return client


def test_an_idle_connect_flood_does_not_reset_a_legitimate_client(
    net: Network, driver: Driver
) -> None:
    broker = MQTTBroker(net.a)
    net.a.add_application(broker)
    subscriber = _mqtt(driver, "legit-subscriber", keepalive=60)
    subscriber.send(mqtt_subscribe(1, [("legit/#", 0)]))
    assert driver.run_until(lambda: len(subscriber.received) >= 5, 5.0)
    subscriber.received.clear()
    flood = []
    for number in range(70):  # CONNECT with keepalive 0, then silence
        flood.append(_mqtt(driver, f"idle-{number}", keepalive=0))
        driver.run_for(0.1)  # (a CONNACK not yet acknowledged is data in flight: kept)
    assert len(broker.sessions) == MAX_CONNECTIONS
    publisher = _mqtt(driver, "legit-publisher", keepalive=60)
    publisher.send(mqtt_publish("legit/t", b"through the flood"))
    assert driver.run_until(lambda: bool(split_packets(bytearray(subscriber.received))), 5.0)
    [packet] = split_packets(subscriber.received)
    assert packet.publish[:2] == ("legit/t", b"through the flood")
    assert subscriber.state is TCPState.ESTABLISHED and publisher.state is TCPState.ESTABLISHED
    assert broker.events["evicted"] >= 7 and broker.refused == 0
    assert sum(client.state is TCPState.CLOSED for client in flood) >= 7


# -- malformed requests -------------------------------------------------------------------------
MALFORMED = [
    # (request bytes, status, counter): status None means closed at once without an answer
    pytest.param(b"\r\n\r\n\r\n", 400, "bad_requests", id="empty-request-lines"),
    pytest.param(b"\n\n\n", 400, "bad_requests", id="empty-bare-lf-lines"),
    pytest.param(b" \r\n\r\n", 400, "bad_requests", id="blank-request-line"),
    pytest.param(b"hello\n\n", 400, "bad_requests", id="bare-lf-garbage"),
    pytest.param(b"hello\r\n", 400, "bad_requests", id="garbage-line-no-blank-line"),
    pytest.param(b"GET /json\n", 400, "bad_requests", id="two-part-line-bare-lf"),
    pytest.param(b"GET /json HTTP/1.1\n\n", 400, "bad_requests", id="bare-lf-no-host"),
    pytest.param(b"GET /json HTTP/2.0\r\nHost: a\r\n\r\n", 505, "bad_requests", id="http-2"),
    pytest.param(b"GET /json HTTP/3.0\r\n", 505, "bad_requests", id="http-3-line-only"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "bad_requests", id="h2-preface"),
    pytest.param(b"GET /" + b"a" * 9000, 414, "bad_requests", id="endless-line"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 20000, 431, "bad_requests", id="huge-head"
    ),
    pytest.param(_client_hello(), None, "tls_rejected", id="tls-client-hello-on-port-80"),
    pytest.param(b"\x16\x03\x01\x00\x05hello", None, "tls_rejected", id="tls-record-on-port-80"),
]


@pytest.mark.parametrize(("request_bytes", "status", "event"), MALFORMED)
def test_every_malformed_request_is_answered_and_closed_at_once(
    net: Network, driver: Driver, request_bytes: bytes, status: int | None, event: str
) -> None:
    http = _http(net)
    client = driver.connect(80)
    start = net.sim.now
    client.send(request_bytes)
    assert driver.run_until(lambda: client.at_eof, 5.0), "neither answered nor closed"
    assert net.sim.now - start < 1.0  # at once, not at a deadline
    response = read_response(client.received)
    if status is None:
        assert response is None and not client.received
    else:
        assert response is not None and response.status == status
        assert response.header("Connection") == "close"
    assert http.events[event] == 1


# Well-framed requests the server does not serve: answered at once; the framing is intact, so
# the connection stays open for the next request (RFC 9112 9.3).
UNSERVED = [
    pytest.param(b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="unknown-method"),
    pytest.param(b"get /json HTTP/1.1\nHost: a\n\n", 501, id="lower-case-method-bare-lf"),
    pytest.param(b"DELETE /json HTTP/1.1\r\nHost: a\r\n\r\n", 405, id="not-allowed"),
    pytest.param(b"GET /json HTTP/1.1\nHost: a\n\n", 200, id="bare-lf-accepted"),
]


@pytest.mark.parametrize(("request_bytes", "status"), UNSERVED)
def test_a_well_framed_request_is_answered_at_once_and_the_connection_kept(
    net: Network, driver: Driver, request_bytes: bytes, status: int
) -> None:
    http = _http(net)
    client = driver.connect(80)
    start = net.sim.now
    client.send(request_bytes)
    response = _response(driver, client, 5.0)
    assert response is not None and response.status == status
    assert net.sim.now - start < 1.0
    assert client.state is TCPState.ESTABLISHED and http.events["requests"] == 1
    client.send(http_request("GET", "/json"))
    follow = _response(driver, client, 5.0)
    assert follow is not None and follow.status == 200


@pytest.mark.parametrize(
    "request_bytes",
    [b"\r\n", b"\n\n", b"GET /json HTTP/1.1\n", b"BREW /pot HTTP/1.1\r\nHost: a\r\n"],
    ids=["one-empty-line", "two-bare-lf-lines", "line-without-head-end", "unknown-method-open"],
)
def test_an_unfinished_request_is_answered_408_at_the_head_deadline(
    net: Network, driver: Driver, request_bytes: bytes
) -> None:
    http = _http(net)
    client = driver.connect(80)
    start = net.sim.now
    client.send(request_bytes)
    assert driver.run_until(lambda: client.at_eof, 2 * HEAD_TIMEOUT)
    assert HEAD_TIMEOUT - 0.5 <= net.sim.now - start <= HEAD_TIMEOUT + 1.0
    response = read_response(client.received)
    assert response is not None and response.status == 408
    assert http.events["timeouts"] == 1


def test_a_silent_connection_is_closed_at_the_head_deadline_without_an_answer(
    net: Network, driver: Driver
) -> None:
    http = _http(net)
    client = driver.connect(80)
    assert driver.run_until(lambda: client.at_eof, 2 * HEAD_TIMEOUT)
    assert not client.received and http.events["idle_closed"] == 1


# -- eviction order -----------------------------------------------------------------------------
def test_eviction_takes_the_least_progress_first_and_never_an_active_transfer(
    net: Network, driver: Driver
) -> None:
    http = _http(net, max_connections=5)
    active = driver.connect(80)
    active.send(http_request("GET", "/bytes/50000000"))  # a transfer the client stalls
    driver.run_until(lambda: bool(active.received), 5.0)
    driver.clients.remove(active)
    busy = driver.connect(80)  # two requests served: the most progress
    for _ in range(2):
        busy.send(http_request("GET", "/json"))
        assert _response(driver, busy) is not None
    once = driver.connect(80)  # one request served
    once.send(http_request("GET", "/json"))
    assert _response(driver, once) is not None
    older, newer = driver.connect(80), driver.connect(80)  # still inside their request heads
    older.send(b"GET /json HTTP/1.1\r\nHo")
    driver.run_for(1.0)
    newer.send(b"GET /json HTTP/1.1\r\nHo")
    driver.run_for(1.0)
    closed: list[Client] = []

    def newcomer() -> Client:
        before = {c for c in (active, busy, once, older, newer) if c.state is TCPState.CLOSED}
        client = driver.connect(80)
        driver.run_for(0.5)
        now_closed = {c for c in (active, busy, once, older, newer) if c.state is TCPState.CLOSED}
        closed.extend(now_closed - before)
        return client

    first, second = newcomer(), newcomer()
    assert closed == [older, newer]  # half-open, oldest first
    for client in (first, second):
        client.send(http_request("GET", "/json"))
        assert _response(driver, client) is not None
    newcomer()
    assert closed == [older, newer, once]  # then the least progress (first and second are newer)
    assert active.state is TCPState.ESTABLISHED and busy.state is TCPState.ESTABLISHED
    assert http.evicted == 3 and http.refused == 0
