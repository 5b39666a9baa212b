"""Socket addresses as modlwip parses them (``lwip_parse_inet_addr``).

An address is a tuple or list of exactly two items: a numeric IPv4 string (or bytes; ``""`` is
INADDR_ANY) and an int port. Something other than a tuple or list is ``TypeError``, another
length or a host that is not a numeric address ``ValueError`` ("invalid arguments"): modlwip
does not resolve names here, CPython would.
"""

from __future__ import annotations

from pystack.wire.addresses import ip_from_str, ip_to_str


def parse_address(address: object) -> tuple[int, int]:
    if not isinstance(address, tuple | list):  # mp_obj_get_array_fixed_n: TypeError
        raise TypeError(f"object '{type(address).__name__}' isn't a tuple or list")
    if len(address) != 2:
        raise ValueError(f"requested length 2 but object has length {len(address)}")
    host, port = address
    if isinstance(host, bytes | bytearray):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        if not isinstance(host, str):
            raise TypeError("host must be a str")
        raise TypeError("port must be an int")
    if not 0 <= port <= 0xFFFF:
        raise ValueError("invalid arguments")
    if host == "":
        return 0, port
    try:
        return ip_from_str(host), port
    except ValueError:
        raise ValueError("invalid arguments") from None


def format_address(address: tuple[int, int]) -> tuple[str, int]:
    return ip_to_str(address[0]), address[1]
