"""Hosts files in the /etc/hosts format."""

from __future__ import annotations

from pathlib import Path

import pytest

from pystack.dns.hosts import load_hosts_file, parse_hosts
from pystack.wire.addresses import ip_from_str

HOSTS = """\
# comment line
127.0.0.1   localhost
10.0.0.2    Peer.Sim peer   # trailing comment
::1         ip6-localhost ip6-loopback
10.0.0.3    peer.sim other.sim
10.0.0.4
not-an-address  bogus.sim
10.0.0.5    bad..name good.sim
   10.0.0.6	tabbed.sim
"""


def test_parse_hosts() -> None:
    assert parse_hosts(HOSTS) == {
        "localhost": ip_from_str("127.0.0.1"),
        "peer.sim": ip_from_str("10.0.0.2"),  # the first line wins
        "peer": ip_from_str("10.0.0.2"),
        "other.sim": ip_from_str("10.0.0.3"),
        "good.sim": ip_from_str("10.0.0.5"),
        "tabbed.sim": ip_from_str("10.0.0.6"),
    }


def test_load_hosts_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    assert load_hosts_file(path)["peer.sim"] == ip_from_str("10.0.0.2")
    assert load_hosts_file(str(path)) == parse_hosts(HOSTS)
    with pytest.raises(OSError):
        load_hosts_file(tmp_path / "missing")
