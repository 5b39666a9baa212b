"""The one exception the codecs raise.

Every ``parse`` in ``pystack.wire`` validates its input completely and raises only
``MalformedPacket`` on bad bytes. ``reason`` is a short, stable, machine-readable code (for
example ``"ipv4.bad_checksum"``) that the stack maps to a counted drop; ``detail`` is for people.
"""

from __future__ import annotations


class MalformedPacket(ValueError):
    """Bytes that are not a valid packet of the expected kind."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def layer(self) -> str:
        """The protocol the reason belongs to (the part before the dot)."""
        return self.reason.split(".", 1)[0]
