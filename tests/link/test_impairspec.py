"""ImpairmentSpec / ImpairmentConfig: the text form, its units and its one-line errors."""

from __future__ import annotations

import pytest

from pystack.link.impair import ImpairmentConfig, ImpairmentSpec


def test_parse_full_example_sets_both_directions() -> None:
    config = ImpairmentSpec.parse(
        "loss=5%,dup=1%,reorder=2%,delay=20ms,jitter=5ms,rate=10mbit,corrupt=0.1%,mtu=1280,seed=7"
    )
    spec = config.inbound
    assert config.outbound == spec
    assert config.seed == 7
    assert spec.loss == pytest.approx(0.05)
    assert spec.duplicate == pytest.approx(0.01)
    assert spec.reorder == pytest.approx(0.02)
    assert spec.delay == pytest.approx(0.020)
    assert spec.jitter == pytest.approx(0.005)
    assert spec.rate == pytest.approx(10e6)
    assert spec.corrupt == pytest.approx(0.001)
    assert spec.mtu == 1280


def test_parse_plain_fraction_equals_percentage() -> None:
    assert ImpairmentConfig.parse("loss=0.25") == ImpairmentConfig.parse("loss=25%")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("delay=1s", 1.0), ("delay=250ms", 0.25), ("delay=40us", 40e-6), ("delay=0", 0.0)],
)
def test_parse_time_units(text: str, seconds: float) -> None:
    assert ImpairmentConfig.parse(text).inbound.delay == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("rate=9600bit", 9600.0),
        ("rate=64kbit", 64e3),
        ("rate=1.5mbit", 1.5e6),
        ("rate=1gbit", 1e9),
        ("rate=10Mbit", 10e6),
    ],
)
def test_parse_rate_units(text: str, bits: float) -> None:
    assert ImpairmentConfig.parse(text).outbound.rate == pytest.approx(bits)


def test_parse_direction_prefix_sets_one_direction_only() -> None:
    config = ImpairmentConfig.parse("in.loss=5%,out.delay=10ms")
    assert config.inbound == ImpairmentSpec(loss=0.05)
    assert config.outbound == ImpairmentSpec(delay=0.010)


def test_parse_later_keys_override_earlier_ones() -> None:
    config = ImpairmentConfig.parse("loss=1%, in.loss=50% ,")
    assert config.inbound.loss == pytest.approx(0.5)
    assert config.outbound.loss == pytest.approx(0.01)


def test_parse_empty_text_is_transparent() -> None:
    config = ImpairmentConfig.parse("")
    assert config == ImpairmentConfig()
    assert config.inbound.is_transparent() and not config.inbound.holds_frames()


def test_parse_none_values_and_queue() -> None:
    config = ImpairmentConfig.parse("rate=none,mtu=none,queue=10,reorder_delay=2ms")
    assert config.inbound.rate is None and config.inbound.mtu is None
    assert config.inbound.queue == 10
    assert config.inbound.reorder_delay == pytest.approx(0.002)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "loss=5%,seed=3",
        "in.loss=5%,out.delay=10ms,out.rate=2mbit,mtu=1280",
        "dup=1e-05,jitter=3us,corrupt=0.125",
    ],
)
def test_format_round_trips_through_parse(text: str) -> None:
    config = ImpairmentConfig.parse(text)
    assert ImpairmentConfig.parse(config.format()) == config


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lose=5%", "'lose'"),
        ("loss=150%", "loss"),
        ("loss=1.5", "loss"),
        ("loss=-1%", "loss"),
        ("delay=-10ms", "delay"),
        ("delay=10", "delay"),
        ("delay=10parsecs", "delay"),
        ("jitter=abc", "jitter"),
        ("rate=10mbps", "rate"),
        ("rate=0mbit", "rate"),
        ("mtu=0", "mtu"),
        ("mtu=12.5", "mtu"),
        ("queue=0", "queue"),
        ("seed=x", "seed"),
        ("in.seed=3", "seed"),
        ("up.loss=5%", "up.loss"),
        ("loss", "loss"),
        ("=5%", "=5%"),
        ("loss=nan", "loss"),
    ],
)
def test_parse_bad_spec_raises_one_line_value_error_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError) as caught:
        ImpairmentConfig.parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert named in message


def test_spec_constructor_validates_ranges() -> None:
    with pytest.raises(ValueError, match="loss"):
        ImpairmentSpec(loss=2.0)
    with pytest.raises(ValueError, match="delay"):
        ImpairmentSpec(delay=-0.1)
    with pytest.raises(ValueError, match="rate"):
        ImpairmentSpec(rate=0.0)
    with pytest.raises(ValueError, match="queue"):
        ImpairmentSpec(queue=0)


def test_default_seed_applies_only_when_the_spec_names_none() -> None:
    assert ImpairmentConfig.parse("loss=5%", default_seed=9).seed == 9
    assert ImpairmentConfig.parse("loss=5%,seed=3", default_seed=9).seed == 3
    assert ImpairmentConfig.parse("loss=5%").seed == 0
