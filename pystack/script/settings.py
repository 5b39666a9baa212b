"""``set NAME VALUE`` lines for the pystack target: each name mapped to the stack's configuration.

A script may start with settings that change the stack it runs against (``set sack off``). The
names are part of the public script format (docs/script-format.md); every target maps the ones
it knows to its own configuration (here: ``TCPSettings`` fields and the link MTU; the kernel
target: namespace sysctls) and refuses a name it does not know with ``SettingError``, so a
script never runs silently under settings it did not get. Values are checked here as well.
Entry points: ``configure`` (settings -> ``StackConfig`` overrides), ``PYSTACK_SETTINGS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pystack.tcp.settings import TCPSettings, congestion_control_name

IP_TCP_HEADERS = 40  # IPv4 + TCP headers without options: MSS = MTU - 40


class SettingError(ValueError):
    """A setting the target does not know, or a value it cannot take; the message says which."""


def _switch(value: str) -> bool:
    if value not in ("on", "off"):
        raise ValueError("expected on or off")
    return value == "on"


def _seconds(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds < 1e6:
        raise ValueError("expected seconds, more than 0")
    return seconds


def _count(value: str) -> int:
    if not value.isdigit():
        raise ValueError("expected a whole number")
    return int(value)


# name -> (TCPSettings field or "mtu", parser, meaning); the meaning is shown in errors and docs
PYSTACK_SETTINGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "sack": ("sack", _switch, "on|off: offer and use SACK (RFC 2018)"),
    "timestamps": ("timestamps", _switch, "on|off: offer and use timestamps (RFC 7323)"),
    "wscale": ("window_scaling", _switch, "on|off: offer and use window scaling (RFC 7323)"),
    "mss": ("mtu", _count, "N: pystack's MSS (its link MTU becomes N + 40)"),
    "initial_rto": ("initial_rto", _seconds, "SECONDS: the RTO before any RTT sample"),
    "min_rto": ("min_rto", _seconds, "SECONDS: the RTO's lower bound"),
    "max_rto": ("max_rto", _seconds, "SECONDS: the RTO's upper bound"),
    "delayed_ack": ("delayed_ack", _seconds, "SECONDS: the delayed-ACK timeout"),
    "syn_retries": ("syn_retries", _count, "N: SYN retransmissions before giving up"),
    "synack_retries": ("synack_retries", _count, "N: SYN-ACK retransmissions"),
    "receive_buffer": ("receive_buffer", _count, "BYTES: receive buffer (largest window)"),
    "send_buffer": ("send_buffer", _count, "BYTES: send buffer"),
    "rack_tlp": ("rack_tlp", _switch, "on|off: RACK-TLP loss detection (RFC 8985)"),
    "dsack": ("dsack", _switch, "on|off: send D-SACK blocks for duplicates (RFC 2883)"),
    "congestion_control": (
        "congestion_control",
        congestion_control_name,
        "newreno|cubic: the congestion control algorithm",
    ),
}


def configure(settings: Mapping[str, str], tcp: TCPSettings | None = None) -> dict[str, Any]:
    """``StackConfig`` overrides for ``settings`` (``tcp``: the TCPSettings to start from).

    Returns ``{"tcp": TCPSettings}`` plus ``{"mtu": N}`` for ``mss``; SettingError otherwise.
    """
    fields: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for name, text in settings.items():
        known = PYSTACK_SETTINGS.get(name)
        if known is None:
            names = ", ".join(sorted(PYSTACK_SETTINGS))
            raise SettingError(f"set {name}: the pystack target has no such setting ({names})")
        target, parse, meaning = known
        try:
            value = parse(text)
        except ValueError:
            raise SettingError(f"set {name} {text}: bad value ({meaning})") from None
        if target == "mtu":
            if not 28 <= value <= 65535 - IP_TCP_HEADERS:  # the MTU must be 68..65535
                raise SettingError(f"set mss {text}: must be 28..{65535 - IP_TCP_HEADERS}")
            overrides["mtu"] = value + IP_TCP_HEADERS
        else:
            fields[target] = value
    base = tcp if tcp is not None else TCPSettings()
    # An initial RTO below the minimum lowers the minimum with it (the script asked for it).
    if "initial_rto" in fields and "min_rto" not in fields:
        fields["min_rto"] = min(base.min_rto, fields["initial_rto"])
    try:
        overrides["tcp"] = dataclasses.replace(base, **fields)
    except ValueError as error:
        raise SettingError(f"settings {dict(settings)}: {error}") from None
    return overrides
