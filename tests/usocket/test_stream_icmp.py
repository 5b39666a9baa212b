"""ICMP errors answering a TCP connect, as the script sees them (USOCKET.md 3 connect and
docs/policies.md, usocket streams): a port or protocol unreachable ends the connect at once with
the errno a refusal gives on a board, ECONNRESET (lwIP's ERR_RST; Linux says ECONNREFUSED); a
host unreachable is a soft error (RFC 5461), so the SYN is retried and, when the retries give up,
connect fails with EHOSTUNREACH (lwIP's errno for an unreachable host).

The ICMP message is sent by the simulated peer (10.0.0.1, the host's gateway), quoting the SYN
the host sent to an address beyond it, as a router would.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest

from pystack.sim.world import SimulatedNetwork
from pystack.wire import icmpv4
from pystack.wire.addresses import ip_from_str
from pystack.wire.ipv4 import IPv4Packet
from usocket.context import NetworkContext
from usocket.errors import ECONNRESET, EHOSTUNREACH, EINPROGRESS
from usocket.modules import select_module, socket_module

BEYOND = "192.0.2.10"  # TEST-NET-1, reached through the gateway; nobody answers there
PROTO_ICMP, PROTO_TCP = 1, 6


@pytest.fixture
def sim() -> Any:
    with SimulatedNetwork() as network:
        yield network


def _connect_nonblocking(socket: Any) -> Any:
    s = socket.socket()
    s.setblocking(False)
    with pytest.raises(OSError) as raised:
        s.connect((BEYOND, 80))
    assert raised.value.errno == EINPROGRESS
    return s


def _icmp_for_syn(sim: SimulatedNetwork, s: Any, code: int) -> None:
    connection = s._part.tcp.connection
    quoted_tcp = struct.pack("!HHI", connection.local_port, 80, connection.iss)
    quote = IPv4Packet(connection.local_address, ip_from_str(BEYOND), PROTO_TCP, quoted_tcp)
    message = icmpv4.ICMPv4Message.destination_unreachable(code, quote.build())
    peer = sim.peer
    sim.thread.call(
        lambda: peer.ip.send(ip_from_str("10.0.0.2"), PROTO_ICMP, message.build(), peer.clock.now())
    )


def test_port_unreachable_answering_a_syn_is_econnreset(sim: SimulatedNetwork) -> None:
    context = NetworkContext(sim.thread, sim.host)
    socket, select = socket_module(context), select_module(context)
    s = _connect_nonblocking(socket)
    _icmp_for_syn(sim, s, icmpv4.PORT_UNREACHABLE)
    poller = select.poll()
    poller.register(s, select.POLLIN)
    assert poller.poll(2000) == [(s, select.POLLIN | select.POLLERR | select.POLLHUP)]
    with pytest.raises(OSError) as raised:
        s.recv(10)
    assert raised.value.args == (ECONNRESET,)
    s.close()


def test_host_unreachable_is_soft_and_ends_as_ehostunreach_when_the_syn_gives_up(
    sim: SimulatedNetwork,
) -> None:
    settings = dataclasses.replace(sim.host.tcp.settings, syn_retries=1)
    sim.thread.call(lambda: setattr(sim.host.tcp, "settings", settings))
    context = NetworkContext(sim.thread, sim.host)
    socket = socket_module(context)
    s = _connect_nonblocking(socket)
    connection = s._part.tcp.connection
    connection.settings = settings
    _icmp_for_syn(sim, s, icmpv4.HOST_UNREACHABLE)
    assert sim.thread.wait_for(lambda: connection.soft_error is not None, 2.0)
    assert sim.thread.call(lambda: connection.error) is None  # soft: the SYN is still retried
    s.setblocking(True)
    assert sim.thread.wait_for(lambda: connection.error is not None, 10.0)
    with pytest.raises(OSError) as raised:
        s.recv(10)
    assert raised.value.args == (EHOSTUNREACH,)
    s.close()
