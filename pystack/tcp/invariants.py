"""What must hold in TCP between any two inputs: sequence-space sanity and every bound.

The fuzzer (``pystack.fuzz``) calls these after each input it feeds a stack, and a script's
``expect invariants`` line calls them at its point, so a fuzzer's finding replays as a script.
They only read: nothing here changes a connection, a queue or a table. Each returns the list of
problems found, as one readable line each (an empty list: all is well).

Per connection (``connection_problems``), in sequence-space arithmetic (mod 2**32):

- ``SND.UNA <= SND.NXT <= SND.MAX``: nothing is acknowledged before it was sent, and the next
  byte to send is never beyond the highest one sent (RFC 9293 3.3.1);
- what is in flight (``SND.MAX - SND.UNA``) is at most the send buffer plus SYN and FIN: a
  byte can only be sent from the buffer that holds it until it is acknowledged;
- each buffer within its configured bound (``send_buffer``, ``receive_buffer``,
  ``out_of_order_limit``), and the reassembly queue's bytes all beyond ``RCV.NXT``;
- ``RCV.NXT`` no further beyond the last advertised right edge than the receive buffer holds
  (data taken in order fits the window the peer was shown, or the room behind it);
- window shifts at most 14 (RFC 7323 2.3) and ``SND.WND`` within what a 16-bit field scaled
  by the peer's shift can say;
- a connection in the table is not CLOSED (a closed one leaves it at once).

For the layer (``layer_problems``): the connection table within ``max_connections``, each
listener's SYN queue within ``syn_queue`` and its accept queue within its backlog, the
TIME-WAIT and orphan sets within the table, the buffer pool's count not negative. That
``RCV.NXT`` only moves forward needs two moments, so the fuzzer checks it itself.
Entry points: ``connection_problems``, ``layer_problems``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pystack.tcp.seq import seq_diff, seq_le
from pystack.tcp.state import TCPState

if TYPE_CHECKING:
    from pystack.tcp.connection import TCPConnection
    from pystack.tcp.layer import TCPLayer

MAX_WSCALE = 14  # RFC 7323 2.3
SYN_AND_FIN = 2  # each takes one sequence number and no buffer byte


def connection_problems(connection: TCPConnection) -> list[str]:
    """Every invariant this connection breaks, one line each."""
    c = connection
    problems: list[str] = []
    if c.state is TCPState.CLOSED:
        return problems  # nothing is promised of a closed block (its buffers are released)
    if not seq_le(c.snd_una, c.snd_nxt):
        problems.append(f"SND.UNA {c.snd_una} is beyond SND.NXT {c.snd_nxt}")
    if not seq_le(c.snd_nxt, c.snd_max):
        problems.append(f"SND.NXT {c.snd_nxt} is beyond SND.MAX {c.snd_max}")
    in_flight = seq_diff(c.snd_max, c.snd_una)
    if in_flight > len(c.send_buffer) + SYN_AND_FIN:
        problems.append(
            f"{in_flight} sequence numbers in flight, but the send buffer holds only "
            f"{len(c.send_buffer)} bytes"
        )
    for name, held, bound in (
        ("send buffer", len(c.send_buffer), c.send_buffer.capacity),
        ("receive buffer", len(c.receive_buffer), c.receive_buffer.capacity),
        ("out-of-order queue", c.out_of_order.bytes_held, c.out_of_order.limit),
    ):
        if held > bound:
            problems.append(f"{name} holds {held} bytes, more than its bound {bound}")
    if c.rcv_adv is not None and not c.read_shutdown:
        beyond = seq_diff(c.rcv_nxt, c.rcv_adv)
        if beyond > c.receive_buffer.capacity:
            problems.append(
                f"RCV.NXT {c.rcv_nxt} is {beyond} beyond the advertised edge {c.rcv_adv}: "
                "data outside the window was taken"
            )
    for name, shift in (("send", c.snd_wscale), ("receive", c.rcv_wscale)):
        if not 0 <= shift <= MAX_WSCALE:
            problems.append(f"{name} window shift {shift} outside 0..{MAX_WSCALE}")
    if not 0 <= c.snd_wnd <= 0xFFFF << min(max(c.snd_wscale, 0), MAX_WSCALE):
        problems.append(f"SND.WND {c.snd_wnd} is more than a scaled window field can say")
    return problems


def layer_problems(layer: TCPLayer) -> list[str]:
    """Every table bound the layer breaks, and each table connection's problems."""
    settings = layer.settings
    problems: list[str] = []
    if len(layer.connections) > settings.max_connections:
        problems.append(
            f"{len(layer.connections)} connections, more than max_connections "
            f"{settings.max_connections}"
        )
    for listener in layer.listeners.values():
        if len(listener.syn_queue) > settings.syn_queue:
            problems.append(
                f"listener {listener.port}: {len(listener.syn_queue)} half-open entries, "
                f"more than syn_queue {settings.syn_queue}"
            )
        if len(listener.accept_queue) > listener.backlog:
            problems.append(
                f"listener {listener.port}: {len(listener.accept_queue)} waiting to be "
                f"accepted, more than its backlog {listener.backlog}"
            )
    table = set(layer.connections.values())
    for name, members in (("TIME-WAIT", layer.time_wait), ("orphan", layer.orphans)):
        strays = [c for c in members if c not in table]
        if strays:
            problems.append(f"{len(strays)} {name} connection(s) not in the connection table")
    if layer.memory.held < 0:
        problems.append(f"the buffer pool counts {layer.memory.held} bytes held")
    for connection in layer.connections.values():
        where = f"{connection.local_port}->{connection.remote_port} {connection.state.value}"
        problems += [f"{where}: {problem}" for problem in connection_problems(connection)]
        if connection.state is TCPState.CLOSED:
            problems.append(f"{where}: a CLOSED connection is still in the table")
    return problems
