"""MicroPython's ``network`` module on a ``SimulatedNetwork``: WLAN/LAN methods, DHCP and static.

Each test runs a real simulated network (two stacks on the stack thread, real clock); waits go
through ``NetworkContext.wait`` with a bound, never a sleep. The last test runs a MicroPython
script that imports ``network`` through the script world.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from pystack.dhcp.client import DHCPState, dhcp_client
from pystack.runtime import network_module as nm
from pystack.runtime.network_module import network_module
from pystack.runtime.providers import ModuleKind
from pystack.runtime.world import ScriptWorld
from pystack.sim.world import SimulatedNetwork
from pystack.wire.addresses import ip_from_str
from tests.runtime.scripts import ScriptRunner
from usocket.context import NetworkContext

WAIT_MS = 5000


class Board:
    def __init__(self, simulation: SimulatedNetwork) -> None:
        self.simulation = simulation
        self.context = NetworkContext(simulation.thread, simulation.host)
        self.network: Any = network_module(self.context, (ip_from_str("10.0.0.1"),))

    def wait_connected(self, nic: Any) -> bool:
        return self.context.wait(nic.isconnected, WAIT_MS)


@pytest.fixture
def dhcp_board() -> Iterator[Board]:
    with SimulatedNetwork(seed=5, dhcp=True, services="") as simulation:
        yield Board(simulation)


@pytest.fixture
def static_board() -> Iterator[Board]:
    with SimulatedNetwork(seed=6, services="") as simulation:
        yield Board(simulation)


def test_constants_are_the_rp2_values() -> None:
    assert (nm.STA_IF, nm.AP_IF) == (0, 1)
    assert (nm.STAT_IDLE, nm.STAT_CONNECTING, nm.STAT_GOT_IP) == (0, 1, 3)
    assert (nm.STAT_CONNECT_FAIL, nm.STAT_NO_AP_FOUND, nm.STAT_WRONG_PASSWORD) == (-1, -2, -3)


def test_wlan_is_one_object_per_interface(static_board: Board) -> None:
    network = static_board.network
    sta = network.WLAN(network.STA_IF)
    assert sta is network.WLAN() and isinstance(sta, network.WLAN)
    ap = network.WLAN(network.AP_IF)
    assert ap is not sta and repr(ap) == "<WLAN AP>"
    lan = network.LAN()
    assert lan is network.LAN() and lan is not sta
    with pytest.raises(ValueError):
        network.WLAN(5)
    other = network_module(static_board.context)
    assert other.WLAN() is not sta  # type: ignore[attr-defined]  # no state shared between modules


def test_dhcp_connect_gets_an_address(dhcp_board: Board) -> None:
    network = dhcp_board.network
    sta = network.WLAN(network.STA_IF)
    assert sta.active() is False and sta.status() == network.STAT_IDLE
    sta.active(True)
    sta.connect("pystack", "secret")
    assert dhcp_board.wait_connected(sta)
    assert sta.status() == network.STAT_GOT_IP
    assert sta.ifconfig() == ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
    assert sta.ipconfig("addr4") == ("10.0.0.2", "255.255.255.0")
    assert sta.ipconfig("gw4") == "10.0.0.1"
    assert sta.ipconfig("dhcp4") is True and sta.ipconfig("has_dhcp4") is True
    assert network.ipconfig("dns") == "10.0.0.1"
    assert sta.config("ssid") == "pystack"
    assert sta.config("mac") == dhcp_board.simulation.host.mac and len(sta.config("mac")) == 6


def test_dhcp_disconnect_releases_and_connect_binds_again(dhcp_board: Board) -> None:
    network = dhcp_board.network
    sta = network.WLAN(network.STA_IF)
    sta.connect()
    assert dhcp_board.wait_connected(sta)
    sta.disconnect()
    assert not sta.isconnected() and sta.status() == network.STAT_IDLE
    host = dhcp_board.simulation.host
    assert dhcp_board.context.wait(lambda: host.address == 0, WAIT_MS)
    dhcp = dhcp_client(host)
    assert dhcp is not None and dhcp.state is DHCPState.STOPPED
    server = dhcp_board.simulation.dhcp_server
    assert server is not None
    assert dhcp_board.context.wait(lambda: not server.server.leases, WAIT_MS)  # the RELEASE
    assert sta.ifconfig()[0] == "0.0.0.0"
    sta.connect()
    assert dhcp_board.wait_connected(sta) and sta.ifconfig()[0] == "10.0.0.2"


def test_static_ifconfig_replaces_dhcp_and_dhcp4_restores_it(dhcp_board: Board) -> None:
    network = dhcp_board.network
    sta = network.WLAN(network.STA_IF)
    sta.connect()
    assert dhcp_board.wait_connected(sta)
    sta.ifconfig(("10.0.0.50", "255.255.255.128", "10.0.0.1", "10.0.0.9"))
    assert sta.ifconfig() == ("10.0.0.50", "255.255.255.128", "10.0.0.1", "10.0.0.9")
    assert sta.ipconfig("dhcp4") is False
    assert dhcp_board.simulation.host.address == ip_from_str("10.0.0.50")
    sta.ipconfig(dhcp4=True)
    assert dhcp_board.context.wait(lambda: sta.ifconfig()[0] == "10.0.0.2", WAIT_MS)
    assert sta.ipconfig("dhcp4") is True


def test_static_stack_connects_at_once_and_disconnect_drops_the_address(
    static_board: Board,
) -> None:
    network = static_board.network
    sta = network.WLAN(network.STA_IF)
    assert not sta.isconnected()  # not connected until connect(), though the stack is up
    sta.connect("any")
    assert sta.isconnected() and sta.status() == network.STAT_GOT_IP
    assert sta.ifconfig() == ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
    assert sta.ipconfig("dhcp4") is False and sta.ipconfig("has_dhcp4") is False
    sta.active(False)
    assert sta.active() is False and not sta.isconnected()
    assert static_board.simulation.host.address == 0
    sta.connect()
    assert sta.isconnected() and static_board.simulation.host.address == ip_from_str("10.0.0.2")


def test_ipconfig_sets_address_and_gateway(static_board: Board) -> None:
    network = static_board.network
    lan = network.LAN()
    lan.active(True)
    lan.ipconfig(addr4="10.0.0.60/24", gw4="10.0.0.1")
    assert lan.ipconfig("addr4") == ("10.0.0.60", "255.255.255.0")
    lan.ipconfig(addr4=("10.0.0.61", "255.255.0.0"))
    assert lan.ifconfig()[:3] == ("10.0.0.61", "255.255.0.0", "10.0.0.1")
    assert lan.ipconfig("addr6") == [] and lan.ipconfig("autoconf6") is False
    with pytest.raises(ValueError):
        lan.ipconfig(bogus=1)
    with pytest.raises(ValueError):
        lan.ipconfig("bogus")
    with pytest.raises(TypeError):
        lan.ipconfig("addr4", gw4="10.0.0.1")
    with pytest.raises(ValueError):
        lan.ifconfig(("10.0.0.2", "255.0.255.0", "10.0.0.1", "10.0.0.1"))


def test_module_ipconfig_hostname_country_and_config(static_board: Board) -> None:
    network = static_board.network
    assert network.ipconfig("dns") == "10.0.0.1"  # the one the module was built with
    network.ipconfig(dns="10.0.0.53")
    assert network.ipconfig("dns") == "10.0.0.53" and network.ipconfig("prefer") == 4
    with pytest.raises(ValueError):
        network.ipconfig(prefer=6)
    assert network.hostname() == "pystack"
    network.hostname("board-7")
    sta = network.WLAN()
    assert sta.config("hostname") == "board-7"
    with pytest.raises(ValueError):
        network.hostname("x" * 33)
    network.country("GB")
    assert network.country() == "GB"
    sta.config(ssid="lab", pm=network.WLAN.PM_POWERSAVE)
    assert (sta.config("ssid"), sta.config("pm")) == ("lab", 0x111022)
    with pytest.raises(ValueError):
        sta.config("bogus")
    with pytest.raises(TypeError):
        sta.config("ssid", "channel")
    assert sta.status("rssi") == -40
    [(ssid, bssid, channel, rssi, security, hidden)] = sta.scan()
    assert (rssi, security) == (-40, 0)
    assert (ssid, channel, hidden) == (b"pystack", 1, False) and len(bssid) == 6


def test_hostname_goes_into_the_next_dhcp_messages(dhcp_board: Board) -> None:
    network = dhcp_board.network
    sta = network.WLAN()
    sta.connect()
    assert dhcp_board.wait_connected(sta)
    network.hostname("pico-w")
    sta.disconnect()
    sta.connect()
    assert dhcp_board.wait_connected(sta)
    server = dhcp_board.simulation.dhcp_server
    assert server is not None
    assert [lease.hostname for lease in server.server.leases.values()] == ["pico-w"]


def test_access_point_interface_stores_but_never_connects(static_board: Board) -> None:
    network = static_board.network
    ap = network.WLAN(network.AP_IF)
    ap.active(True)
    ap.config(ssid="mine", key="password")
    assert ap.config("ssid") == "mine" and ap.active() is True
    assert not ap.isconnected() and ap.status() == network.STAT_IDLE
    assert ap.ifconfig() == ("0.0.0.0",) * 4


def test_script_imports_network(script: ScriptRunner) -> None:
    with SimulatedNetwork(seed=8, dhcp=True, services="") as simulation:
        context = NetworkContext(simulation.thread, simulation.host)

        def factory(world: ScriptWorld) -> ModuleType:
            return network_module(context)

        script.providers.register("network", factory, ModuleKind.BUILTIN)
        outcome = script.run(
            """
            import network, time
            wlan = network.WLAN(network.STA_IF)
            wlan.active(True)
            wlan.connect('ssid', 'key')
            for _ in range(500):
                if wlan.isconnected():
                    break
                time.sleep_ms(10)
            print(wlan.status() == network.STAT_GOT_IP, wlan.ifconfig()[0])
            """
        )
    assert (outcome.status, outcome.out) == (0, "True 10.0.0.2\n"), outcome.err
