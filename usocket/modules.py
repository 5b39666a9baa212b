"""Build the modules a script imports (``socket``/``usocket``, ``select``/``uselect``) for one
``NetworkContext``. A fresh module object per context: no global state, two stacks can run two
scripts in one process.
Entry points: ``socket_module``, ``select_module``, ``getaddrinfo_function``.
"""

from __future__ import annotations

import ipaddress
import sys
import types
from collections.abc import Callable
from typing import Any

from pystack.bufferview import BytearrayView
from pystack.wire.addresses import ip_from_str, ip_to_str
from usocket import constants as c
from usocket.context import NetworkContext
from usocket.errors import EINVAL, error
from usocket.polling import Poll, select_function
from usocket.socket import socket_type

EMPTY_NAME = -16  # USOCKET.md 3 getaddrinfo: lwIP's error for an empty host name
NOT_FOUND = -2  # the DNS callback reported failure (name not found, no server, timeout)
CONSTRAINT_WARNING = "RuntimeWarning: unsupported getaddrinfo constraints"


def getaddrinfo_function(context: NetworkContext) -> Callable[..., list[tuple[Any, ...]]]:
    def getaddrinfo(
        host: Any, port: Any, af: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        """USOCKET.md 3: always one 5-tuple (AF_INET, SOCK_STREAM, 0, '', (ip, port))."""
        if isinstance(host, bytes | bytearray):
            host = bytes(host).decode()
        if not isinstance(host, str):
            raise TypeError("host must be str")
        if not isinstance(port, int) or isinstance(port, bool):
            raise TypeError("port must be an int")  # CPython would accept a str
        if af not in (0, c.AF_INET, c.AF_INET6) or type not in (0, c.SOCK_STREAM) or proto or flags:
            print(CONSTRAINT_WARNING, file=sys.stderr)
        if not host:
            raise error(EMPTY_NAME)
        try:
            address = ip_from_str(host)
        except ValueError:
            resolve = context.resolve_name
            if resolve is None:
                raise error(NOT_FOUND) from None
            addresses = resolve(host, None)
            if not addresses:
                raise error(NOT_FOUND) from None
            address = addresses[0]
        return [(c.AF_INET, c.SOCK_STREAM, 0, "", (ip_to_str(address), port))]

    return getaddrinfo


def inet_pton(af: int, text: Any) -> bytes:
    """The unix port's ``inet_pton`` (``ports/unix/modsocket.c``): EINVAL when unparsable."""
    if not isinstance(af, int) or not isinstance(text, str):
        raise TypeError("inet_pton(af, str)")
    try:
        if af == c.AF_INET:
            return ipaddress.IPv4Address(text).packed
        if af == c.AF_INET6:
            return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise error(EINVAL) from None
    raise error(EINVAL)


def inet_ntop(af: int, packed: Any) -> str:
    """The unix port's ``inet_ntop``: 4 bytes for AF_INET, 16 for AF_INET6, else EINVAL."""
    data = (
        bytes(packed)
        if isinstance(packed, bytes | bytearray | memoryview | BytearrayView)
        else None
    )
    if data is None:
        raise TypeError("object with buffer protocol required")
    if af == c.AF_INET and len(data) == 4:
        return str(ipaddress.IPv4Address(data))
    if af == c.AF_INET6 and len(data) == 16:
        return str(ipaddress.IPv6Address(data))
    raise error(EINVAL)


def socket_module(
    context: NetworkContext, name: str = "socket", extensions: bool = False
) -> types.ModuleType:
    """The lwIP module surface exactly; ``extensions`` adds the unix port's ``inet_pton`` and
    ``inet_ntop`` (USOCKET.md decision 1: off unless asked for, since hasattr() probes see them)."""
    module = types.ModuleType(name, "MicroPython's lwIP socket module, on a pystack stack")
    for constant in c.EXPORTED:
        setattr(module, constant, getattr(c, constant))
    module.socket = socket_type(context)  # type: ignore[attr-defined]
    module.getaddrinfo = getaddrinfo_function(context)  # type: ignore[attr-defined]
    if extensions:
        module.inet_pton = inet_pton  # type: ignore[attr-defined]
        module.inet_ntop = inet_ntop  # type: ignore[attr-defined]
    return module


def select_module(context: NetworkContext, name: str = "select") -> types.ModuleType:
    module = types.ModuleType(name, "MicroPython's select module (extmod/modselect.c)")
    for constant in ("POLLIN", "POLLOUT", "POLLERR", "POLLHUP"):
        setattr(module, constant, getattr(c, constant))
    module.poll = lambda: Poll(context)  # type: ignore[attr-defined]
    module.select = select_function(context)  # type: ignore[attr-defined]
    return module
