"""The MQTT 3.1.1 broker: connect, publish/subscribe at QoS 0 and 1, wildcards, retained
messages, the will, keepalive, session takeover, persistent sessions and bad packets.

Clients are raw pystack TCP connections on host ``b`` that send packets built in
``clients.py`` from the spec and split what comes back. Spec statement numbers (``3.1.4-2``)
are the normative ones of MQTT 3.1.1.
"""

from __future__ import annotations

import pytest

from pystack.services import mqtt
from pystack.services.mqtt import MQTTBroker
from pystack.services.mqtt_packets import Connect, MQTTError, fixed_header, parse_packet
from pystack.services.mqtt_topics import matches, split, valid_filter
from pystack.tcp.state import TCPState
from tests.helpers.tcp_transfer import Network
from tests.services.clients import (
    DISCONNECT,
    PINGREQ,
    Client,
    Driver,
    Received,
    mqtt_ack,
    mqtt_connect,
    mqtt_packet,
    mqtt_publish,
    mqtt_subscribe,
    mqtt_unsubscribe,
    split_packets,
)

CONNACK, PUBLISH, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK, PINGRESP = 2, 3, 4, 5, 7, 9, 11, 13


class MQTTClient:
    """One MQTT client connection, seen packet by packet."""

    def __init__(self, driver: Driver, client_id: str | None = None, **connect: object) -> None:
        self.driver = driver
        self.client: Client = driver.connect(1883)
        self.inbox: list[Received] = []
        if client_id is not None:
            self.send(mqtt_connect(client_id, **connect))  # type: ignore[arg-type]
            self.connack = self.next()

    def send(self, data: bytes) -> None:
        self.client.send(data)

    def _collect(self) -> None:
        self.inbox += split_packets(self.client.received)

    def next(self, timeout: float = 10.0) -> Received:
        def arrived() -> bool:
            self._collect()
            return bool(self.inbox)

        assert self.driver.run_until(arrived, timeout), "no packet arrived"
        return self.inbox.pop(0)

    def expect(self, kind: int, timeout: float = 10.0) -> Received:
        packet = self.next(timeout)
        assert packet.kind == kind, f"expected type {kind}, got {packet}"
        return packet

    def quiet(self, duration: float = 1.0) -> None:
        """Nothing arrives for ``duration`` seconds."""
        self.driver.run_for(duration)
        self._collect()
        assert self.inbox == [], self.inbox

    def subscribe(self, filters: list[tuple[str, int]], packet_id: int = 1) -> bytes:
        self.send(mqtt_subscribe(packet_id, filters))
        suback = self.expect(SUBACK)
        assert suback.body[:2] == packet_id.to_bytes(2, "big")
        return suback.body[2:]

    def closed(self, timeout: float = 20.0) -> bool:
        return self.driver.run_until(lambda: self.client.at_eof, timeout)


@pytest.fixture
def broker(net: Network) -> MQTTBroker:
    service = MQTTBroker(net.a)
    net.a.add_application(service)
    return service


def _messages(
    client: MQTTClient, count: int
) -> list[tuple[str, bytes, int, bool, bool, int | None]]:
    return [client.expect(PUBLISH).publish for _ in range(count)]


# -- CONNECT ------------------------------------------------------------------------------------
def test_connect_is_answered_with_connack_accepted(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver, "sensor-1")
    assert client.connack.body == b"\x00\x00"  # no session present, accepted
    assert broker.events["connects"] == 1 and "sensor-1" in broker.clients


def test_connect_with_user_name_and_password_is_accepted(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver, "u", username="alice", password=b"secret")
    assert client.connack.body == b"\x00\x00"


def test_an_empty_client_id_with_clean_session_gets_one_assigned(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver, "", clean=True)
    assert client.connack.body == b"\x00\x00"
    [client_id] = broker.clients
    assert client_id.startswith("pystack-")


def test_an_empty_client_id_without_clean_session_is_refused(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver, "", clean=False)
    assert client.connack.body == b"\x00\x02"  # 3.1.3-8: identifier rejected
    assert client.closed()
    assert broker.events["refused_identifier"] == 1


@pytest.mark.parametrize(("name", "level"), [("MQTT", 3), ("MQTT", 5), ("MQIsdp", 3)])
def test_another_protocol_level_is_refused_with_code_1(
    broker: MQTTBroker, driver: Driver, name: str, level: int
) -> None:
    client = MQTTClient(driver, "old", level=level, name=name)
    assert client.connack.body == b"\x00\x01"
    assert client.closed()


def test_a_packet_before_connect_closes_the_connection(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver)
    client.send(PINGREQ)
    assert client.closed()
    assert client.inbox == [] and broker.events["protocol_errors"] == 1


def test_a_second_connect_closes_the_connection(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver, "twice")
    client.send(mqtt_connect("twice"))
    assert client.closed()
    assert broker.events["protocol_errors"] == 1 and "twice" not in broker.clients


def test_a_connection_that_never_sends_connect_is_closed(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver)
    start = driver.net.sim.now
    assert client.closed(30.0)
    assert mqtt.CONNECT_TIMEOUT <= driver.net.sim.now - start <= mqtt.CONNECT_TIMEOUT + 1
    assert broker.events["connect_timeouts"] == 1


# -- publish and subscribe ---------------------------------------------------------------------
def test_qos0_publish_reaches_a_subscriber(broker: MQTTBroker, driver: Driver) -> None:
    subscriber, publisher = MQTTClient(driver, "sub"), MQTTClient(driver, "pub")
    assert subscriber.subscribe([("room/temperature", 0)]) == b"\x00"
    publisher.send(mqtt_publish("room/temperature", b"21.5"))
    topic, payload, qos, retain, dup, packet_id = subscriber.expect(PUBLISH).publish
    assert (topic, payload, qos, retain, dup, packet_id) == (
        "room/temperature",
        b"21.5",
        0,
        False,
        False,
        None,
    )
    publisher.quiet(0.5)  # QoS 0: no PUBACK


def test_qos1_publish_is_acknowledged_and_delivered_at_qos1(
    broker: MQTTBroker, driver: Driver
) -> None:
    subscriber, publisher = MQTTClient(driver, "sub"), MQTTClient(driver, "pub")
    assert subscriber.subscribe([("a/b", 1)]) == b"\x01"
    publisher.send(mqtt_publish("a/b", b"important", qos=1, packet_id=77))
    assert publisher.expect(PUBACK).body == (77).to_bytes(2, "big")
    topic, payload, qos, _, dup, packet_id = subscriber.expect(PUBLISH).publish
    assert (topic, payload, qos, dup) == ("a/b", b"important", 1, False)
    assert packet_id is not None and packet_id > 0
    [state] = [s for s in broker.clients.values() if s.client_id == "sub"]
    assert packet_id in state.inflight  # until the subscriber acknowledges it
    subscriber.send(mqtt_ack(PUBACK, packet_id))
    assert driver.run_until(lambda: not state.inflight, 10.0)


def test_delivery_qos_is_the_minimum_of_publish_and_subscription(
    broker: MQTTBroker, driver: Driver
) -> None:
    low, high, publisher = (
        MQTTClient(driver, "low"),
        MQTTClient(driver, "high"),
        MQTTClient(driver, "p"),
    )
    assert low.subscribe([("t", 0)]) == b"\x00"
    assert high.subscribe([("t", 2)]) == b"\x01"  # QoS 2 requested: 1 granted
    publisher.send(mqtt_publish("t", b"one", qos=1, packet_id=1))
    publisher.send(mqtt_publish("t", b"zero", qos=0))
    assert [m[2] for m in _messages(low, 2)] == [0, 0]
    assert [(m[1], m[2]) for m in _messages(high, 2)] == [(b"one", 1), (b"zero", 0)]


def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver, "both")
    assert client.subscribe([("x/+", 0), ("x/#", 1), ("x/y", 0)]) == b"\x00\x01\x00"
    client.send(mqtt_publish("x/y", b"once", qos=1, packet_id=5))
    assert client.expect(PUBACK)  # (our own publish: acknowledged...)
    [(topic, payload, qos, _, _, _)] = _messages(client, 1)  # (... and delivered to us once)
    assert (topic, payload, qos) == ("x/y", b"once", 1)
    client.quiet(0.5)


def test_messages_keep_their_order(broker: MQTTBroker, driver: Driver) -> None:
    subscriber, publisher = MQTTClient(driver, "s"), MQTTClient(driver, "p")
    subscriber.subscribe([("seq", 1)])
    for index in range(50):
        publisher.send(mqtt_publish("seq", str(index).encode(), qos=index % 2, packet_id=index + 1))
    received = _messages(subscriber, 50)
    assert [m[1] for m in received] == [str(i).encode() for i in range(50)]
    for message in received:
        if message[5] is not None:
            subscriber.send(mqtt_ack(PUBACK, message[5]))


def test_unsubscribe_stops_delivery(broker: MQTTBroker, driver: Driver) -> None:
    subscriber, publisher = MQTTClient(driver, "s"), MQTTClient(driver, "p")
    subscriber.subscribe([("news", 0)])
    subscriber.send(mqtt_unsubscribe(9, ["news", "never/subscribed"]))
    assert subscriber.expect(UNSUBACK).body == (9).to_bytes(2, "big")
    publisher.send(mqtt_publish("news", b"unheard"))
    subscriber.quiet(1.0)


def test_inbound_qos2_is_delivered_once_through_pubrec_pubrel_pubcomp(
    broker: MQTTBroker, driver: Driver
) -> None:
    subscriber, publisher = MQTTClient(driver, "s"), MQTTClient(driver, "p")
    subscriber.subscribe([("q2", 1)])
    publisher.send(mqtt_publish("q2", b"exactly once", qos=2, packet_id=3))
    assert publisher.expect(PUBREC).body == b"\x00\x03"
    publisher.send(mqtt_publish("q2", b"exactly once", qos=2, packet_id=3, dup=True))
    assert publisher.expect(PUBREC).body == b"\x00\x03"
    publisher.send(mqtt_ack(6, 3))  # PUBREL
    assert publisher.expect(PUBCOMP).body == b"\x00\x03"
    [message] = _messages(subscriber, 1)
    assert message[1] == b"exactly once" and message[2] == 1
    subscriber.quiet(0.5)


def test_pingreq_is_answered_with_pingresp(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver, "pinger")
    client.send(PINGREQ)
    assert client.expect(PINGRESP).body == b""


# -- wildcards -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sport/tennis/player1/#", "sport/tennis/player1", True),  # 4.7.1.2
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "anything/at/all", True),
        ("sport/tennis/+", "sport/tennis/player1", True),  # 4.7.1.3
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/tennis/#", "sport/tennis", True),
        ("#", "$SYS/uptime", False),  # 4.7.2-1
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("a/b", "a/B", False),
    ],
)
def test_topic_matching_follows_section_4_7(topic_filter: str, topic: str, expected: bool) -> None:
    assert valid_filter(topic_filter)
    assert matches(split(topic_filter), split(topic)) is expected


@pytest.mark.parametrize(
    "topic_filter", ["", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/#/", "+a"]
)
def test_invalid_filters(topic_filter: str) -> None:
    assert not valid_filter(topic_filter)


def test_wildcard_subscriptions_over_the_network(broker: MQTTBroker, driver: Driver) -> None:
    subscriber, publisher = MQTTClient(driver, "s"), MQTTClient(driver, "p")
    assert (
        subscriber.subscribe([("home/+/temperature", 0), ("alarm/#", 0), ("#", 0)]) == b"\x00" * 3
    )
    for topic in ("home/kitchen/temperature", "alarm", "alarm/door/open", "$SYS/load", "other"):
        publisher.send(mqtt_publish(topic, topic.encode()))
    received = [m[0] for m in _messages(subscriber, 4)]
    assert received == ["home/kitchen/temperature", "alarm", "alarm/door/open", "other"]
    subscriber.quiet(0.5)  # $SYS/load: not for "#"


def test_an_invalid_filter_gets_return_code_0x80(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver, "s")
    assert client.subscribe([("ok/+", 1), ("bad#", 0), ("also/#/bad", 1)]) == b"\x01\x80\x80"
    assert broker.events["bad_filters"] == 2


def test_subscriptions_beyond_the_limit_fail(broker: MQTTBroker, driver: Driver) -> None:
    client = MQTTClient(driver, "many")
    filters = [(f"t/{index}", 0) for index in range(mqtt.MAX_SUBSCRIPTIONS + 2)]
    codes = client.subscribe(filters)
    assert codes == b"\x00" * mqtt.MAX_SUBSCRIPTIONS + b"\x80\x80"
    assert client.subscribe([("t/0", 1)], packet_id=2) == b"\x01"  # replacing one still works


# -- retained messages -----------------------------------------------------------------------------
def test_a_retained_message_is_delivered_on_subscribe_with_the_retain_flag(
    broker: MQTTBroker, driver: Driver
) -> None:
    publisher = MQTTClient(driver, "p")
    publisher.send(mqtt_publish("status/door", b"closed", qos=1, retain=True, packet_id=1))
    publisher.expect(PUBACK)
    subscriber = MQTTClient(driver, "s")
    assert subscriber.subscribe([("status/+", 1)]) == b"\x01"  # SUBACK first, then the message
    topic, payload, qos, retain, _, _ = subscriber.expect(PUBLISH).publish
    assert (topic, payload, qos, retain) == ("status/door", b"closed", 1, True)


def test_a_live_retained_publish_reaches_subscribers_without_the_flag(
    broker: MQTTBroker, driver: Driver
) -> None:
    subscriber, publisher = MQTTClient(driver, "s"), MQTTClient(driver, "p")
    subscriber.subscribe([("r", 0)])
    publisher.send(mqtt_publish("r", b"now", retain=True))
    [(_, payload, _, retain, _, _)] = _messages(subscriber, 1)
    assert payload == b"now" and retain is False  # 3.3.1-9
    assert broker.retained["r"].payload == b"now"


def test_only_the_last_retained_message_is_kept_and_empty_deletes_it(
    broker: MQTTBroker, driver: Driver
) -> None:
    publisher = MQTTClient(driver, "p")
    publisher.send(mqtt_publish("k", b"first", retain=True))
    publisher.send(mqtt_publish("k", b"second", retain=True))
    publisher.send(mqtt_publish("gone", b"soon", retain=True))
    publisher.send(mqtt_publish("gone", b"", retain=True))  # 3.3.1-10
    publisher.send(PINGREQ)
    publisher.expect(PINGRESP)
    subscriber = MQTTClient(driver, "s")
    subscriber.subscribe([("#", 0)])
    [(topic, payload, _, retain, _, _)] = _messages(subscriber, 1)
    assert (topic, payload, retain) == ("k", b"second", True)
    subscriber.quiet(0.5)
    assert set(broker.retained) == {"k"}


def test_retained_messages_beyond_the_limit_are_not_kept(
    broker: MQTTBroker, driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mqtt, "MAX_RETAINED", 3)
    publisher = MQTTClient(driver, "p")
    for index in range(5):
        publisher.send(mqtt_publish(f"r/{index}", b"x", retain=True))
    publisher.send(mqtt_publish("r/0", b"replaced", retain=True))  # replacing is fine
    publisher.send(PINGREQ)
    publisher.expect(PINGRESP)
    assert set(broker.retained) == {"r/0", "r/1", "r/2"}
    assert broker.retained["r/0"].payload == b"replaced"
    assert broker.events["retained_dropped"] == 2


# -- the will -------------------------------------------------------------------------------------
def test_the_will_is_published_when_the_client_just_closes(
    broker: MQTTBroker, driver: Driver
) -> None:
    watcher = MQTTClient(driver, "watcher")
    watcher.subscribe([("clients/+/status", 1)])
    device = MQTTClient(driver, "device", will=("clients/device/status", b"offline", 1, False))
    device.client.close()  # a FIN, no DISCONNECT
    topic, payload, qos, _, _, _ = watcher.expect(PUBLISH).publish
    assert (topic, payload, qos) == ("clients/device/status", b"offline", 1)
    assert broker.events["wills"] == 1


def test_the_will_is_published_when_the_connection_is_reset(
    broker: MQTTBroker, driver: Driver
) -> None:
    watcher = MQTTClient(driver, "watcher")
    watcher.subscribe([("will", 0)])
    device = MQTTClient(driver, "device", will=("will", b"reset", 0, False))
    device.client.connection.abort(driver.net.sim.now)
    assert watcher.expect(PUBLISH).publish[1] == b"reset"


def test_the_will_is_not_published_after_disconnect(broker: MQTTBroker, driver: Driver) -> None:
    watcher = MQTTClient(driver, "watcher")
    watcher.subscribe([("will", 0)])
    device = MQTTClient(driver, "device", will=("will", b"never", 0, False))
    device.send(DISCONNECT)
    assert device.closed()  # the server closes after DISCONNECT
    watcher.quiet(1.0)
    assert broker.events["wills"] == 0 and broker.events["disconnects"] == 1
    assert "device" not in broker.clients


def test_a_retained_will_is_kept(broker: MQTTBroker, driver: Driver) -> None:
    device = MQTTClient(driver, "device", will=("last/words", b"bye", 0, True))
    device.client.close()
    assert driver.run_until(lambda: "last/words" in broker.retained, 10.0)
    late = MQTTClient(driver, "late")
    late.subscribe([("last/#", 0)])
    assert late.expect(PUBLISH).publish[:4] == ("last/words", b"bye", 0, True)


def test_the_will_is_published_on_a_protocol_error(broker: MQTTBroker, driver: Driver) -> None:
    watcher = MQTTClient(driver, "watcher")
    watcher.subscribe([("w", 0)])
    device = MQTTClient(driver, "device", will=("w", b"broken", 0, False))
    device.send(mqtt_publish("bad/+/topic", b"wildcard in a topic name"))
    assert device.closed()
    assert watcher.expect(PUBLISH).publish[1] == b"broken"


# -- keepalive ------------------------------------------------------------------------------------
def test_keepalive_expiry_closes_the_connection_and_publishes_the_will(
    broker: MQTTBroker, driver: Driver
) -> None:
    watcher = MQTTClient(driver, "watcher", keepalive=0)
    watcher.subscribe([("w", 0)])
    device = MQTTClient(driver, "device", keepalive=4, will=("w", b"silent", 0, False))
    start = driver.net.sim.now
    assert device.closed(30.0)
    assert 6.0 <= driver.net.sim.now - start <= 6.5  # 1.5 times the keepalive (3.1.2-24)
    assert watcher.expect(PUBLISH).publish[1] == b"silent"
    assert broker.events["keepalive_expired"] == 1


def test_pings_keep_a_connection_alive(broker: MQTTBroker, driver: Driver) -> None:
    device = MQTTClient(driver, "device", keepalive=4)
    for _ in range(5):
        driver.run_for(4.0)
        device.send(PINGREQ)
        device.expect(PINGRESP)
    assert device.client.state is TCPState.ESTABLISHED
    assert broker.events["keepalive_expired"] == 0


def test_keepalive_zero_is_bounded_by_the_idle_limit_instead(
    broker: MQTTBroker, driver: Driver
) -> None:
    device = MQTTClient(driver, "device", keepalive=0)
    start = driver.net.sim.now
    driver.run_for(mqtt.IDLE_WITHOUT_KEEPALIVE - 1.0)
    assert device.client.state is TCPState.ESTABLISHED  # no keepalive (3.1.2-10): no 1.5 K
    assert broker.events["keepalive_expired"] == 0
    assert device.closed(30.0)
    elapsed = driver.net.sim.now - start
    assert mqtt.IDLE_WITHOUT_KEEPALIVE <= elapsed <= mqtt.IDLE_WITHOUT_KEEPALIVE + 1.0
    assert broker.events["idle_closed"] == 1


def test_keepalive_zero_traffic_keeps_the_connection(broker: MQTTBroker, driver: Driver) -> None:
    device = MQTTClient(driver, "device", keepalive=0)
    for _ in range(3):
        driver.run_for(mqtt.IDLE_WITHOUT_KEEPALIVE * 0.75)
        device.send(PINGREQ)
        device.expect(PINGRESP)
    assert device.client.state is TCPState.ESTABLISHED
    assert broker.events["idle_closed"] == 0


# -- sessions -------------------------------------------------------------------------------------
def test_a_second_connection_with_the_same_id_takes_over(
    broker: MQTTBroker, driver: Driver
) -> None:
    watcher = MQTTClient(driver, "watcher")
    watcher.subscribe([("w", 0)])
    first = MQTTClient(driver, "same", will=("w", b"taken over", 0, False))
    second = MQTTClient(driver, "same")
    assert second.connack.body == b"\x00\x00"
    assert first.closed()  # 3.1.4-2: the server disconnects the existing client
    assert watcher.expect(PUBLISH).publish[1] == b"taken over"
    assert broker.events["takeovers"] == 1
    assert broker.clients["same"].connection is not None
    second.send(PINGREQ)
    assert second.expect(PINGRESP)


def test_a_persistent_session_keeps_subscriptions_and_qos1_messages(
    broker: MQTTBroker, driver: Driver
) -> None:
    device = MQTTClient(driver, "keeper", clean=False)
    assert device.connack.body == b"\x00\x00"
    device.subscribe([("inbox", 1)])
    device.send(DISCONNECT)
    assert device.closed()
    publisher = MQTTClient(driver, "p")
    publisher.send(mqtt_publish("inbox", b"while away", qos=1, packet_id=1))
    publisher.send(mqtt_publish("inbox", b"qos 0 is not kept", qos=0))
    publisher.expect(PUBACK)
    back = MQTTClient(driver, "keeper", clean=False)
    assert back.connack.body == b"\x01\x00"  # session present
    [(topic, payload, qos, _, _, _)] = _messages(back, 1)
    assert (topic, payload, qos) == ("inbox", b"while away", 1)


def test_unacknowledged_qos1_messages_are_resent_with_dup_on_reconnect(
    broker: MQTTBroker, driver: Driver
) -> None:
    device = MQTTClient(driver, "forgetful", clean=False)
    device.subscribe([("jobs", 1)])
    publisher = MQTTClient(driver, "p")
    publisher.send(mqtt_publish("jobs", b"job 1", qos=1, packet_id=1))
    first = device.expect(PUBLISH).publish
    device.client.connection.abort(driver.net.sim.now)  # gone before its PUBACK
    back = MQTTClient(driver, "forgetful", clean=False)
    again = back.expect(PUBLISH).publish
    assert again[1] == b"job 1" and again[4] is True and again[5] == first[5]  # 4.4.0-1
    back.send(mqtt_ack(PUBACK, again[5] or 0))
    assert driver.run_until(lambda: not broker.clients["forgetful"].inflight, 10.0)


def test_a_clean_session_forgets_the_old_one(broker: MQTTBroker, driver: Driver) -> None:
    device = MQTTClient(driver, "d", clean=False)
    device.subscribe([("x", 1)])
    device.send(DISCONNECT)
    assert device.closed()
    fresh = MQTTClient(driver, "d", clean=True)
    assert fresh.connack.body == b"\x00\x00"
    assert broker.clients["d"].subscriptions == {}


# -- bad packets and bounds ------------------------------------------------------------------------
BAD_PACKETS = [
    ("reserved type 0", b"\x00\x00"),
    ("reserved type 15", b"\xf0\x00"),
    ("CONNACK from a client", b"\x20\x02\x00\x00"),
    ("SUBSCRIBE with flags 0000", mqtt_packet(0x80, b"\x00\x01\x00\x01a\x00")),
    ("SUBSCRIBE without filters", mqtt_packet(0x82, b"\x00\x01")),
    ("SUBSCRIBE with reserved QoS bits", mqtt_packet(0x82, b"\x00\x01\x00\x01a\x04")),
    ("SUBSCRIBE with packet id 0", mqtt_packet(0x82, b"\x00\x00\x00\x01a\x00")),
    ("UNSUBSCRIBE without filters", mqtt_packet(0xA2, b"\x00\x01")),
    ("PUBLISH QoS 3", mqtt_packet(0x36, b"\x00\x01a\x00\x01")),
    ("PUBLISH QoS 0 with DUP", mqtt_packet(0x38, b"\x00\x01a")),
    ("PUBLISH with a wildcard", mqtt_publish("a/#", b"x")),
    ("PUBLISH to an empty topic", mqtt_publish("", b"x")),
    ("PUBLISH with bad UTF-8", mqtt_packet(0x30, b"\x00\x02\xc3\x28")),
    ("PUBLISH with U+0000", mqtt_packet(0x30, b"\x00\x03a\x00b")),
    ("PUBLISH shorter than its topic", mqtt_packet(0x30, b"\x00\x09ab")),
    ("PINGREQ with a body", b"\xc0\x01\x00"),
    ("PUBACK of 3 bytes", b"\x40\x03\x00\x01\x00"),
    ("remaining length of 5 bytes", b"\x30\xff\xff\xff\xff\x01"),
]


@pytest.mark.parametrize(("what", "data"), BAD_PACKETS, ids=[what for what, _ in BAD_PACKETS])
def test_a_malformed_packet_closes_the_connection_and_is_counted(
    broker: MQTTBroker, driver: Driver, what: str, data: bytes
) -> None:
    client = MQTTClient(driver, "bad")
    client.send(data)
    assert client.closed(), what
    assert broker.events["protocol_errors"] == 1
    assert driver.net.a.statistics()["counters"]["mqtt.protocol_errors"] == 1
    assert "bad" not in broker.clients


@pytest.mark.parametrize(
    "body",
    [
        mqtt_connect("x")[2:-1],  # shorter than its fields
        b"\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",  # the reserved flag (3.1.2-3)
        b"\x00\x04MQTT\x04\x1a\x00\x3c\x00\x00",  # will QoS without the will flag (3.1.2-13)
        b"\x00\x04MQTT\x04\x40\x00\x3c\x00\x00",  # password without user name (3.1.2-22)
        b"\x00\x04MQTT\x04\x1e\x00\x3c\x00\x00",  # will QoS 3 (3.1.2-14)
        b"\x00\x04HTTP\x04\x02",  # another protocol name (3.1.2-1)
        b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x01\x00",  # client id with U+0000
    ],
)
def test_a_malformed_connect_closes_without_connack(
    broker: MQTTBroker, driver: Driver, body: bytes
) -> None:
    client = MQTTClient(driver)
    client.send(mqtt_packet(0x10, body))
    assert client.closed()
    assert split_packets(client.client.received) == []
    assert broker.events["protocol_errors"] == 1 and broker.clients == {}


def test_a_packet_over_the_size_limit_closes_before_it_is_read(
    broker: MQTTBroker, driver: Driver
) -> None:
    client = MQTTClient(driver, "big")
    client.send(mqtt_publish("big", b"x" * (mqtt.MAX_PACKET + 1)))
    assert client.closed()
    assert "limit" in broker.last_error


def test_a_slow_subscriber_loses_messages_beyond_its_queue_and_it_is_counted(
    broker: MQTTBroker, driver: Driver
) -> None:
    slow = MQTTClient(driver, "slow")
    slow.subscribe([("flood", 0)])
    driver.clients.remove(slow.client)  # it stops reading
    publisher = MQTTClient(driver, "fast")
    payload = b"p" * 4000
    for _ in range(800):  # about 3.2 MB: more than the TCP buffers and the queue hold
        publisher.send(mqtt_publish("flood", payload))
    publisher.send(PINGREQ)
    publisher.expect(PINGRESP, timeout=60.0)
    state = broker.clients["slow"]
    assert broker.events["dropped"] > 0
    assert len(state.queue) <= mqtt.MAX_QUEUED and state.queued_bytes <= mqtt.MAX_QUEUED_BYTES
    assert publisher.client.state is TCPState.ESTABLISHED  # the publisher is not held up


def test_connections_beyond_the_limit_are_refused(net: Network, driver: Driver) -> None:
    broker = MQTTBroker(net.a, max_connections=1)
    net.a.add_application(broker)
    MQTTClient(driver, "one")
    two = Client(net, 1883)
    driver.clients.append(two)
    assert driver.run_until(lambda: two.state is TCPState.CLOSED, 10.0)
    assert broker.refused == 1


# -- the codec on its own --------------------------------------------------------------------------
def test_fixed_header_waits_for_the_whole_length_field() -> None:
    assert fixed_header(b"") is None
    assert fixed_header(b"\x30") is None
    assert fixed_header(b"\x30\x80") is None
    assert fixed_header(b"\x30\x80\x01") == (0x30, 128, 3)
    assert fixed_header(b"\x30\xff\xff\xff\x7f") == (0x30, 268_435_455, 5)
    with pytest.raises(MQTTError):
        fixed_header(b"\x30\xff\xff\xff\xff\x01")


def test_parse_connect_reads_every_field() -> None:
    data = mqtt_connect(
        "id", clean=False, keepalive=30, will=("w/t", b"bye", 1, True), username="u", password=b"p"
    )
    first, length, size = fixed_header(data) or (0, 0, 0)
    packet = parse_packet(first, data[size : size + length])
    assert isinstance(packet, Connect)
    assert packet.client_id == "id" and not packet.clean_session and packet.keepalive == 30
    assert packet.will is not None and packet.will.topic == "w/t" and packet.will.retain
    assert packet.username == "u" and packet.password == b"p"
