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
Entry points: ``ScriptNetwork``, ``fast_thread_switches``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType

from pystack.clock import VirtualClock
from pystack.dns.client import StackResolver
from pystack.dns.hosts import load_hosts_file
from pystack.dns.resolver import ResolverSettings
from pystack.host import HostError, HostOptions, KernelHost, stderr_trace_sink
from pystack.runner import StackThread
from pystack.runtime.masyncio import asyncio_module
from pystack.runtime.network_module import network_module
from pystack.runtime.providers import ModuleKind, ModuleProviders
from pystack.runtime.world import ScriptWorld
from pystack.sim.world import HOST_ADDRESS, PEER_ADDRESS, SimulatedNetwork
from pystack.stack import Stack
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from usocket.context import NetworkContext, resolver_function
from usocket.modules import select_module, socket_module
from usocket.ssl_module import ssl_module
from usocket.tls import tls_module

DNS_PORT = 53
SWITCH_INTERVAL = 0.0005  # seconds; see fast_thread_switches
CLOSE_GRACE = 0.5  # seconds a closing connection may take to finish when the script ends
_CLOSING = frozenset({TCPState.FIN_WAIT_1, TCPState.CLOSING, TCPState.LAST_ACK})


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

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        self.simulation: SimulatedNetwork | None = None
        self.clock: VirtualClock | None = None  # the simulator's virtual time, if on it
        self.host: KernelHost | None = None
        self.thread: StackThread
        self.stack: Stack
        self.resolver: StackResolver

    def start(self) -> NetworkContext:
        arguments = self.arguments
        if arguments.link == "sim" and not getattr(arguments, "real_time", False):
            self.clock = VirtualClock()
        trace = stderr_trace_sink(self.clock) if getattr(arguments, "trace", False) else None
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
            )
            self.host = KernelHost(options)
            try:
                self._start_kernel_host(arguments.dns or peer)
            except BaseException:
                self.host.close()
                raise
        return NetworkContext(
            self.thread, self.stack, resolver_function(self.thread, self.stack, self.resolver)
        )

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

    def close(self) -> None:
        self._let_closes_finish()
        if self.simulation is not None:
            self.simulation.close()
            self.simulation = None
        if self.clock is not None:
            self.clock.detach()
        if self.host is not None:
            self.host.close()
            self.host = None

    def _let_closes_finish(self) -> None:
        """Give connections the script closed a moment (``CLOSE_GRACE``) to finish their FIN
        exchange, so the peer sees a clean close and ``--trace`` shows it, rather than a stack that
        vanished mid-close. Bounded: a peer that never answers costs at most the grace."""
        thread = getattr(self, "thread", None)
        stack = getattr(self, "stack", None)
        if thread is None or stack is None or thread.error is not None:
            return

        def settled() -> bool:
            return not any(c.state in _CLOSING for c in stack.tcp.connections.values())

        try:
            thread.wait_for(settled, CLOSE_GRACE)
        except RuntimeError:
            pass  # the stack thread died; close() reports nothing more here
