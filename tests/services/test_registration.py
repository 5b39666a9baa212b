"""The session services by name: ``parse_services``/``start_services`` (``pystack up --serve``)
and the simulated network's peer, which runs them all by default."""

from __future__ import annotations

import json

from pystack.services.http import HTTPService, HTTPSService
from pystack.services.mqtt import MQTTBroker
from pystack.services.stream import StreamService, parse_services, start_services
from pystack.services.tls import TLSEchoService
from pystack.sim.world import PEER_SERVICES, SimulatedNetwork
from tests.helpers.tcp_transfer import Network
from tests.services.clients import (
    Driver,
    client_context,
    http_request,
    mqtt_connect,
    read_response,
    split_packets,
)


def test_parse_services_knows_the_session_services() -> None:
    assert parse_services("http,https,tlsecho,mqtt") == [
        ("http", None),
        ("https", None),
        ("tlsecho", None),
        ("mqtt", None),
    ]


def test_start_services_puts_them_on_their_ports(net: Network) -> None:
    services = [
        s for s in start_services(net.a, "http,https,tlsecho,mqtt") if isinstance(s, StreamService)
    ]
    assert [(type(s), s.name, s.port) for s in services] == [
        (HTTPService, "http", 80),
        (HTTPSService, "https", 8443),
        (TLSEchoService, "tlsecho", 443),
        (MQTTBroker, "mqtt", 1883),
    ]
    assert {(0, 80), (0, 8443), (0, 443), (0, 1883)} <= set(net.a.tcp.listeners)
    assert services[1].tls is not None and services[2].tls is not None and services[0].tls is None


def test_the_simulated_peer_runs_them_by_default() -> None:
    for name in ("http", "https", "tlsecho", "mqtt"):
        assert name in PEER_SERVICES.split(",")
    network = SimulatedNetwork()  # (not started: no thread, nothing runs)
    try:
        ports = {port for _, port in network.peer.tcp.listeners}
        assert {7, 9, 13, 19, 80, 443, 1883, 8443} <= ports
    finally:
        network.close()


def test_every_peer_service_answers_at_once(net: Network, driver: Driver) -> None:
    services = start_services(net.a, PEER_SERVICES)
    web, secure, echo, broker = (
        driver.connect(80),
        driver.connect(8443, client_context()),
        driver.connect(443, client_context()),
        driver.connect(1883),
    )
    web.send(http_request("GET", "/json"))
    secure.send(http_request("GET", "/bytes/1000"))
    echo.send(b"ping")
    broker.send(mqtt_connect("all"))

    def answered() -> bool:
        return (
            b"}\n" in web.received
            and len(secure.received) > 1000
            and echo.received == b"ping"
            and len(broker.received) >= 4
        )

    assert driver.run_until(answered, 20.0)
    response = read_response(web.received)
    assert response is not None and json.loads(response.body)["ok"] is True
    secure_response = read_response(secure.received)
    assert secure_response is not None and len(secure_response.body) == 1000
    [connack] = split_packets(broker.received)
    assert connack.kind == 2 and connack.body == b"\x00\x00"
    for service in services:
        if isinstance(service, StreamService):
            service.close(net.sim.now)
    assert not [a for a in net.a.applications if a in services and isinstance(a, StreamService)]
