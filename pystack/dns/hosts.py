"""Names answered without DNS: hosts tables and numeric addresses.

A hosts table is in the /etc/hosts format (hosts(5)): ``address name [alias...]`` per line.

Text after ``#`` is a comment. Only IPv4 dotted quads are taken; IPv6 lines, lines without a name
and names that cannot be encoded are skipped. Names are keyed case-insensitively
(``pystack.wire.dns.name_key``); when a name appears twice the first line wins, as in glibc's
``files`` backend. ``parse_hosts`` is pure; ``load_hosts_file`` only adds the file read. ``numeric_address`` reads
an address the way lwIP's ``ip4addr_aton`` does (what MicroPython's getaddrinfo short-circuits).
"""

from __future__ import annotations

import os

from pystack.wire.addresses import ip_from_str
from pystack.wire.dns import DomainNameError, name_key


def parse_hosts(text: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ip_from_str(fields[0])
        except ValueError:
            continue
        for name in fields[1:]:
            try:
                key = name_key(name)
            except DomainNameError:
                continue
            if key:
                table.setdefault(key, address)
    return table


def load_hosts_file(path: str | os.PathLike[str]) -> dict[str, int]:
    """The table in the file at ``path`` (``OSError`` when it cannot be read)."""
    with open(path, encoding="utf-8", errors="replace") as file:
        return parse_hosts(file.read())


def numeric_address(text: str) -> int | None:
    """lwIP's ``ip4addr_aton``: 1 to 4 dot-separated parts, each decimal, octal (leading 0) or
    hex (0x); the last part fills the remaining bytes (``"10.1"`` is 10.0.0.1). Anything after a
    whitespace character is ignored, as in lwIP. ``None`` when ``text`` is not such an address."""
    parts: list[int] = []
    index, size = 0, len(text)
    while True:
        if index >= size or not "0" <= text[index] <= "9":
            return None
        value, base = 0, 10
        if text[index] == "0":
            index += 1
            base = 8
            if index < size and text[index] in "xX":
                base, index = 16, index + 1
        while index < size:
            digit = _digit(text[index], base)
            if digit is None:
                break
            value = (value * base + digit) & 0xFFFFFFFF
            index += 1
        if index < size and "0" <= text[index] <= "9":
            return None  # 8 or 9 in an octal part
        if index < size and text[index] == ".":
            if len(parts) >= 3:
                return None
            parts.append(value)
            index += 1
            continue
        break
    if index < size and text[index] not in " \t\n\r\f\v":  # lwip_isspace
        return None
    if any(part > 0xFF for part in parts) or value >= 1 << (8 * (4 - len(parts))):
        return None
    for shift, part in enumerate(parts):
        value |= part << (24 - 8 * shift)
    return value


def _digit(char: str, base: int) -> int | None:
    if "0" <= char <= "9":
        digit = ord(char) - 48
        return digit if digit < base else None
    if base == 16 and char in "abcdefABCDEF":
        return int(char, 16)
    return None
