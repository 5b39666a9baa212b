"""Fixtures for the session services: a two-host ``Network`` (services on ``a``, clients on
``b``) and the ``Driver`` that runs both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.tcp_transfer import Network
from tests.services.clients import Driver


@pytest.fixture
def net() -> Iterator[Network]:
    network = Network()
    yield network
    # A session that raised was contained (and its connection reset): still a bug.
    internal = {
        name: count
        for name, count in network.a.statistics()["counters"].items()
        if name.endswith(".internal_errors") and count
    }
    assert internal == {}, internal


@pytest.fixture
def driver(net: Network) -> Driver:
    return Driver(net)
