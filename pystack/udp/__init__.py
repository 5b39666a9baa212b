"""UDP (RFC 768) for a stack: endpoints with lwIP's semantics, the port table, multicast use.

``UDPLayer`` (``layer.py``) is created by ``Stack`` as ``stack.udp``; ``UDPLayer.open`` returns a
``UDPEndpoint`` (``endpoint.py``), the object the socket layer wraps. IGMP, which multicast
membership needs, is ``pystack.ip.igmp`` (owned by the UDP layer as ``stack.udp.igmp``).
Settings are ``UDPSettings`` (``settings.py``). Sans-IO throughout: ``now`` comes in.
"""

from pystack.udp.endpoint import UDPEndpoint
from pystack.udp.layer import UDPLayer
from pystack.udp.settings import UDPSettings

__all__ = ["UDPEndpoint", "UDPLayer", "UDPSettings"]
