"""A pystack host on a real TUN/TAP device, its namespace, and the thread that drives it.

``KernelHost`` does the whole bring-up that ``pystack up`` (and later ``pystack run --link
tun``) needs, and undoes it on ``close()`` whatever happened: create or attach the namespace,
create the device with its MTU, move it into the namespace and give the kernel side the peer
address, stack the optional pcap tap and impairment link on top, build the ``Stack`` and start a
``StackThread``. Partial bring-ups are rolled back before the error propagates.
``build_stack`` is how every host here and in ``pystack.sim`` is built: the ``Stack`` plus the
applications its config asks for (the DHCP client when the address is ``"dhcp"``), which
``pystack.stack`` itself does not import.
Must not: configure anything in the namespace this process runs in.
Entry points: ``HostOptions``, ``KernelHost``, ``build_stack``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pystack import netns
from pystack.clock import Clock
from pystack.dhcp.client import attach_dhcp_client
from pystack.dns.hosts import load_hosts_file
from pystack.link.base import Link
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.pcap import PcapLink
from pystack.link.tuntap import TapLink, TunLink
from pystack.runner import StackThread
from pystack.services.stream import Service, parse_services, start_services
from pystack.stack import DHCP, Stack, StackConfig
from pystack.tcp.settings import TCPSettings, congestion_control_name
from pystack.tracing import Record, TraceLevel, TraceOptions, colour_wanted
from pystack.wire.addresses import ip_from_str, parse_cidr

DHCP_PEER_PREFIX = 24  # the kernel side's prefix when pystack's address comes from DHCP


def build_stack(
    config: StackConfig,
    link: Link,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Stack:
    """A ``Stack`` with what ``config`` asks for attached: with ``address="dhcp"`` a DHCP
    client, started at the first poll (its lease is ``dhcp_client(stack).lease``)."""
    stack = Stack(config, link, clock, rng)
    if config.address == DHCP:
        attach_dhcp_client(stack)
    return stack


def stderr_trace_sink(clock: Clock | None = None) -> Callable[[str], None]:
    """``--trace``: each line on stderr after the seconds since the trace began, on ``clock``
    (default: monotonic real time; ``pystack run`` on the simulator passes its virtual clock)."""
    now = time.monotonic if clock is None else clock.now
    start = now()

    def sink(line: str) -> None:
        print(f"{now() - start:10.6f} {line}", file=sys.stderr, flush=True)

    return sink


def trace_options(
    arguments: argparse.Namespace,
    record: Callable[[Record], None] | None = None,
    clock: Clock | None = None,
) -> TraceOptions | None:
    """What ``--trace[=LEVEL]``, ``--absolute-seq`` and ``--trace-peer`` ask for, printed on
    stderr by ``stderr_trace_sink`` on ``clock`` (in colour on a terminal); None without
    ``--trace`` and without ``record`` (``--record``: every event goes there too; alone, nothing
    is printed)."""
    level = getattr(arguments, "trace", None)
    peer = bool(getattr(arguments, "trace_peer", False))
    if not level and not peer and record is None:
        return None
    return TraceOptions(
        stderr_trace_sink(clock) if level or peer else None,
        TraceLevel(level) if isinstance(level, str) else TraceLevel.PACKETS,
        absolute_seq=bool(getattr(arguments, "absolute_seq", False)),
        colour=colour_wanted(sys.stderr),
        peer=peer,
        record=record,
    )


class HostError(Exception):
    """A bring-up problem, with a one-line message for people."""


@dataclass
class HostOptions:
    link: str = "tun"  # "tun" or "tap"
    netns: str | None = None  # namespace to create (or reuse) and put the device in
    device: str | None = None  # attach to this existing device instead of creating one
    address: str = "10.0.0.2/24"  # or "dhcp": start unconfigured, ask a DHCP server (kernel side)
    peer: str = "10.0.0.1"
    mtu: int = 1500
    impair: str | None = None
    seed: int | None = None
    pcap: str | None = None
    trace: Callable[[str], None] | TraceOptions | None = None
    configure_existing_namespace: bool = True  # give the peer address in a reused namespace
    # TUN segmentation/checksum offloads (virtio-net header, TSO): None = on for a new TUN
    # device without --pcap or --impair (both want to see every wire-sized frame).
    offload: bool | None = None
    serve: str | None = None  # services to run on the stack, e.g. "echo,discard,chargen=1000"
    hosts: str | None = None  # hosts(5) file: more names for ``serve="dns"`` to answer
    stack_config: StackConfig | None = None  # base settings; address, gateway and mtu are set here

    def validate(self) -> ImpairmentConfig | None:
        if self.link not in ("tun", "tap"):
            raise HostError(f"--link must be tun or tap, not {self.link!r}")
        if self.netns is None and self.device is None:
            raise HostError(
                "give --netns NAME (pystack never configures this namespace) or --device NAME"
            )
        try:
            address, prefix = (
                (0, DHCP_PEER_PREFIX) if self.address == DHCP else parse_cidr(self.address)
            )
            peer = ip_from_str(self.peer)
        except ValueError as error:
            raise HostError(str(error)) from None
        if address == peer:
            raise HostError("--addr and --peer must differ")
        if not 68 <= self.mtu <= 65535:
            raise HostError(f"--mtu must be 68..65535, not {self.mtu}")
        if prefix > 30 and self.link == "tap":
            raise HostError("a TAP link needs a prefix of /30 or shorter to reach its peer")
        if self.serve:
            try:
                parse_services(self.serve)
            except ValueError as error:
                raise HostError(f"--serve: {error}") from None
        if self.impair:
            try:
                return ImpairmentConfig.parse(self.impair, default_seed=self.seed)
            except ValueError as error:
                raise HostError(f"--impair: {error}") from None
        return None


def tcp_settings_for(congestion: str | None) -> TCPSettings | None:
    """The TCP settings of ``--congestion NAME`` (None: the defaults). ValueError naming the
    known algorithms for an unknown NAME."""
    if congestion is None:
        return None
    return TCPSettings(congestion_control=congestion_control_name(congestion))


def stack_config_for(congestion: str | None) -> StackConfig | None:
    """``HostOptions.stack_config`` for ``--congestion NAME`` (None: the defaults)."""
    tcp = tcp_settings_for(congestion)
    return StackConfig(tcp=tcp) if tcp is not None else None


class KernelHost:
    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.namespace: netns.Namespace | None = None
        self.device: TunLink | TapLink | None = None
        self.link: Link | None = None
        self.stack: Stack | None = None
        self.thread: StackThread | None = None
        self.services: list[Service] = []

    def __enter__(self) -> KernelHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        options = self.options
        impairment = options.validate()
        if options.device is None:  # attaching to a device needs no namespace (nor `ip`)
            reason = netns.require_root()
            if reason is not None:
                raise HostError(reason)
        try:
            self._bring_up(impairment)
        except BaseException:
            self.close()
            raise

    def _bring_up(self, impairment: ImpairmentConfig | None) -> None:
        options = self.options
        link_class = TunLink if options.link == "tun" else TapLink
        if options.device is not None:
            self.device = link_class(options.device, attach_existing=True)
        else:
            assert options.netns is not None
            if netns.namespace_exists(options.netns):
                self.namespace = netns.Namespace.attach(options.netns)
            else:
                self.namespace = netns.Namespace.create(options.netns)
            offload = options.offload
            if offload is None:
                offload = options.link == "tun" and not options.pcap and not options.impair
            if link_class is TunLink:
                self.device = TunLink("pst%d", mtu=options.mtu, offload=offload)
            else:
                self.device = TapLink("pst%d", mtu=options.mtu)
            netns.move_device(self.namespace, self.device.name)
            if self.namespace.created or options.configure_existing_namespace:
                prefix = (
                    DHCP_PEER_PREFIX if options.address == DHCP else parse_cidr(options.address)[1]
                )
                netns.configure_peer(
                    self.namespace,
                    self.device.name,
                    f"{options.peer}/{prefix}",
                    self.device.mtu,
                    allow_attached=True,
                )
        link: Link = self.device
        if options.pcap:
            link = PcapLink(link, options.pcap)
        if impairment is not None:
            link = ImpairmentLink(link, impairment)
        self.link = link
        rng = random.Random(options.seed)
        base = options.stack_config if options.stack_config is not None else StackConfig()
        config = dataclasses.replace(
            base, address=options.address, gateway=options.peer, mtu=self.device.mtu
        )
        self.stack = build_stack(config, link, rng=rng)
        if options.trace is not None:
            self.stack.set_trace(options.trace)
        if options.serve:
            self.services = start_services(self.stack, options.serve, self._hosts())
        self.thread = StackThread(self.stack)
        self.thread.start()

    def _hosts(self) -> dict[str, int] | None:
        if not self.options.hosts:
            return None
        try:
            return load_hosts_file(self.options.hosts)
        except OSError as error:
            raise HostError(
                f"--hosts: cannot read {self.options.hosts}: {error.strerror}"
            ) from None

    def describe(self) -> str:
        assert self.stack is not None and self.device is not None
        where = f" in netns {self.namespace.name}" if self.namespace else ""
        if self.services:
            names = dict.fromkeys(f"{s.name}/{s.port}" for s in self.services)  # TCP and UDP
            where += ", serving " + ", ".join(names)
        return f"pystack host {self.stack.describe()} (device {self.device.name}{where}, peer {self.options.peer})"

    def close(self) -> None:
        """Stop the thread, close the links (the device goes with its descriptor), drop the namespace."""
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.device is not None:
            self.device.close()
            self.device = None
        if self.namespace is not None:
            self.namespace.close()
            self.namespace = None
