"""The network a ``pystack run`` script gets: a stack on the simulated network or on a real
TUN/TAP device in a namespace, and the ``socket``/``select`` modules bound to it.

``--link sim`` (the default) builds ``SimulatedNetwork`` (no root); ``--link tun|tap`` builds a
``KernelHost`` in ``--netns`` (an existing namespace is used as it is: only the device is added,
given the peer address on the kernel side, and removed afterwards). ``--dns`` (default: the
peer) is the server ``getaddrinfo`` asks. ``--trace`` sends pystack's packet lines to stderr.
On the simulator the run is on a ``VirtualClock`` (``clock``; the script's thread is its party,
and the script world should get the same clock) unless ``--real-time`` is given
(docs/virtual-time.md).
``fast_thread_switches`` is the one process-wide setting ``pystack run`` changes, for the run only.
When the script ends, ``ScriptNetwork.finish`` closes its sockets as the kernel closes a process's
sockets at exit (data delivered, then FIN; bounded by ``--linger``; reset after Ctrl-C), and says
on stderr which connections had to be reset.
Entry points: ``ScriptNetwork``, ``fast_thread_switches``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType

from pystack.clock import VirtualClock
from pystack.dns.client import StackResolver
from pystack.dns.hosts import load_hosts_file
from pystack.dns.resolver import ResolverSettings
from pystack.host import (
    HostError,
    HostOptions,
    KernelHost,
    stack_config_for,
    tcp_settings_for,
    trace_options,
)
from pystack.runner import StackThread
from pystack.runtime.machine_module import make_machine_module
from pystack.runtime.masyncio import asyncio_module
from pystack.runtime.network_module import network_module
from pystack.runtime.providers import ModuleKind, ModuleProviders
from pystack.runtime.world import ScriptWorld
from pystack.sim.world import HOST_ADDRESS, PEER_ADDRESS, SimulatedNetwork
from pystack.stack import Stack
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.tracing import Record
from pystack.wire.addresses import ip_from_str, ip_to_str
from usocket.context import NetworkContext, resolver_function
from usocket.modules import select_module, socket_module
from usocket.ssl_module import ssl_module
from usocket.tls import tls_module

DNS_PORT = 53
SWITCH_INTERVAL = 0.0005  # seconds; see fast_thread_switches
EXIT_IDLE_FLOOR = 3.0  # seconds: the least time an exiting connection may go without progress
EXIT_IDLE_RTOS = 4  # ... or this many of its RTOs, when more (see ScriptNetwork.finish)
EXIT_BACKOFF_RTOS = 2  # ... or this many of its current, backed-off RTO (see ScriptNetwork.finish)
EXIT_CEILING = 60.0  # seconds: the longest the exit waits for all connections, unless --linger
# our FIN is queued or sent but not yet acknowledged: the connection is still delivering
_CLOSING = frozenset({TCPState.FIN_WAIT_1, TCPState.CLOSING, TCPState.LAST_ACK})
# states a socket's close() would still have to close
_OPEN = frozenset(
    {
        TCPState.SYN_SENT,
        TCPState.SYN_RECEIVED,
        TCPState.ESTABLISHED,
        TCPState.CLOSE_WAIT,
    }
)


@contextlib.contextmanager
def fast_thread_switches(interval: float = SWITCH_INTERVAL) -> Iterator[None]:
    """CPython's thread switch interval (``sys.setswitchinterval``) at ``interval`` inside the
    ``with`` block, and back to what it was however the block ends (return, exception, Ctrl-C).

    What it buys: the script and the stack thread hand work to each other all the time (every
    send wakes the stack thread, every arrival wakes the script). While one of them computes
    without releasing the GIL, the other waits for the switch interval: up to 5 ms at CPython's
    default, 0.5 ms here. Measured on the simulator (2 cores shared with other work, so noisy),
    the difference stayed within the noise: 200 echo round trips from a script busy-waiting on
    a non-blocking ``recv``, 140-195 ms either way; 100 sends with a millisecond of Python work
    between each, 145-235 ms either way; a 1 MB chargen read, 26-43 ms either way. It bounds the
    worst hand-off wait rather than speeding up the common case, and is kept as it was.
    The setting is process-wide, hence scoped: ``pystack run`` holds it for the run only, and
    code embedding ``ScriptNetwork`` chooses for itself."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class ScriptNetwork:
    """Owns the stack a script runs on; ``close()`` takes it all down again. It leaves CPython's
    thread switch interval alone: ``pystack run`` runs it inside ``fast_thread_switches``."""

    def __init__(
        self, arguments: argparse.Namespace, record: Callable[[Record], None] | None = None
    ) -> None:
        self.arguments = arguments
        self.record = record  # --record: the recorder's hook, for both stacks of the simulator
        self.simulation: SimulatedNetwork | None = None
        self.clock: VirtualClock | None = None  # the simulator's virtual time, if on it
        self.host: KernelHost | None = None
        self.thread: StackThread
        self.stack: Stack
        self.resolver: StackResolver
        self.context: NetworkContext | None = None
        self.trace: Callable[[str], None] | None = None
        self.finished = False

    def start(self) -> NetworkContext:
        arguments = self.arguments
        if arguments.link == "sim" and not getattr(arguments, "real_time", False):
            self.clock = VirtualClock()
        trace = trace_options(arguments, self.record, self.clock)
        self.trace = trace.sink if trace is not None else None
        address = arguments.addr or HOST_ADDRESS
        peer = arguments.peer or PEER_ADDRESS
        hosts_file = getattr(arguments, "hosts", None)
        hosts = load_hosts_file(hosts_file) if hosts_file else None
        if arguments.link == "sim":
            dns = ip_from_str(arguments.dns) if arguments.dns else None
            self.simulation = SimulatedNetwork(
                dns=dns,
                address=address,
                peer=peer,
                seed=arguments.seed,
                impair=arguments.impair,
                pcap=arguments.pcap,
                trace=trace,
                hosts=hosts,
                clock=self.clock,
                host_tcp=tcp_settings_for(getattr(arguments, "congestion", None)),
            )
            if self.clock is not None:
                self.clock.attach()  # the calling thread runs the script: time waits for it
            self.simulation.start()
            self.thread, self.stack = self.simulation.thread, self.simulation.host
            self.resolver = self.simulation.resolver
        else:
            if not arguments.netns:
                raise HostError(f"--link {arguments.link} needs --netns NAME")
            options = HostOptions(
                link=arguments.link,
                netns=arguments.netns,
                address=address,
                peer=peer,
                impair=arguments.impair,
                seed=arguments.seed,
                pcap=arguments.pcap,
                trace=trace,
                stack_config=stack_config_for(getattr(arguments, "congestion", None)),
                mtu=getattr(arguments, "mtu", None) or 1500,
                # None: HostOptions' default (on for TUN without --pcap or --impair)
                offload=False if getattr(arguments, "no_offload", False) else None,
            )
            self.host = KernelHost(options)
            try:
                self._start_kernel_host(arguments.dns or peer)
            except BaseException:
                self.host.close()
                raise
        self.context = NetworkContext(
            self.thread, self.stack, resolver_function(self.thread, self.stack, self.resolver)
        )
        return self.context

    def _start_kernel_host(self, dns: str) -> None:
        host = self.host
        assert host is not None
        host.start()
        assert host.stack is not None and host.thread is not None
        self.thread, self.stack = host.thread, host.stack
        settings = ResolverSettings(servers=((ip_from_str(dns), DNS_PORT),))
        configured = bool(self.arguments.dns)  # else the DHCP lease's servers, when it has any
        self.resolver = self.thread.call(lambda: StackResolver(self.stack, settings, configured))

    def register(self, providers: ModuleProviders, context: NetworkContext) -> None:
        """The network-facing modules, each built for this context: socket, select, network,
        tls, ssl (ussl) and asyncio (uasyncio)."""

        extensions = bool(getattr(self.arguments, "socket_extensions", False))

        def socket_factory(world: ScriptWorld) -> ModuleType:
            context.schedule = world.scheduler.schedule  # socket callbacks (setsockopt 20)
            return socket_module(context, extensions=extensions)

        def select_factory(world: ScriptWorld) -> ModuleType:
            return select_module(context)

        def network_factory(world: ScriptWorld) -> ModuleType:
            servers = self.resolver.resolver.settings.servers
            return network_module(context, tuple(address for address, _port in servers))

        def tls_factory(world: ScriptWorld) -> ModuleType:
            return tls_module("tls")

        def ssl_factory(world: ScriptWorld) -> ModuleType:
            return ssl_module(world.provided("tls"), "ssl")  # over the tls the script sees

        providers.register("socket", socket_factory, ModuleKind.EXTENSIBLE)
        providers.register("tls", tls_factory, ModuleKind.BUILTIN)
        providers.register("ssl", ssl_factory, ModuleKind.FROZEN, ("ussl",))
        providers.register("asyncio", asyncio_module, ModuleKind.FROZEN, ("uasyncio",))
        providers.register("select", select_factory, ModuleKind.EXTENSIBLE)
        providers.register("network", network_factory, ModuleKind.BUILTIN)
        trace = self.trace
        if trace is not None:  # machine's Pin lines join the packet trace

            def machine_factory(world: ScriptWorld) -> ModuleType:
                return make_machine_module(world, trace)

            providers.register("machine", machine_factory, ModuleKind.EXTENSIBLE)

    def finish(self, abrupt: bool = False) -> None:
        """The script has ended: close its TCP sockets the way the host's kernel would at a
        process's exit, and keep the stack running until they are done (``run_script`` calls
        this as ``on_exit``; ``close()`` calls it if nobody did).

        Every listening socket is closed (connections it had not handed to ``accept()`` are
        reset). Normally (``abrupt`` False) every connection is closed as ``close()`` closes it:
        queued data goes out and is acknowledged, then the FIN; the stack keeps running while
        any connection still has data or a FIN unacknowledged, until that connection makes no
        progress (no byte or FIN acknowledged) for its bound: ``--linger SECONDS`` if given,
        else ``max(3 s, 4 x its RTO, 2 x its current RTO)``: four smoothed RTOs (without
        back-off) leave room for the same lost segment to be sent twice more and acknowledged;
        twice the current, backed-off RTO keeps waiting while TCP is still retrying (after
        retries at 1, 2 and 4 s the next one is due 8 s later, 15 s after the last progress,
        within 2 x 8 s), so one segment lost several times in a row is not cut.
        The whole wait is at most ``max(EXIT_CEILING, --linger)``. A connection that could not
        finish is reset. After Ctrl-C, a board reset (``machine.reset()``, a watchdog) or a
        second Ctrl-C during the wait, every connection is reset at once. Each connection that
        ends with a RST it was not asked for (including ``close()``'s own RST for unread data)
        is named in one ``pystack: ...`` line on stderr with the bytes it never delivered.
        """
        if self.finished:
            return
        self.finished = True
        thread = getattr(self, "thread", None)
        stack = getattr(self, "stack", None)
        if thread is None or stack is None or thread.error is not None:
            return
        linger = getattr(self.arguments, "linger", None)
        cuts: list[str] = []
        try:
            with thread.lock:
                cuts.extend(self._close_all(stack, abrupt))
            if not abrupt:
                cuts.extend(self._drain(thread, stack, linger))
        except KeyboardInterrupt:
            abrupt = True
            with thread.lock:
                cuts.extend(self._reset_all(stack, "interrupted"))
        except RuntimeError:
            return  # the stack thread died: nothing can be sent any more
        if cuts:
            count = f"{len(cuts)} connection{'s' if len(cuts) > 1 else ''}"
            why = "the script ended abruptly" if abrupt else "could not finish"
            print(f"pystack: exit: reset {count} ({why}): {'; '.join(cuts)}", file=sys.stderr)

    def _close_all(self, stack: Stack, abrupt: bool) -> list[str]:
        """Under the lock: listeners closed; connections closed (or, ``abrupt``, reset)."""
        now = stack.clock.now()
        context = self.context
        if context is not None:
            for endpoint in list(context.streams.listening):
                endpoint.close(now)
        if abrupt:
            return self._reset_all(stack, "")
        cuts = []
        for connection in list(stack.tcp.connections.values()):
            if connection.state in _OPEN and not connection.fin_queued:
                if len(connection.receive_buffer) and connection.state.synchronized:
                    cuts.append(_describe(connection, "close() with unread data resets"))
                connection.close(now)
        stack.flush(now)
        return cuts

    def _reset_all(self, stack: Stack, reason: str) -> list[str]:
        now = stack.clock.now()
        cuts = []
        for connection in list(stack.tcp.connections.values()):
            if connection.state in _OPEN or connection.state in _CLOSING:
                cuts.append(_describe(connection, reason))
                connection.abort(now)
        stack.flush(now)
        return cuts

    def _drain(self, thread: StackThread, stack: Stack, linger: float | None) -> list[str]:
        """Wait while the closing connections make progress; reset those that stop making it."""
        started = time.monotonic()
        ceiling = started + max(EXIT_CEILING, linger or 0.0)
        progress: dict[int, tuple[tuple[int, TCPState], float]] = {}
        cuts: list[str] = []
        while True:
            with thread.lock:
                moment = time.monotonic()
                soonest = ceiling
                marks: list[tuple[TCPConnection, tuple[int, TCPState]]] = []
                for connection in list(stack.tcp.connections.values()):
                    if connection.state not in _CLOSING:
                        continue
                    mark = (connection.snd_una, connection.state)
                    seen = progress.get(id(connection))
                    if seen is None or seen[0] != mark:
                        seen = progress[id(connection)] = (mark, moment)
                    bound = (
                        linger
                        if linger is not None
                        else max(
                            EXIT_IDLE_FLOOR,
                            EXIT_IDLE_RTOS * connection.rtt.base_rto,
                            EXIT_BACKOFF_RTOS * connection.rtt.rto,
                        )
                    )
                    if moment - seen[1] >= bound or moment >= ceiling:
                        why = f"no progress for {bound:g} s"
                        if moment - seen[1] < bound:
                            why = f"still sending after {ceiling - started:g} s"
                        cuts.append(_describe(connection, why))
                        connection.abort(stack.clock.now())
                        continue
                    marks.append((connection, mark))
                    soonest = min(soonest, seen[1] + bound)
                if cuts:
                    stack.flush(stack.clock.now())
                if not marks:
                    return cuts

            def moved(marks: list[tuple[TCPConnection, tuple[int, TCPState]]] = marks) -> bool:
                return any((c.snd_una, c.state) != mark for c, mark in marks)

            thread.wait_for(moved, max(0.0, soonest - time.monotonic()))

    def close(self) -> None:
        self.finish()
        if self.simulation is not None:
            self.simulation.close()
            self.simulation = None
        if self.clock is not None:
            self.clock.detach()
        if self.host is not None:
            self.host.close()
            self.host = None


def _describe(connection: TCPConnection, reason: str) -> str:
    """``A:p -> B:q (N bytes not delivered, reason)`` for the exit note."""
    lost = len(connection.send_buffer)
    why = f", {reason}" if reason else ""
    return (
        f"{ip_to_str(connection.local_address)}:{connection.local_port} -> "
        f"{ip_to_str(connection.remote_address)}:{connection.remote_port} "
        f"({lost} bytes not delivered{why})"
    )
