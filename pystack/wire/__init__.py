"""Pure packet codecs: bytes <-> small immutable values, one exception type.

Imports nothing but the standard library. Every ``parse`` validates completely and raises only
``MalformedPacket``; ``build`` is its exact inverse. See each module for its protocol.
"""

from pystack.wire.arp import ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import TCPOption, TCPSegment
from pystack.wire.udp import UDPDatagram

__all__ = [
    "ARPPacket",
    "EthernetFrame",
    "ICMPv4Message",
    "IPv4Packet",
    "MalformedPacket",
    "TCPOption",
    "TCPSegment",
    "UDPDatagram",
]
