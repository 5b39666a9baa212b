"""Impairment settings and their text form: ``"loss=5%,in.delay=20ms,rate=10mbit,seed=7"``.

Job: ``ImpairmentSpec`` (one direction's settings, a frozen value checked on construction) and
``ImpairmentConfig`` (both directions plus the seed), parsed from and formatted to the one-line
text that the CLI and tests use. Keys: ``loss``, ``dup``/``duplicate``, ``reorder``, ``corrupt``
(probabilities: ``5%`` or ``0.05``), ``delay``, ``jitter``, ``reorder_delay`` (times with ``us``,
``ms`` or ``s``), ``rate`` (``bit``, ``kbit``, ``mbit``, ``gbit``, or ``none``), ``mtu`` (frames
whose payload is longer are dropped; ``none``), ``queue`` (frames held per direction), ``seed``.
A key prefixed ``in.`` or ``out.`` sets that direction only; an unprefixed key sets both; later
keys override earlier ones.

Rules pick packets rather than chance (``ImpairmentRule``): ``drop=DIR:PROTO[:FLAG...]:N``,
``dup=DIR:PROTO[:FLAG...]:N`` and ``delay=DIR:PROTO[:FLAG...]:N:TIME`` act on the Nth packet
(counted from 1) going in direction ``DIR`` (``in`` or ``out``) that matches ``PROTO`` (``tcp``,
``udp``, ``icmp``, ``arp``, ``ip`` for any IPv4 packet, ``any``) and every ``FLAG`` (TCP only:
``syn``, ``ack``, ``fin``, ``rst``, ``psh``, ``data`` for a payload, ``nodata`` for none). A
``dup=``/``delay=`` value with a colon is a rule, without one the probability or time above.
Rules may repeat and combine with every other key; ``RULES_HELP`` is the summary ``--help`` shows.

Must not: know about links or time; it only describes impairments.

Entry points: ``ImpairmentConfig.parse(text)`` (same as ``ImpairmentSpec.parse``), ``ImpairmentRule``,
``ImpairmentConfig.format()``, ``ImpairmentConfig.symmetric(spec, seed)``, ``ImpairmentSpec``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_QUEUE = 4096  # frames held per direction before tail drop
DEFAULT_REORDER_DELAY = 0.005  # seconds a reordered frame waits so the next ones overtake it
# Bounds that keep every setting meaningful (beyond them a value is a typo, not a test):
MAX_TIME = 3600.0  # seconds: delay, jitter, reorder_delay and a delay rule's time
MIN_RATE, MAX_RATE = 100.0, 1e12  # bits per second: at 100 bit/s a 1500-byte frame takes 2 min
MIN_MTU, MAX_MTU = 68, 65535  # an IPv4 packet's least and greatest size (RFC 791)
MAX_QUEUE = 1_000_000  # frames held per direction
MAX_NTH = 1_000_000_000  # a rule's packet number

_PROBABILITIES = ("loss", "duplicate", "reorder", "corrupt")
_TIMES = ("delay", "jitter", "reorder_delay")
_NUMBER = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)")
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_RATE_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_ALIASES = {"dup": "duplicate", "limit": "queue"}
RULE_ACTIONS = ("drop", "dup", "delay")
RULE_PROTOCOLS = ("tcp", "udp", "icmp", "arp", "ip", "any")
RULE_FLAGS = ("syn", "ack", "fin", "rst", "psh", "data", "nodata")
KEYS_HELP = (
    "loss=P, dup=P, reorder=P, corrupt=P (P: 5% or 0.05); delay=T, jitter=T, reorder_delay=T "
    "(T: us, ms, s); rate=R (bit, kbit, mbit, gbit; none); mtu=N (none); queue=N (frames held "
    "per direction, default 4096); seed=N; in.KEY or out.KEY for one direction"
)
RULES_HELP = (
    "rules: drop=DIR:PROTO[:FLAG...]:N, dup=DIR:PROTO[:FLAG...]:N, "
    "delay=DIR:PROTO[:FLAG...]:N:T act on the Nth matching packet; DIR in|out, "
    "PROTO tcp|udp|icmp|arp|ip|any, FLAG syn|ack|fin|rst|psh|data|nodata (TCP)"
)
_DIRECTIONS = {
    "in": ("inbound",),
    "inbound": ("inbound",),
    "out": ("outbound",),
    "outbound": ("outbound",),
}


@dataclass(frozen=True, slots=True)
class ImpairmentSpec:
    """One direction's impairments (all off by default)."""

    loss: float = 0.0  # probability a frame is dropped
    duplicate: float = 0.0  # probability a frame is delivered twice
    reorder: float = 0.0  # probability a frame is held back by reorder_delay
    corrupt: float = 0.0  # probability one random bit of a frame is flipped
    delay: float = 0.0  # seconds added to every frame
    jitter: float = 0.0  # seconds: each delay varies uniformly by +-jitter (order kept)
    reorder_delay: float = DEFAULT_REORDER_DELAY
    rate: float | None = None  # bits per second of the simulated wire, None = unlimited
    mtu: int | None = None  # frames with a longer payload (IP packet) are dropped
    queue: int = DEFAULT_QUEUE  # frames held at most; more are tail-dropped

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"impairment {name}={value!r}: probability must be 0..1")
        for name in _TIMES:
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= MAX_TIME):
                raise ValueError(
                    f"impairment {name}={value!r}: time must be 0..{MAX_TIME:g} seconds"
                )
        if self.rate is not None and not (
            math.isfinite(self.rate) and MIN_RATE <= self.rate <= MAX_RATE
        ):
            raise ValueError(
                f"impairment rate={self.rate!r}: must be {MIN_RATE:g}..{MAX_RATE:g} bits per second"
            )
        if self.mtu is not None and not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ValueError(f"impairment mtu={self.mtu!r}: must be {MIN_MTU}..{MAX_MTU}")
        if not 1 <= self.queue <= MAX_QUEUE:
            raise ValueError(f"impairment queue={self.queue!r}: must be 1..{MAX_QUEUE}")

    def holds_frames(self) -> bool:
        """Whether frames may wait (delay, jitter, rate or reorder) rather than pass at once."""
        return bool(self.delay or self.jitter or self.reorder or self.rate is not None)

    def is_transparent(self) -> bool:
        """Whether this spec leaves every frame alone."""
        return self == ImpairmentSpec(queue=self.queue, reorder_delay=self.reorder_delay)

    @staticmethod
    def parse(text: str) -> ImpairmentConfig:
        """Parse the text form into both directions (see ``ImpairmentConfig.parse``)."""
        return ImpairmentConfig.parse(text)

    def format(self, prefix: str = "") -> list[str]:
        """``key=value`` items for the settings that differ from the defaults."""
        items = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value != item.default:
                items.append(f"{prefix}{item.name}={_format_value(item.name, value)}")
        return items


def _format_value(name: str, value: object) -> str:
    if value is None:
        return "none"
    if name in _TIMES:
        return f"{value!r}s"
    if name == "rate":
        return f"{value!r}bit"
    return repr(value)


@dataclass(frozen=True, slots=True)
class ImpairmentRule:
    """Act on the ``nth`` packet (from 1) of ``direction`` matching ``protocol`` and ``flags``.

    ``action`` is ``"drop"``, ``"dup"`` (delivered twice) or ``"delay"`` (held ``delay``
    seconds more; later packets overtake it). ``flags`` are TCP conditions that must all hold.
    """

    action: str
    direction: str  # "inbound" or "outbound"
    protocol: str
    flags: tuple[str, ...]
    nth: int
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in RULE_ACTIONS:
            raise ValueError(f"impairment rule: unknown action {self.action!r}")
        if self.direction not in ("inbound", "outbound"):
            raise ValueError(f"impairment rule: bad direction {self.direction!r}")
        if self.protocol not in RULE_PROTOCOLS:
            raise ValueError(f"impairment rule: unknown protocol {self.protocol!r}")
        for flag in self.flags:
            if flag not in RULE_FLAGS:
                raise ValueError(f"impairment rule: unknown flag {flag!r}")
        if self.flags and self.protocol != "tcp":
            raise ValueError("impairment rule: flags apply to tcp only")
        if not 1 <= self.nth <= MAX_NTH:
            raise ValueError(f"impairment rule: packet number {self.nth} must be 1..{MAX_NTH}")
        if not (math.isfinite(self.delay) and 0.0 <= self.delay <= MAX_TIME):
            raise ValueError(
                f"impairment rule: delay {self.delay!r} must be 0..{MAX_TIME:g} seconds"
            )
        if (self.action == "delay") != (self.delay > 0.0):
            raise ValueError("impairment rule: delay= needs a positive time, only delay= has one")

    @classmethod
    def parse(cls, action: str, value: str) -> ImpairmentRule:
        """``value`` is ``DIR:PROTO[:FLAG...]:N`` (``...:N:TIME`` for ``delay``)."""
        where = f"impairment rule {action}={value}"
        parts = [part.strip().lower() for part in value.split(":")]
        delay = 0.0
        if action == "delay":
            if len(parts) < 4:
                raise ValueError(f"{where}: want delay=DIR:PROTO[:FLAG...]:N:TIME")
            try:
                delay = _parse_time(parts.pop())
            except ValueError as error:
                raise ValueError(f"{where}: bad time: {error}") from None
            if delay <= 0.0:
                raise ValueError(f"{where}: the time must be positive")
        elif len(parts) < 3:
            raise ValueError(f"{where}: want {action}=DIR:PROTO[:FLAG...]:N")
        direction, protocol, *flags, count = parts
        if direction not in ("in", "out"):
            raise ValueError(f"{where}: direction {direction!r} is not in or out")
        if protocol not in RULE_PROTOCOLS:
            known = "|".join(RULE_PROTOCOLS)
            raise ValueError(f"{where}: protocol {protocol!r} is not one of {known}")
        for flag in flags:
            if flag not in RULE_FLAGS:
                known = "|".join(RULE_FLAGS)
                raise ValueError(f"{where}: flag {flag!r} is not one of {known}")
        if flags and protocol != "tcp":
            raise ValueError(f"{where}: flags apply to tcp only")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"{where}: packet number {count!r} is not a whole number >= 1")
        return cls(action, _DIRECTIONS[direction][0], protocol, tuple(flags), int(count), delay)

    def format(self) -> str:
        direction = "in" if self.direction == "inbound" else "out"
        fields_ = [direction, self.protocol, *self.flags, str(self.nth)]
        if self.action == "delay":
            fields_.append(f"{self.delay!r}s")
        return f"{self.action}=" + ":".join(fields_)


@dataclass(frozen=True, slots=True)
class ImpairmentConfig:
    """Impairments for both directions and the seed their random choices derive from."""

    inbound: ImpairmentSpec = field(default_factory=ImpairmentSpec)
    outbound: ImpairmentSpec = field(default_factory=ImpairmentSpec)
    seed: int = 0
    rules: tuple[ImpairmentRule, ...] = ()  # in the order given

    @classmethod
    def symmetric(cls, spec: ImpairmentSpec, seed: int = 0) -> ImpairmentConfig:
        return cls(inbound=spec, outbound=spec, seed=seed)

    @classmethod
    def parse(cls, text: str, default_seed: int | None = None) -> ImpairmentConfig:
        """Parse ``"loss=5%,in.delay=20ms,seed=7"``; a bad item raises a one-line ValueError.

        A ``seed=`` in the text wins; otherwise ``default_seed`` (e.g. the stack's ``--seed``),
        else 0.
        """
        settings: dict[str, dict[str, Any]] = {"inbound": {}, "outbound": {}}
        seed = 0 if default_seed is None else default_seed
        rules: list[ImpairmentRule] = []
        if text and not text.strip(" ,"):
            raise ValueError(f"impairment spec {text!r} names no impairment")
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, separator, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not separator or not key:
                raise ValueError(f"impairment spec: expected key=value, got {item!r}")
            if key == "seed":
                seed = _parse_seed(value)
                continue
            if key == "drop" or (key in ("dup", "delay") and ":" in value):
                rules.append(ImpairmentRule.parse(key, value))
                continue
            if key.partition(".")[2] in RULE_ACTIONS and ":" in value:
                raise ValueError(
                    f"impairment spec: {key!r}: a rule names its direction in the value "
                    f"(e.g. drop=out:tcp:data:3), not with in./out."
                )
            directions, name = _split_direction(key)
            parsed = _parse_setting(name, key, value)
            for direction in directions:
                settings[direction][name] = parsed
        inbound, outbound = (
            _build(settings[direction], text) for direction in ("inbound", "outbound")
        )
        return cls(inbound=inbound, outbound=outbound, seed=seed, rules=tuple(rules))

    def format(self) -> str:
        """The text form; ``ImpairmentConfig.parse(config.format()) == config``."""
        if self.inbound == self.outbound:
            items = self.inbound.format()
        else:
            items = self.inbound.format("in.") + self.outbound.format("out.")
        items += [rule.format() for rule in self.rules]
        if self.seed:
            items.append(f"seed={self.seed}")
        return ",".join(items)


def _split_direction(key: str) -> tuple[tuple[str, ...], str]:
    prefix, dot, rest = key.partition(".")
    if not dot:
        return ("inbound", "outbound"), _ALIASES.get(key, key)
    if prefix not in _DIRECTIONS or not rest:
        raise ValueError(f"impairment spec: bad direction in {key!r} (use in.KEY or out.KEY)")
    if rest == "seed":
        raise ValueError("impairment spec: seed applies to both directions (no in./out.)")
    return _DIRECTIONS[prefix], _ALIASES.get(rest, rest)


def _parse_setting(name: str, key: str, value: str) -> Any:
    parser = _PARSERS.get(name)
    if parser is None:
        known = ", ".join([*sorted(_PARSERS), "dup", "seed", "drop (a rule)"])
        raise ValueError(f"impairment spec: unknown key {key!r} (known: {known})")
    try:
        return parser(value)
    except ValueError as error:
        raise ValueError(f"impairment spec: bad {key} value {value!r}: {error}") from None


def _number(value: str) -> tuple[float, str]:
    if value.startswith("-"):
        raise ValueError("must not be negative")
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise ValueError("not a number")
    return float(match.group(1)), match.group(2).lower()


def _parse_probability(value: str) -> float:
    number, unit = _number(value)
    if unit == "%":
        number /= 100.0
    elif unit:
        raise ValueError("give a fraction (0.05) or a percentage (5%)")
    if number > 1.0:
        raise ValueError("probability must be between 0 and 1 (0%..100%)")
    return number


def _parse_time(value: str) -> float:
    number, unit = _number(value)
    if not unit:
        if number == 0.0:
            return 0.0
        raise ValueError("give a unit: us, ms or s")
    scale = _TIME_UNITS.get(unit)
    if scale is None:
        raise ValueError("unknown time unit (use us, ms or s)")
    return number * scale


def _parse_rate(value: str) -> float | None:
    if value.lower() in ("none", "off"):
        return None
    number, unit = _number(value)
    scale = _RATE_UNITS.get(unit)
    if scale is None:
        raise ValueError("give a unit: bit, kbit, mbit or gbit")
    if number <= 0.0:
        raise ValueError("rate must be positive")
    return number * scale


def _parse_count(value: str) -> int:
    if not value.isdigit():
        raise ValueError("want a positive whole number")
    count = int(value)
    if count < 1:
        raise ValueError("want a positive whole number")
    return count


def _parse_mtu(value: str) -> int | None:
    return None if value.lower() in ("none", "off") else _parse_count(value)


def _parse_seed(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"impairment spec: bad seed value {value!r}: want an integer") from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "loss": _parse_probability,
    "duplicate": _parse_probability,
    "reorder": _parse_probability,
    "corrupt": _parse_probability,
    "delay": _parse_time,
    "jitter": _parse_time,
    "reorder_delay": _parse_time,
    "rate": _parse_rate,
    "mtu": _parse_mtu,
    "queue": _parse_count,
}


def _build(settings: dict[str, Any], text: str) -> ImpairmentSpec:
    try:
        return ImpairmentSpec(**settings)
    except ValueError as error:
        raise ValueError(f"impairment spec {text!r}: {error}") from None
