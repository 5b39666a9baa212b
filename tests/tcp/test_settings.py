"""TCPSettings: string-choice options are enums, and a bad value is refused at construction."""

from __future__ import annotations

import pytest

from pystack.tcp.congestion import algorithms, create
from pystack.tcp.settings import AcceptOverflow, CongestionControlName, TCPSettings


def test_defaults_are_enum_members() -> None:
    settings = TCPSettings()
    assert settings.congestion_control is CongestionControlName.NEWRENO
    assert settings.accept_overflow is AcceptOverflow.DROP


def test_every_congestion_control_name_has_an_algorithm() -> None:
    for name in CongestionControlName:
        assert name.value in algorithms()
        assert create(name, 1460).name == name.value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "congestion_control",
            "newreno",
            "congestion_control must be one of CongestionControlName",
        ),
        ("congestion_control", "vegas", "not 'vegas'"),
        ("accept_overflow", "reset", "accept_overflow must be one of AcceptOverflow.DROP, "),
        ("accept_overflow", CongestionControlName.NEWRENO, "AcceptOverflow.RESET"),
    ],
)
def test_a_value_outside_the_enum_is_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TCPSettings(**{field: value})  # type: ignore[arg-type]
