"""The robustness suite: the attacks of issue 15 on ``pystack up --serve`` over TUN, each in the
test's own namespace and bounded in packets and time, each followed by the health check (a 1 MB
echo byte-exact and ``GET /json`` answered 200). See docs/robustness.md.

Quick sizes run in ``make test`` and ``make robustness``; ``PYSTACK_SOAK=1`` (``make soak``)
selects the larger ones. The attacks themselves are ``tests/robustness/kernel_side.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.robustness.conftest import Hosted, Target, sized

SOAK_TIMEOUT = 1800  # seconds a soak-sized test may take (quick ones keep the default, 120)

pytestmark = [pytest.mark.robustness, pytest.mark.timeout(sized(120, SOAK_TIMEOUT))]


def test_mutated_frames(hosted: Hosted) -> None:
    """Structure-aware mutated frames (random fields, truncation, bad checksums and lengths,
    option soup, fragments, ICMP errors quoting a live connection) from the kernel side: the
    stack takes every one, the live connection they aim at still echoes, and so do the services."""
    count = sized(5_000, 50_000)
    before = hosted.statistics()["link"]["frames_received"]
    result = hosted.run("fuzz", timeout=sized(60, 1200), count=count, seed=1501)
    received = hosted.statistics()["link"]["frames_received"] - before
    assert result["sent"] >= count * 0.95  # (a frame truncated to nothing is not sent)
    assert received >= result["sent"], (received, result)
    hosted.health()


def test_syn_flood_over_every_service_port(served: Target) -> None:
    """Spoofed SYNs to all eight service ports (quick: 400 each, then more at a steady rate);
    during the flood a client on every port is served twice (curl /json and an echo among them)."""
    result = served.run(
        "synflood",
        timeout=sized(110, 900),
        per_port=sized(400, 2_500),
        seed=1502,
        operation_timeout=10,
    )
    failures = [
        f"round {number}: {port} {outcome}"
        for number, outcome_by_port in enumerate(result["during"])
        for port, outcome in outcome_by_port.items()
        if outcome != "ok"
    ]
    assert not failures, failures
    served.health()


def test_blind_injections_into_a_live_transfer(served: Target) -> None:
    """RST, SYN, data and ACK segments with random sequence and acknowledgement numbers on the
    four-tuple of a live echo transfer (quick: 5,000 into 20 MB): every byte comes back intact."""
    size = sized(20, 180) << 20
    injections = sized(5_000, 55_000)
    result = served.run(
        "blind", timeout=sized(120, 1200), size=size, injections=injections, seed=1503
    )
    assert result["bytes"] >= size
    assert result["injected"] == injections, result
    served.health()


def test_slowloris_leaves_http_to_legitimate_clients(served: Target) -> None:
    """More slow HTTP clients than the service has slots, one header byte each a second:
    ``GET /json`` is answered 200 every time while they run."""
    rounds = sized(2, 10)
    result = served.run("slowloris", count=sized(100, 200), rounds=rounds)
    assert result["statuses"] == [200] * rounds, result
    served.health()


def test_abandoned_tls_handshakes_leave_tls_to_legitimate_clients(served: Target) -> None:
    """TLS handshakes abandoned after the ClientHello on 443 and 8443 (quick: 100 each): a TLS
    echo on 443 and ``GET /json`` over TLS on 8443 are served while they are held."""
    count = sized(100, 300)
    result = served.run("handshakes", count=count)
    assert result == {"abandoned": 2 * count, "tlsecho": "ok", "https": 200}
    served.health()


def test_idle_mqtt_connects_leave_the_broker_to_legitimate_clients(served: Target) -> None:
    """Idle MQTT clients (CONNECT with keepalive 0, then nothing; quick: 70, more than the
    broker's slots): a subscriber gets what a publisher connected after them sends."""
    count = sized(70, 200)
    result = served.run("mqtt_idle", count=count)
    assert result == {"idle": count, "delivered": "through the flood"}
    served.health()


def test_injection_storms_get_bounded_replies(hosted: Hosted) -> None:
    """Storms of forged segments (ACKs of unsent data, old ACKs, in-window RSTs, SYNs, data
    outside the window) on one live connection, and segments for no connection: pystack's
    replies, counted from a capture, stay within its per-connection and per-stack limits."""
    count = sized(1_000, 10_000)
    before = hosted.statistics()["counters"]
    result = hosted.run("storms", count=count, tail=1.0, seed=1504)
    after = hosted.statistics()["counters"]
    assert hosted.host.stack is not None
    settings = hosted.host.stack.config.tcp
    storms = {storm["name"]: storm for storm in result["storms"]}
    for name in ("unsent", "old", "rst", "syn", "outside"):
        storm = storms[name]
        # One reply per invalid_ack_interval on the connection (the two clocks differ a
        # little: one more allowed), never one per forged segment, never data or a reset.
        bound = 1 + int(storm["duration"] / settings.invalid_ack_interval) + 1
        assert 1 <= storm["replies"] <= bound, storm
        assert storm["data"] == 0 and storm["resets"] == 0, storm
    # RSTs for segments to no connection: one token bucket per stack, measured between the first
    # and the last RST as the kernel received them (20 ms more for the delivery of each to vary).
    storm = storms["no-connection"]
    bound = settings.reset_burst + settings.reset_rate * (storm["span"] + 0.02) + 1
    assert 1 <= storm["resets"] <= bound, storm

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("tcp.reply_resets_sent") == storm["resets"], (after, storm)
    assert delta("tcp.reply_resets_suppressed") > 0, after  # the limit acted
    connection_replies = sum(storms[name]["replies"] for name in storms if name != "no-connection")
    sent = ("tcp.challenge_acks_sent", "tcp.invalid_acks_sent", "tcp.unsent_acks_sent")
    assert sum(delta(name) for name in sent) == connection_replies, after
    hosted.health()


def test_soak_under_loss_reordering_and_duplication(up: Callable[..., Target]) -> None:
    """``pystack up --impair loss=2%,reorder=2%,dup=1%``: echo exchanges of random sizes and
    ``GET /json`` on new connections (quick: 40 operations; soak: 5 minutes), no mismatch."""
    served = up("--impair", "loss=2%,reorder=2%,dup=1%,seed=1505")
    operations = sized(40, 0)
    seconds = sized(80, 300)
    result = served.run(
        "mixed", timeout=seconds + 30, operations=operations, seconds=seconds, seed=1505
    )
    assert result["mismatches"] == 0, result
    if operations:
        assert sum(result["operations"].values()) == operations, result
    served.health()
