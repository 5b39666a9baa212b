"""The eleven TCP states, named as in RFC 9293 3.3.2."""

from __future__ import annotations

import enum


class TCPState(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    @property
    def synchronized(self) -> bool:
        """RFC 9293 3.10.7.4: the states after the three-way handshake completed."""
        return self not in _UNSYNCHRONIZED

    @property
    def may_send(self) -> bool:
        """The state allows new data from the application."""
        return self in (TCPState.ESTABLISHED, TCPState.CLOSE_WAIT)

    @property
    def may_receive(self) -> bool:
        """The peer may still send data (no FIN from it yet)."""
        return self in (TCPState.ESTABLISHED, TCPState.FIN_WAIT_1, TCPState.FIN_WAIT_2)


_UNSYNCHRONIZED = frozenset(
    {TCPState.CLOSED, TCPState.LISTEN, TCPState.SYN_SENT, TCPState.SYN_RECEIVED}
)
