"""The fuzzing peer: sequences of socket calls and packets that respect their dependencies.

As TCP-Fuzz (Zou et al., USENIX ATC 2021) generates them: a case is a sequence of actions, and
each action is drawn from what makes sense *now*, given what pystack has sent and what the
application has done. A ``send`` comes after a connection exists and only as much as it can
take; a ``read`` only of what is readable; an ACK acknowledges data pystack sent (or just
beyond it, or just before); data goes in order, into holes, or across the window's edges, which
the peer knows from the windows pystack advertised; a SYN-ACK answers pystack's SYN. Around the
well-formed core: RSTs, SYNs and random flag combinations, ICMP errors quoting packets pystack
sent (also on the reference connection), UDP and other garbage, replayed and held-back (so
reordered) packets, blind attacks on the reference connection that RFC 5961 says it must survive,
and structure-aware damage to any packet (``packets.mutate``). Time passes in steps from a
millisecond to minutes, so timers (delayed ACK, RTO, persist, keepalive, TIME-WAIT) fire.

The fuzzing peer's data is always the script pattern at its sequence number, so every ``read``
the case makes checks that pystack delivered exactly the peer's bytes.
Entry points: ``run_case``, ``CaseResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pystack.fuzz import packets as pk
from pystack.fuzz.choices import Choices
from pystack.fuzz.world import CaseOver, Finding, Triple, World
from pystack.script.matching import pattern
from pystack.script.runner import DEFAULT_LOCAL_PORT, DEFAULT_PEER_PORT, PEER_ADDRESS
from pystack.tcp.connection import TCPConnection
from pystack.tcp.seq import seq_add, seq_diff, seq_gt
from pystack.tcp.state import TCPState
from pystack.wire import tcp
from pystack.wire.errors import MalformedPacket
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import ACK, FIN, PSH, RST, SYN, TCPSegment

MASK = 0xFFFFFFFF
MAX_ACTIONS = 48  # per case
MAX_PEERS = 16  # connections the fuzzing peer keeps track of
HISTORY = 32  # packets kept for replaying and quoting
WAITS = (0.0005, 0.005, 0.04, 0.2, 1.0, 3.0, 10.0, 65.0, 300.0)
BURST = 64  # segments in one burst
SYN_FLOOD = 300  # SYNs in one flood: more than a listener's SYN queue (256), so cookies answer
# action weights: call, open/handshake, data, ack, control, icmp, garbage, replay, blind, time
WEIGHTS = (22, 10, 16, 10, 8, 5, 4, 5, 5, 15)


@dataclass
class PeerSide:
    """The fuzzing peer's view of one connection: its own numbers, and what pystack sent."""

    port: int  # the peer's port
    local: int  # pystack's port
    iss: int
    nxt: int
    syn_sent: bool = False
    fin_sent: bool = False
    host_isn: int | None = None
    host_max: int = 0  # one beyond the highest sequence number pystack sent
    host_ack: int | None = None  # pystack's latest ACK: what it has of ours
    host_window: int = 65535
    host_wscale: int = 0
    host_tsval: int | None = None
    tsval: int = 1000
    timestamps: bool = False
    handshake_acked: bool = False


@dataclass
class CaseResult:
    """What one case did: the transitions it reached, its finding, its lines (a script)."""

    coverage: set[Triple]
    finding: Finding | None
    lines: tuple[str, ...]
    actions: int = 0
    packets: int = 0


@dataclass
class FuzzPeer:
    """The fuzzing peer of one case: its connections as it sees them, the packets it sent (to
    replay, or held back to send out of order), pystack's latest packets (to quote in ICMP
    errors), and how much the application has read of each connection (so a ``read`` is only
    made where the runner can check its bytes)."""

    world: World
    choices: Choices
    peers: dict[tuple[int, int], PeerSide] = field(default_factory=dict)
    history: list[tuple[bytes, ...]] = field(default_factory=list)
    held: list[tuple[bytes, ...]] = field(default_factory=list)
    host_packets: list[bytes] = field(default_factory=list)
    consumed: dict[TCPConnection, int] = field(default_factory=dict)
    packets: int = 0

    # what pystack sent --------------------------------------------------------------------------
    def observe(self) -> None:
        world = self.world
        inbox = list(world.to_peer)
        world.to_peer.clear()
        for frame in inbox:
            self.host_packets = [*self.host_packets[-HISTORY + 1 :], frame]
            try:
                packet = IPv4Packet.parse(frame)
                if packet.protocol != PROTO_TCP or packet.is_fragment:
                    continue
                segment = TCPSegment.parse(packet.payload, packet.src, packet.dst)
            except MalformedPacket:
                continue
            self._learn(segment)

    def _learn(self, segment: TCPSegment) -> None:
        key = (segment.dst_port, segment.src_port)
        peer = self.peers.get(key)
        if peer is None:
            if not segment.flags & SYN or segment.flags & ACK or len(self.peers) >= MAX_PEERS:
                return
            iss = self.choices.u32()
            peer = self.peers[key] = PeerSide(key[0], key[1], iss, iss)
        if segment.flags & SYN:
            peer.host_isn = segment.seq
            if segment.wscale is not None:
                peer.host_wscale = min(segment.wscale, 14)
        length = len(segment.payload) + (1 if segment.flags & SYN else 0)
        length += 1 if segment.flags & FIN else 0
        end = seq_add(segment.seq, length)
        if peer.host_isn is not None and (peer.host_max == 0 or seq_gt(end, peer.host_max)):
            peer.host_max = end
        if segment.flags & ACK:
            peer.host_ack = segment.ack
            peer.host_window = segment.window
        if segment.timestamp is not None:
            peer.host_tsval = segment.timestamp[0]

    # one action ---------------------------------------------------------------------------------
    def act(self) -> None:
        c = self.choices
        kind = c.weighted(WEIGHTS)
        if kind == 0:
            self.call()
        elif kind == 1:
            self.handshake()
        elif kind in (2, 3, 4):
            peer = self._peer()
            if peer is None:
                self.handshake()
            elif kind == 2:
                self.data(peer)
            elif kind == 3:
                self.ack(peer)
            else:
                self.control(peer)
        elif kind == 5:
            self.icmp()
        elif kind == 6:
            world = self.world
            make = pk.udp_garbage if c.chance(60) else pk.other_protocol
            self.send((make(world.peer_address, world.address, c),), mutate=False)
        elif kind == 7:
            self.replay()
        elif kind == 8:
            self.blind()
        else:
            self.world.advance(c.pick(WAITS) * (1 + c.below(4)))
        self.observe()

    # the application's calls ------------------------------------------------------------------
    def call(self) -> None:
        c, world = self.choices, self.world
        app = world.runner.application
        connection = app.connection
        live = connection is not None and connection.state is not TCPState.CLOSED
        options = ["accept ?"]
        if app.listener is None:
            options = [f"listen {DEFAULT_LOCAL_PORT}"] * 4 + [
                f"listen {DEFAULT_LOCAL_PORT} backlog {c.between(1, 8)}"
            ]
        elif not live:
            options += [f"connect {PEER_ADDRESS}:{DEFAULT_PEER_PORT}"] * 2
        if live and isinstance(connection, TCPConnection):
            room = connection.send_room
            if connection.state in (TCPState.ESTABLISHED, TCPState.CLOSE_WAIT) and room:
                if not connection.fin_queued:
                    size = min(room, c.pick((1, 10, 536, 1448, 3000, 20000, 70000)))
                    options += [f"write {size}"] * 3
            readable = connection.readable
            if readable and self._reads_check(connection):
                # "upto": a replay on a stack without the bug may have less to read
                options += [f"read upto {min(readable, c.pick((1, 100, 1 << 20)))}"] * 3
            elif connection.at_eof and not readable:
                options.append("read eof")
            options += ["shutdown", "close", "abort", "nodelay on", "nodelay off"]
        text = c.pick(options)
        world.at(world.now, text)
        if text.startswith("read upto") and isinstance(connection, TCPConnection):
            self.consumed[connection] = self.consumed.get(connection, 0) + int(text.split()[2])

    def _reads_check(self, connection: TCPConnection) -> bool:
        """Does the runner's ``read`` check this connection's bytes (its byte stream is the
        one its last SYN from the peer's main port started)?"""
        position = self.world.runner.application.read_position
        expected = seq_add(connection.irs, 1 + self.consumed.get(connection, 0))
        return position is not None and position == expected

    # packets ------------------------------------------------------------------------------------
    def send(self, packets: tuple[bytes, ...], mutate: bool = True) -> None:
        c = self.choices
        if mutate and c.chance(25):
            packets = tuple(p for packet in packets for p in pk.mutate(packet, c))
        if c.chance(6):
            self.held = [*self.held[-7:], packets]  # held back: sent later, out of order
            return
        self.history = [*self.history[-HISTORY + 1 :], packets]
        self.packets += len(packets)
        self.world.inject(packets)

    def segment(
        self,
        peer: PeerSide,
        flags: int,
        seq: int,
        ack: int = 0,
        payload: bytes = b"",
        window: int | None = None,
        options: tuple[tcp.TCPOption, ...] = (),
    ) -> bytes:
        c, world = self.choices, self.world
        if peer.timestamps and not flags & SYN and c.chance(90):
            peer.tsval = (peer.tsval + c.pick((0, 1, 1, 100, -1000, 1 << 31))) & MASK
            options = (*options, tcp.timestamp_option(peer.tsval, peer.host_tsval or 0))
        if window is None:
            window = c.pick((65535, 65535, 65535, 0, 1, 512, c.below(65536)))
        segment = TCPSegment(
            peer.port, peer.local, seq & MASK, ack & MASK, flags, window, payload, options
        )
        raw = None
        if c.chance(8):
            raw = pk.option_soup(c)
        source = world.peer_address
        return pk.tcp_packet(
            source, world.address, pk.tcp_bytes(segment, source, world.address, raw)
        )

    def _syn_options(self, peer: PeerSide) -> tuple[tcp.TCPOption, ...]:
        c = self.choices
        how = c.below(4)
        if how == 0:
            return ()
        peer.timestamps = how >= 2
        options = [tcp.mss_option(c.pick((1460, 536, 88, 1, 65535))), tcp.sack_permitted_option()]
        if peer.timestamps:
            options.append(tcp.timestamp_option(peer.tsval, peer.host_tsval or 0))
        if how == 3:
            options.append(tcp.wscale_option(c.pick((0, 7, 14, 15, 255))))
        return tuple(options)

    def handshake(self) -> None:
        """Open a connection, answer pystack's SYN, or complete a handshake, as fits."""
        c = self.choices
        for peer in self.peers.values():
            if peer.host_isn is not None and not peer.syn_sent:  # pystack's SYN: SYN-ACK
                peer.syn_sent = True
                ack = seq_add(peer.host_isn, 1)
                # or a SYN of our own: a simultaneous open (RFC 9293 figure 8)
                flags = SYN if c.chance(20) else SYN | ACK
                packet = self.segment(
                    peer,
                    flags,
                    peer.iss,
                    ack if flags & ACK else 0,
                    b"",
                    65535,
                    self._syn_options(peer),
                )
                peer.nxt = seq_add(peer.iss, 1)
                self.send((packet,))
                return
            if peer.host_isn is not None and peer.syn_sent and not peer.handshake_acked:
                peer.handshake_acked = True  # pystack's SYN-ACK: ACK it
                self.send((self.segment(peer, ACK, peer.nxt, peer.host_max),))
                return
        port = DEFAULT_PEER_PORT if c.chance(70) else c.between(1024, 65535)
        key = (port, DEFAULT_LOCAL_PORT if c.chance(85) else c.pick((7, 9, 80, c.below(65536))))
        if c.chance(2):
            self.syn_flood()
            return
        if key in self.peers and self.peers[key].syn_sent and c.chance(70):
            peer = self.peers[key]
            # a new incarnation: above the old one's numbers (it may find TIME-WAIT, RFC 6191)
            peer.iss = seq_add(peer.nxt, c.pick((1, 100_000, 1 << 30)))
        else:
            if len(self.peers) >= MAX_PEERS and key not in self.peers:
                return
            iss = c.u32()
            peer = self.peers[key] = PeerSide(key[0], key[1], iss, iss)
        peer.syn_sent, peer.handshake_acked = True, False
        peer.host_isn, peer.host_max, peer.host_ack = None, 0, None
        peer.nxt = seq_add(peer.iss, 1)
        self.send((self.segment(peer, SYN, peer.iss, 0, b"", 65535, self._syn_options(peer)),))

    def syn_flood(self) -> None:
        """SYNs from many ports at once: the SYN queue fills and SYN cookies take over."""
        c, world = self.choices, self.world
        base = c.between(1024, 60000)
        for offset in range(SYN_FLOOD):
            port = (base + offset) % 64512 + 1024
            segment = TCPSegment(port, DEFAULT_LOCAL_PORT, c.u32(), 0, SYN, 65535)
            source = world.peer_address
            packet = pk.tcp_packet(source, world.address, segment.build(source, world.address))
            self.packets += 1
            world.inject((packet,))
        self.observe()
        # complete some handshakes from the cookies (or entries) that came back
        for frame in list(self.host_packets):
            try:
                parsed = IPv4Packet.parse(frame)
                answer = TCPSegment.parse(parsed.payload, parsed.src, parsed.dst)
            except MalformedPacket:
                continue
            if answer.flags & (SYN | ACK) == SYN | ACK and c.chance(30):
                ack = TCPSegment(
                    answer.dst_port,
                    answer.src_port,
                    answer.ack,
                    seq_add(answer.seq, 1),
                    ACK,
                    65535,
                )
                source = world.peer_address
                built = ack.build(source, world.address)
                self.packets += 1
                world.inject((pk.tcp_packet(source, world.address, built),))

    def _peer(self) -> PeerSide | None:
        started = [p for p in self.peers.values() if p.syn_sent]
        return self.choices.pick(started) if started else None

    def _ack_value(self, peer: PeerSide) -> int:
        c = self.choices
        if peer.host_isn is None:
            return c.u32()
        sent = peer.host_max
        return c.pick((
            sent, sent, sent,
            seq_add(sent, -c.between(1, 3000)),  # a part of what was sent
            seq_add(sent, c.between(1, 3)),  # just beyond: unsent data
            seq_add(peer.host_isn, 1),  # the very first byte: an old ACK
            seq_add(sent, -(1 << 30)),  # far before SND.UNA (RFC 5961 5.2)
            c.u32(),
        ))  # fmt: skip

    def _seq_value(self, peer: PeerSide, length: int) -> int:
        c = self.choices
        have = peer.host_ack if peer.host_ack is not None else peer.nxt
        edge = seq_add(have, peer.host_window << peer.host_wscale)
        return c.pick((
            peer.nxt, peer.nxt, peer.nxt,
            have,  # again from what pystack acknowledged
            seq_add(peer.nxt, c.between(1, 3000)),  # a hole before it
            seq_add(peer.nxt, -c.between(1, 2000)),  # overlapping old data
            seq_add(edge, -length),  # ends right at the window edge
            seq_add(edge, -length + c.between(1, 10)),  # just across it
            seq_add(edge, c.between(0, 100)),  # just beyond it
            seq_add(have, -c.between(1, 200) - length),  # just before RCV.NXT
            c.u32(),
        ))  # fmt: skip

    def data(self, peer: PeerSide) -> None:
        c = self.choices
        if c.chance(10):
            self.burst(peer)
            return
        length = c.pick((1, 10, 100, 536, 1448, 1460, 3000, c.between(1, 9000)))
        seq = self._seq_value(peer, length)
        flags = ACK | (PSH if c.chance(50) else 0) | (FIN if c.chance(8) else 0)
        if c.chance(5):
            flags &= ~ACK
        packet = self.segment(peer, flags, seq, self._ack_value(peer), pattern(seq, length))
        if seq == peer.nxt:
            peer.nxt = seq_add(peer.nxt, length + (1 if flags & FIN else 0))
        self.send((packet,))

    def burst(self, peer: PeerSide) -> None:
        """Up to ``BURST`` full-sized segments in a row from where pystack is, some skipped
        (holes for the out-of-order queue and SACK), up to and past its window: what fills
        the receive buffer, shrinks the advertised window to zero and hits the queue limits."""
        c = self.choices
        size = c.pick((536, 1448, 1460))
        seq = peer.host_ack if peer.host_ack is not None else peer.nxt
        skip = c.pick((0, 0, 1, 3))  # every how many-th segment is left out (0: none)
        count = c.between(4, BURST)
        ack = self._ack_value(peer)
        for index in range(count):
            if not (skip and index % (skip + 1) == skip):
                packet = self.segment(peer, ACK, seq, ack, pattern(seq, size), 65535)
                self.packets += 1
                self.world.inject((packet,))
            seq = seq_add(seq, size)
        if seq_gt(seq, peer.nxt):
            peer.nxt = seq

    def ack(self, peer: PeerSide) -> None:
        c = self.choices
        options: tuple[tcp.TCPOption, ...] = ()
        if c.chance(30) and peer.host_isn is not None:  # SACK blocks around pystack's data
            base = seq_add(peer.host_isn, 1)
            blocks = []
            for _ in range(c.between(1, 3 if peer.timestamps else 4)):  # 40 option bytes
                left = seq_add(base, c.below(max(1, seq_diff(peer.host_max, base) + 2000)))
                blocks.append((left, seq_add(left, c.between(0, 3000))))
            options = (tcp.sack_option(tuple(blocks)),)
        ack = self._ack_value(peer)
        copies = 3 if c.chance(20) else 1  # duplicate ACKs: fast retransmit
        packet = self.segment(peer, ACK, peer.nxt, ack, b"", None, options)
        for _ in range(copies):
            self.send((packet,))

    def control(self, peer: PeerSide) -> None:
        c = self.choices
        how = c.below(5)
        have = peer.host_ack if peer.host_ack is not None else peer.nxt
        if how == 0:  # FIN in order (where we think we are, or where pystack says we are)
            seq = peer.nxt if c.chance(50) else have
            self.send((self.segment(peer, FIN | ACK, seq, self._ack_value(peer)),))
            peer.nxt, peer.fin_sent = seq_add(seq, 1), True
        elif how == 1:  # RST: exact, in the window, or outside
            seq = c.pick((have, seq_add(have, c.between(1, 60000)), c.u32()))
            flags = RST | (ACK if c.chance(50) else 0)
            self.send((self.segment(peer, flags, seq, self._ack_value(peer)),))
        elif how == 2:  # SYN on a synchronized connection (RFC 5961 4)
            seq = c.pick((have, seq_add(have, c.between(1, 60000)), c.u32()))
            self.send((self.segment(peer, SYN | (ACK if c.chance(30) else 0), seq, 0),))
        else:  # any flag combination, maybe with data
            flags = c.below(256)
            length = c.pick((0, 0, 1, 100))
            seq = self._seq_value(peer, length)
            packet = self.segment(peer, flags, seq, self._ack_value(peer), pattern(seq, length))
            self.send((packet,))

    def icmp(self) -> None:
        """An ICMP error quoting a packet pystack sent (to us or to the reference peer)."""
        if not self.host_packets:
            return
        quoted = self.choices.pick(self.host_packets)
        world = self.world
        packet = pk.icmp_error_quoting(world.peer_address, world.address, quoted, self.choices)
        self.send((packet,), mutate=self.choices.chance(20))

    def replay(self) -> None:
        c = self.choices
        if self.held and c.chance(60):
            packets = self.held.pop(c.below(len(self.held)))
        elif self.history:
            packets = c.pick(self.history)
        else:
            return
        self.packets += len(packets)
        self.world.inject(packets)

    def blind(self) -> None:
        """Spoofed segments on the reference connection that must not hurt it: RFC 5961's
        in-window RST and SYN (a challenge ACK), data and ACKs outside the window, ACKs of
        unsent or ancient data. Their numbers come from the connection itself (it is ours)."""
        world = self.world
        target = next(
            (
                conn
                for conn in world.stack.tcp.connections.values()
                if conn.remote_address == world.reference_address
                and conn.state is TCPState.ESTABLISHED
            ),
            None,
        )
        if target is None:
            return
        c = self.choices
        window = max(1, target.receive_window_edge())
        rcv_nxt, snd_una = target.rcv_nxt, target.snd_una
        how = c.below(6)
        payload = b""
        ack = target.snd_nxt
        if how == 0:  # RST in the window, not at RCV.NXT
            flags, seq = RST | (ACK if c.chance(50) else 0), seq_add(rcv_nxt, c.between(1, window))
        elif how == 1:  # SYN in the window
            flags, seq = SYN, seq_add(rcv_nxt, c.below(window))
        elif how == 2:  # data wholly beyond the window
            payload = bytes(c.between(1, 1000))
            flags, seq = ACK | PSH, seq_add(rcv_nxt, window + 1 + c.below(1000))
        elif how == 3:  # data wholly before RCV.NXT (and not taken as new: at most 2**30 back)
            payload = bytes(c.between(1, 1000))
            flags, seq = ACK | PSH, seq_add(rcv_nxt, -len(payload) - 1 - c.below(1 << 20))
        elif how == 4:  # ACK of data never sent, at RCV.NXT
            flags, seq = ACK, rcv_nxt
            ack = seq_add(target.snd_max, c.between(1, 1 << 20))
        else:  # ACK far below SND.UNA (RFC 5961 5.2)
            flags, seq = ACK, rcv_nxt
            ack = seq_add(snd_una, -target.max_snd_wnd - c.between(1, 1 << 20))
        options: tuple[tcp.TCPOption, ...] = ()
        if target.timestamps:
            options = (tcp.timestamp_option(target.ts_recent, 0),)
        segment = TCPSegment(
            target.remote_port,
            target.local_port,
            seq,
            ack & MASK,
            flags,
            c.pick((0, 65535, c.below(65536))),
            payload,
            options,
        )
        source = world.reference_address
        self.send(
            (pk.tcp_packet(source, world.address, segment.build(source, world.address)),),
            mutate=False,
        )


def run_case(data: bytes, *, reference: bool = True, max_actions: int = MAX_ACTIONS) -> CaseResult:
    """Run the case ``data`` decodes to; its coverage, its finding (if any) and its lines."""
    choices = Choices(data)
    world = World(reference=reference, rng_seed=choices.below(1 << 16))
    peer = FuzzPeer(world, choices)
    actions = 0
    try:
        world.feed(f"0 listen {DEFAULT_LOCAL_PORT}")
        peer.observe()
        while actions < max_actions and not choices.exhausted:
            actions += 1
            peer.act()
        world.finish_reference()
    except CaseOver:
        pass
    except Exception as error:  # the fuzzer's own bug: reported as a finding, not a traceback
        world.finding = Finding("fuzzer", f"{type(error).__name__}: {error}", (), world.lines)
    return CaseResult(world.coverage, world.finding, world.lines, actions, peer.packets)
