"""MicroPython's ``network`` module for scripts, backed by one pystack stack.

``network_module(context)`` builds a fresh module for a ``NetworkContext``: ``WLAN(STA_IF)``,
``WLAN(AP_IF)`` and ``LAN()`` (one object per interface id per module, as on the boards), the
module-level ``ipconfig(dns=..., prefer=...)``, ``hostname()`` and ``country()``. Nothing is
global; every stack access runs under the stack lock (``context.call``).

What the calls mean on pystack (the stack's one interface stands for the board's STA or LAN):

- ``active(True)`` just records it; ``connect(ssid, key)`` activates and "joins" at once: with a
  DHCP stack (``StackConfig(address="dhcp")``, or after ``ipconfig(dhcp4=True)`` or
  ``ifconfig('dhcp')``) it (re)starts the DHCP client and the address comes later, as on a
  board; otherwise the static address (re)appears immediately. ``disconnect()`` and
  ``active(False)`` drop the address (a DHCP lease is released). The stack is up from the start,
  so a script that never calls ``connect`` still has a working network.
- ``isconnected()``: connected and the interface has an address. ``status()`` uses the rp2
  (Pico W, cyw43) numbers: STAT_IDLE 0, STAT_CONNECTING 1, STAT_GOT_IP 3, STAT_CONNECT_FAIL -1,
  STAT_NO_AP_FOUND -2, STAT_WRONG_PASSWORD -3 (esp32 uses 1000, 1001, 1010, ...: scripts that
  compare with the constants work on both). ``status('rssi')`` is a steady -40.
- ``ifconfig()`` is ``(ip, mask, gateway, dns)`` as strings; setting it configures the stack
  statically (a running DHCP client is stopped, as esp32 does). ``ipconfig('addr4')`` ->
  ``(ip, mask)``, ``'gw4'``, ``'dhcp4'``, ``'has_dhcp4'``; ``ipconfig(addr4='a.b.c.d/n',
  gw4=..., dhcp4=True)``. The DNS server is the DHCP lease's unless set by
  ``ifconfig``/``ipconfig(dns=)``, else the ``dns_servers`` the module was built with: it is
  reported only (the resolver's servers are fixed when it is built).
- ``config('mac')`` is the stack's MAC (6 bytes); ``ssid``, ``key``, ``hostname``, ``channel``,
  ``pm`` are stored; ``scan()`` lists one access point, the pystack network itself.
- ``WLAN(AP_IF)`` has no pystack counterpart: it stores its settings, is never connected and
  reports ``0.0.0.0``.
Entry points: ``network_module``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable
from typing import Any, TypeVar

from pystack.dhcp.client import DHCPState, StackDHCPClient, attach_dhcp_client, dhcp_client
from pystack.wire.addresses import ip_from_str, ip_to_str, parse_cidr, prefix_mask
from usocket.context import NetworkContext

T = TypeVar("T")
InterfaceT = TypeVar("InterfaceT", bound="_Interface")
STA_IF, AP_IF = 0, 1
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 0, 1, 3
STAT_CONNECT_FAIL, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = -1, -2, -3
PM_NONE, PM_PERFORMANCE, PM_POWERSAVE = 0x10, 0xA11142, 0x111022  # rp2 (cyw43) values
DEFAULT_HOSTNAME = "pystack"
HOSTNAME_MAX_LENGTH = 32  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
RSSI = -40
ZERO = "0.0.0.0"


def _mask_to_prefix(text: str) -> int:
    mask = ip_from_str(text)
    length = bin(mask).count("1")
    if mask != prefix_mask(length):
        raise ValueError("invalid netmask")
    return length


class _Network:
    """What one module instance knows beyond the stack: names, DNS, interface objects."""

    def __init__(self, context: NetworkContext, dns_servers: tuple[int, ...]) -> None:
        self.context = context
        self.default_dns = dns_servers
        self.dns: int | None = None  # set by ifconfig / ipconfig(dns=)
        self.hostname = DEFAULT_HOSTNAME
        self.country = "XX"
        self.interfaces: dict[tuple[str, int], _Interface] = {}

    def call(self, function: Callable[[], T]) -> T:
        return self.context.call(function)

    def dns_server(self) -> int:
        if self.dns is not None:
            return self.dns
        dhcp = dhcp_client(self.context.stack)
        lease = dhcp.lease if dhcp is not None else None
        servers = lease.dns_servers if lease is not None and lease.dns_servers else self.default_dns
        return servers[0] if servers else 0

    def instance(self, kind: type[InterfaceT], key: tuple[str, int], station: bool) -> InterfaceT:
        """The one object of ``kind`` for ``key`` in this module (made on first use)."""
        existing = self.interfaces.get(key)
        if not isinstance(existing, kind):
            existing = object.__new__(kind)
            existing.setup(self, station)
            self.interfaces[key] = existing
        return existing


class _Interface:
    """One network interface object (``WLAN`` or ``LAN``); see the module docstring."""

    _network: _Network  # set on the per-module subclass and on each instance

    def setup(self, network: _Network, station: bool) -> None:
        self._network = network
        self._is_station = station
        self._active = False
        self._connected = False
        self._static: tuple[int, int, int | None] | None = None  # restored by connect()
        self._settings: dict[str, Any] = {"ssid": "", "key": "", "channel": 1, "pm": PM_NONE}

    # -- the stack --------------------------------------------------------------------------
    def _dhcp(self) -> StackDHCPClient | None:
        return dhcp_client(self._network.context.stack)

    def _address(self) -> tuple[int, int, int | None]:
        ip = self._network.context.stack.ip
        return ip.address, ip.settings.prefix_length, ip.settings.gateway

    def _configure(self, address: int, prefix: int, gateway: int | None) -> None:
        self._network.context.stack.ip.configure(address, prefix, gateway)

    # -- link --------------------------------------------------------------------------------
    def active(self, is_active: bool | None = None) -> bool | None:
        if is_active is None:
            return self._active
        if not is_active and self._active:
            self.disconnect()
        self._active = bool(is_active)
        return None

    def connect(self, ssid: str | None = None, key: str | None = None, **options: Any) -> None:
        if ssid is not None:
            self._settings["ssid"] = ssid
        if key is not None:
            self._settings["key"] = key
        self._active = True
        self._connected = True
        if self._is_station:
            self._network.call(self._join)

    def _join(self) -> None:
        dhcp, now = self._dhcp(), self._network.context.now()
        if dhcp is not None:
            if dhcp.state is DHCPState.STOPPED:
                dhcp.start(now)
        elif self._static is not None and not self._address()[0]:
            self._configure(*self._static)

    def disconnect(self) -> None:
        was_connected, self._connected = self._connected, False
        if self._is_station and was_connected:
            self._network.call(self._leave)

    def _leave(self) -> None:
        dhcp = self._dhcp()
        if dhcp is not None:
            dhcp.stop(self._network.context.now(), release=True)
        elif self._address()[0]:
            self._static = self._address()
            self._configure(0, 0, None)

    def isconnected(self) -> bool:
        if not (self._is_station and self._connected):
            return False
        return bool(self._network.call(lambda: self._address()[0]))

    def status(self, parameter: str | None = None) -> int:
        if parameter is not None:
            if parameter != "rssi":
                raise ValueError("unknown status param")
            return RSSI
        if not (self._is_station and self._connected):
            return STAT_IDLE
        return STAT_GOT_IP if self.isconnected() else STAT_CONNECTING

    def scan(self) -> list[tuple[bytes, bytes, int, int, int, bool]]:
        mac = self._network.context.stack.mac
        return [(b"pystack", mac, self._settings["channel"], RSSI, 0, False)]

    # -- addresses ---------------------------------------------------------------------------
    def ifconfig(self, configuration: Any = None) -> tuple[str, str, str, str] | None:
        if configuration is None:
            if not self._is_station:
                return (ZERO, ZERO, ZERO, ZERO)
            address, prefix, gateway = self._network.call(self._address)
            dns = self._network.call(self._network.dns_server)
            mask = prefix_mask(prefix) if address else 0
            return (ip_to_str(address), ip_to_str(mask), ip_to_str(gateway or 0), ip_to_str(dns))
        if configuration == "dhcp":
            self.ipconfig(dhcp4=True)
            return None
        if not isinstance(configuration, tuple | list) or len(configuration) != 4:
            raise TypeError("ifconfig() takes a 4-tuple (ip, mask, gateway, dns)")
        text = [str(part) for part in configuration]
        address, prefix, gateway = (
            ip_from_str(text[0]),
            _mask_to_prefix(text[1]),
            ip_from_str(text[2]),
        )
        self._network.dns = ip_from_str(text[3])
        if self._is_station:
            self._network.call(lambda: self._set_static(address, prefix, gateway or None))
        return None

    def _set_static(self, address: int, prefix: int, gateway: int | None) -> None:
        dhcp = self._dhcp()
        if dhcp is not None and dhcp.state is not DHCPState.STOPPED:
            dhcp.stop(self._network.context.now(), release=False)
        self._static = (address, prefix, gateway)
        self._configure(address, prefix, gateway)

    def _start_dhcp(self) -> None:
        stack = self._network.context.stack
        dhcp = dhcp_client(stack)
        if dhcp is None:
            dhcp = attach_dhcp_client(stack, start=False)
        if dhcp.state is DHCPState.STOPPED or not dhcp.client.started:
            self._configure(0, 0, None)  # RFC 2131 4.1: DHCP from 0.0.0.0 until bound
            dhcp.start(self._network.context.now())

    def ipconfig(self, *query: str, **settings: Any) -> Any:
        if query and settings:
            raise TypeError("either query or set")
        if query:
            if len(query) != 1:
                raise TypeError("can query only one param")
            return self._network.call(lambda: self._ipconfig_get(query[0]))
        for key, value in settings.items():
            if key not in ("addr4", "gw4", "dhcp4"):
                raise ValueError("unexpected key")
            self._network.call(functools.partial(self._ipconfig_set, key, value))
        return None

    def _ipconfig_get(self, key: str) -> Any:
        address, prefix, gateway = self._address()
        dhcp = self._dhcp()
        if key == "addr4":
            return (ip_to_str(address), ip_to_str(prefix_mask(prefix) if address else 0))
        if key == "gw4":
            return ip_to_str(gateway or 0)
        if key == "dhcp4":
            return dhcp is not None and dhcp.state is not DHCPState.STOPPED
        if key == "has_dhcp4":
            return dhcp is not None and dhcp.lease is not None
        if key == "addr6":
            return []
        if key in ("autoconf6", "has_autoconf6"):
            return False
        raise ValueError("unexpected key")

    def _ipconfig_set(self, key: str, value: Any) -> None:
        address, prefix, gateway = self._address()
        if key == "dhcp4":
            dhcp = self._dhcp()
            if value:
                self._start_dhcp()
            elif dhcp is not None:
                dhcp.stop(self._network.context.now(), release=True)
            return
        if key == "addr4":
            if isinstance(value, tuple | list):
                address, prefix = ip_from_str(value[0]), _mask_to_prefix(value[1])
            else:
                address, prefix = parse_cidr(str(value))
        else:
            gateway = ip_from_str(str(value)) or None
        self._set_static(address, prefix, gateway)

    # -- settings ----------------------------------------------------------------------------
    def config(self, *query: str, **settings: Any) -> Any:
        if query and settings:
            raise TypeError("either pos or kw args are allowed")
        if query:
            if len(query) != 1:
                raise TypeError("can query only one param")
            name = query[0]
            if name == "mac":
                return bytes(self._network.context.stack.mac)
            if name in ("hostname", "dhcp_hostname"):
                return self._network.hostname
            if name not in self._settings:
                raise ValueError("unknown config param")
            return self._settings[name]
        for name, value in settings.items():
            if name in ("hostname", "dhcp_hostname"):
                _set_hostname(self._network, value)
            elif name in self._settings or name in ("security", "txpower", "reconnects"):
                self._settings[name] = value
            else:
                raise ValueError("unknown config param")
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'STA' if self._is_station else 'AP'}>"


def _set_hostname(network: _Network, name: object) -> None:
    text = str(name)
    if len(text) > HOSTNAME_MAX_LENGTH:
        raise ValueError("hostname too long")
    network.hostname = text
    dhcp = dhcp_client(network.context.stack)
    if dhcp is not None:  # option 12 of the next DHCP messages

        def apply() -> None:
            dhcp.client.settings = dataclasses.replace(dhcp.client.settings, hostname=text)

        network.call(apply)


class _WLAN(_Interface):
    def __new__(cls, interface_id: int = STA_IF) -> _WLAN:
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("unknown interface")
        return cls._network.instance(cls, ("WLAN", interface_id), interface_id == STA_IF)

    def __init__(self, interface_id: int = STA_IF) -> None:
        pass  # the one object per interface was set up by __new__

    PM_NONE, PM_PERFORMANCE, PM_POWERSAVE = PM_NONE, PM_PERFORMANCE, PM_POWERSAVE


class _LAN(_Interface):
    def __new__(cls, *args: Any, **options: Any) -> _LAN:  # the board's PHY pins are ignored
        return cls._network.instance(cls, ("LAN", 0), True)

    def __init__(self, *args: Any, **options: Any) -> None:
        pass


def network_module(
    context: NetworkContext, dns_servers: tuple[int, ...] = (), name: str = "network"
) -> types.ModuleType:
    """A ``network`` module bound to ``context``'s stack; ``dns_servers``: what ``ifconfig()``
    reports as DNS when neither DHCP nor the script set one."""
    network = _Network(context, dns_servers)
    module = types.ModuleType(name, "MicroPython's network module, on a pystack stack")

    namespace = {"_network": network, "__module__": name}
    wlan = type("WLAN", (_WLAN,), namespace)
    lan = type("LAN", (_LAN,), namespace)

    def ipconfig(*query: str, **settings: Any) -> Any:
        if query and settings:
            raise TypeError("either query or set")
        if query:
            if query[0] == "dns":
                return ip_to_str(network.call(network.dns_server))
            if query[0] == "prefer":
                return 4
            raise ValueError("unexpected key")
        for key, value in settings.items():
            if key == "dns":
                network.dns = ip_from_str(str(value))
            elif key == "prefer":
                if value != 4:
                    raise ValueError("only IPv4 on pystack")
            else:
                raise ValueError("unexpected key")
        return None

    def hostname(name: str | None = None) -> str | None:
        if name is None:
            return network.hostname
        _set_hostname(network, name)
        return None

    def country(code: str | None = None) -> str | None:
        if code is None:
            return network.country
        network.country = str(code)
        return None

    values: dict[str, Any] = {
        "WLAN": wlan,
        "LAN": lan,
        "ipconfig": ipconfig,
        "hostname": hostname,
        "country": country,
        "STA_IF": STA_IF,
        "AP_IF": AP_IF,
        "STAT_IDLE": STAT_IDLE,
        "STAT_CONNECTING": STAT_CONNECTING,
        "STAT_GOT_IP": STAT_GOT_IP,
        "STAT_CONNECT_FAIL": STAT_CONNECT_FAIL,
        "STAT_NO_AP_FOUND": STAT_NO_AP_FOUND,
        "STAT_WRONG_PASSWORD": STAT_WRONG_PASSWORD,
    }
    for key, value in values.items():
        setattr(module, key, value)
    return module
