"""The kernel target: run a script against the Linux TCP stack in a private network namespace.

The same parsed lines that ``runner.py`` runs against pystack run here against Linux. pystack's
process plays the script's *peer*: ``<`` lines are IPv4 packets written to a TUN device whose
kernel end sits in a fresh namespace with the script's "pystack" address (10.0.0.2/24); ``>``
lines are packets the kernel sends out of that device, read and compared by the very code of
``runner.py`` and ``matching.py`` (``KernelScriptRunner`` is a ``ScriptRunner`` with the clock,
the wire and the application swapped). The calls (``listen``, ``connect``, ``accept``, ``read``
...) run on real kernel sockets inside the namespace.

Design choices, and why:

- **Sockets, not a helper process.** A socket belongs to the namespace it was created in, for
  ever, whichever thread uses it. So each socket (and the netlink socket that reads the kernel's
  socket table) is created by a short-lived thread that first ``setns``-es into the namespace and
  then ends; every other thread of this process stays where it was. No child process can hang,
  crash or be left behind, errors arrive as ``OSError`` with their errno, and cleaning up is
  closing descriptors. The namespace, the device and the sockets are removed in ``finally``
  blocks, so a failure, an exception or Ctrl-C (``KeyboardInterrupt``) removes them too.
- **Blocking calls do not stall the script.** Every socket is non-blocking. ``accept`` and
  ``read`` wait, as packetdrill's blocking calls do: when their result is not there yet at their
  line, the script goes on (packets keep flowing) and the call completes as soon as the kernel
  has its result (its socket becomes readable). The next call or expectation, or the end of the
  script, is where its result is collected; if it is still waiting then (after ``tolerance``),
  the script fails at the waiting call's line. ``connect`` is non-blocking as in pystack (its
  outcome shows in ``expect state``/``expect error``); ``accept ?`` never waits.
- **Numbers are mapped.** The kernel's ISN is learned from its SYN (``matching.Numbering``, as
  for pystack), its ephemeral port from ``getsockname`` (``connect ... from PORT`` binds PORT),
  and its TS val clock, which Linux starts at a random per-connection offset, counts from its
  SYN: that SYN's TS val is 0 in the script, and a TS val may differ from a line's number by the
  tolerance in ms (+1). The mapping is done where frames meet the runner, so traces, reports and
  ``ecr``s on ``<`` lines are all in script numbers.
- **Time is real.** Lines happen at real (monotonic) seconds since the start; a ``>`` packet may
  come ``tolerance`` early or late. The kernel's tolerance is at least ``KERNEL_TOLERANCE``
  (25 ms: a loaded machine's scheduling jitter; the script's own ``tolerance`` applies when
  larger), and a ``>`` packet may also be late by 1/8 of the time since the previous line (Linux's
  timer wheel fires long timers that late). A line that could only be acted on late is noted in
  the trace; ``+`` times count from when it happened. ``*`` lines wait at most ``ANY_TIME_LIMIT`` seconds.
- **What cannot be observed is said so.** ``expect state`` reads the socket's state from the
  kernel's socket table (``NETLINK_SOCK_DIAG``, which also sees closed-but-finishing and
  TIME-WAIT sockets), ``expect info`` maps a few ``tcp_info`` keys, ``expect error`` is
  ``SO_ERROR`` or the errno a call raised, ``expect counter``/``expect drop`` map the names in
  ``KERNEL_COUNTERS``/``KERNEL_DROPS`` to the namespace's ``/proc/net/snmp`` and ``netstat``
  (a fresh namespace counts from 0). Anything else is "not observable on kernel": listed in the
  result's ``unobservable`` and noted in the trace, never passed silently.
- **Settings are sysctls.** A script's ``set NAME VALUE`` settings become sysctls of the
  namespace or socket options (``KERNEL_SETTINGS``: ``mss`` is ``TCP_MAXSEG``, ``min_rto`` is
  ``tcp_rto_min_us`` ...); a name Linux cannot set (``KERNEL_UNSETTABLE``: ``initial_rto``,
  ``delayed_ack``) or an unknown one is a ``KernelTargetError`` before anything starts.
- **UDP and ICMP too.** ``< udp`` and ``< icmp echo`` lines are written to the device like TCP
  segments, ``> udp``/``> icmp`` lines read what the kernel sends (its port unreachables and
  echo replies), and ``udp bind``/``connect``/``sendto``/``send``/``recvfrom``/``close`` run on
  a kernel UDP socket (``KernelUDPSocket``); the ICMP errors it reports surface as the errno of
  its next call, as on pystack.

Timers differ by design (Linux: minimum RTO 200 ms, delayed ACK 40 ms and quick ACKs at the start
of a connection; pystack: RTO 1 s, ...): such scripts are expected to fail here, and the report
says how. Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and ``/dev/net/tun``.
Entry points: ``KernelTarget`` (``name = "kernel"``, ``run(script)``), ``run_kernel_script``,
``KernelScriptRunner``, ``KernelTargetError``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import math
import os
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from pystack.clock import ManualClock
from pystack.link.tuntap import LinkUnavailable, TunLink
from pystack.netns import (
    NAMESPACE_DIRECTORY,
    Namespace,
    NamespaceError,
    configure_peer,
    move_device,
)
from pystack.script import events as ev
from pystack.script.application import DEFAULT_BACKLOG, Application, CheckFailed, ConnectionLike
from pystack.script.events import OUTBOUND, Packet, ScriptLine
from pystack.script.formatting import format_event, format_seconds
from pystack.script.kernel_service import EchoServer
from pystack.script.matching import MASK, Numbering
from pystack.script.notation import parse_script
from pystack.script.report import ScriptFailure, ScriptResult, TraceEntry
from pystack.script.runner import (
    STACK_ADDRESS,
    ScriptRunner,
)
from pystack.tcp.state import TCPState
from pystack.wire import tcp
from pystack.wire.addresses import ip_from_str, ip_to_str
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import SYN, TCPSegment

T = TypeVar("T")

KERNEL_TOLERANCE = 0.025  # seconds: the least tolerance on the kernel (scheduling jitter)
TIMER_WHEEL_SLACK = 1 / 8  # how late Linux may fire a timer, as a share of its length
ANY_TIME_LIMIT = 10.0  # seconds a '*' line waits for its packet on the kernel
DEVICE_PATTERN = "pks%d"
RCVLOWAT_LIMIT = 1 << 16  # SO_RCVLOWAT above this is not asked for (Linux caps it by rcvbuf)
NAMESPACE_CALL_TIMEOUT = 10.0  # seconds for one job in the namespace (socket creation, a read)
KERNEL_ADDRESS = STACK_ADDRESS.split("/")[0]  # the kernel plays the script's "pystack" side
CLONE_NEWNET = 0x40000000


# `set NAME VALUE` on the kernel: every name the pystack target knows (settings.py) maps to
# what Linux has for it, or is refused with the reason (KERNEL_UNSETTABLE). A sysctl is the
# namespace's own (these are per network namespace), a socket option is set on each socket
# before listen/connect. Values are checked by settings.py's parsers, then converted.
@dataclass(frozen=True)
class KernelSetting:
    kind: str  # "sysctl" or "socket"
    key: str | tuple[int, int]  # the sysctl's name, or (level, option)
    convert: Callable[[str], str | int | bytes]  # the value -> sysctl text / option int or bytes
    meaning: str  # what Linux does with it, for the docs and errors


def _switch(value: str) -> str:
    if value not in ("on", "off"):
        raise ValueError("expected on or off")
    return "1" if value == "on" else "0"


def _whole(low: int, high: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"expected a whole number {low}..{high}")
        return int(value)

    return convert


def _scaled(unit: float, low: int, high: int) -> Callable[[str], str]:
    """Seconds -> a whole number of ``unit`` within the sysctl's own range."""

    def convert(value: str) -> str:
        number = round(float(value) / unit)
        if not low <= number <= high:
            raise ValueError(f"expected {low * unit:g}..{high * unit:g} seconds")
        return str(number)

    return convert


def _congestion(value: str) -> str:
    # pystack's names: newreno (Linux calls RFC 5681's algorithm "reno") and cubic.
    names = {"newreno": "reno", "cubic": "cubic"}
    if value not in names:
        raise ValueError("expected newreno or cubic")
    return names[value]


KERNEL_SETTINGS: dict[str, KernelSetting] = {
    "sack": KernelSetting("sysctl", "net.ipv4.tcp_sack", _switch, "tcp_sack"),
    "timestamps": KernelSetting("sysctl", "net.ipv4.tcp_timestamps", _switch, "tcp_timestamps"),
    "wscale": KernelSetting("sysctl", "net.ipv4.tcp_window_scaling", _switch, "tcp_window_scaling"),
    # kernel-only names (pystack has neither): the number goes to Linux, which checks its range
    "ecn": KernelSetting("sysctl", "net.ipv4.tcp_ecn", _whole(0, 2**31 - 1), "tcp_ecn"),
    "syncookies": KernelSetting(
        "sysctl", "net.ipv4.tcp_syncookies", _whole(0, 2**31 - 1), "tcp_syncookies"
    ),
    "mss": KernelSetting(
        "socket", (socket.IPPROTO_TCP, socket.TCP_MAXSEG), _whole(88, 65495), "TCP_MAXSEG"
    ),
    # Linux 6.11+: the RTO's lower bound in microseconds (was only a route's rto_min before).
    "min_rto": KernelSetting(
        "sysctl", "net.ipv4.tcp_rto_min_us", _scaled(1e-6, 1, 2**31 - 1), "tcp_rto_min_us"
    ),
    # Linux 6.15+: the RTO's upper bound in milliseconds, 1000..120000 (TCP_RTO_MAX is 120 s).
    "max_rto": KernelSetting(
        "sysctl", "net.ipv4.tcp_rto_max_ms", _scaled(1e-3, 1000, 120000), "tcp_rto_max_ms"
    ),
    "syn_retries": KernelSetting(
        "sysctl", "net.ipv4.tcp_syn_retries", _whole(1, 127), "tcp_syn_retries"
    ),
    "synack_retries": KernelSetting(
        "sysctl", "net.ipv4.tcp_synack_retries", _whole(0, 255), "tcp_synack_retries"
    ),
    # Linux doubles what SO_RCVBUF/SO_SNDBUF ask for (the rest is its bookkeeping overhead),
    # and its window is a share of the buffer (tcp_adv_win_scale): not pystack's byte count.
    "receive_buffer": KernelSetting(
        "socket", (socket.SOL_SOCKET, socket.SO_RCVBUF), _whole(1, 2**30), "SO_RCVBUF"
    ),
    "send_buffer": KernelSetting(
        "socket", (socket.SOL_SOCKET, socket.SO_SNDBUF), _whole(1, 2**30), "SO_SNDBUF"
    ),
    # A socket option, not the namespace's sysctl: a new namespace may only choose among
    # net.ipv4.tcp_allowed_congestion_control (on some machines "reno bbr", without cubic),
    # while root may give any available algorithm to its own socket.
    "congestion_control": KernelSetting(
        "socket",
        (socket.IPPROTO_TCP, socket.TCP_CONGESTION),
        lambda value: _congestion(value).encode(),
        "TCP_CONGESTION",
    ),
    # RACK is bit 1 of tcp_recovery; the tail loss probe is tcp_early_retrans 3 (see below).
    "rack_tlp": KernelSetting("sysctl", "net.ipv4.tcp_recovery", _switch, "tcp_recovery"),
    "dsack": KernelSetting("sysctl", "net.ipv4.tcp_dsack", _switch, "tcp_dsack"),
}
# A second sysctl some settings also set: converted value -> the companion's value.
KERNEL_COMPANIONS: dict[str, tuple[str, dict[str, str]]] = {
    "rack_tlp": ("net.ipv4.tcp_early_retrans", {"1": "3", "0": "0"}),  # 3: TLP on, 0: off
}
# Names the pystack target knows that Linux cannot set: a script using one is an ERROR here.
KERNEL_UNSETTABLE = {
    "initial_rto": "Linux's initial RTO is fixed at 1 s (TCP_TIMEOUT_INIT; only a BPF "
    "program can change it)",
    "delayed_ack": "Linux's delayed-ACK timeout is not a setting (it adapts between 40 ms "
    "and 200 ms; only a BPF program can bound it)",
}

# pystack counter -> (/proc/net file, group, kernel name). Only close equivalents: the kernel's
# counter counts the same event (in a fresh namespace both start at 0).
KERNEL_COUNTERS: dict[str, tuple[str, str, str]] = {
    "tcp.challenge_acks_sent": ("netstat", "TcpExt", "TCPChallengeACK"),
    "tcp.active_opens": ("snmp", "Tcp", "ActiveOpens"),
    "tcp.passive_opens": ("snmp", "Tcp", "PassiveOpens"),
    "tcp.resets_sent": ("snmp", "Tcp", "OutRsts"),
    "tcp.retransmits": ("snmp", "Tcp", "RetransSegs"),
    "tcp.timeouts": ("netstat", "TcpExt", "TCPTimeouts"),
    "tcp.syn_cookies_sent": ("netstat", "TcpExt", "SyncookiesSent"),
    "tcp.syn_cookies_accepted": ("netstat", "TcpExt", "SyncookiesRecv"),
    "tcp.out_of_order_segments": ("netstat", "TcpExt", "TCPOFOQueue"),
    "udp.sent": ("snmp", "Udp", "OutDatagrams"),
    "icmp.echo_replies_sent": ("snmp", "Icmp", "OutEchoReps"),
    "icmp.received.type8": ("snmp", "Icmp", "InEchos"),
    "icmp.errors_sent.type3": ("snmp", "Icmp", "OutDestUnreachs"),
    # not udp.delivered: Linux counts UDP InDatagrams when the application reads, not on queueing
}
KERNEL_DROPS: dict[str, tuple[str, str, str]] = {
    "TCP_BAD_CHECKSUM": ("snmp", "Tcp", "InCsumErrors"),
    "TCP_ACCEPT_QUEUE_FULL": ("netstat", "TcpExt", "ListenOverflows"),
}

# Linux TCP states (include/net/tcp_states.h) -> pystack's.
_LINUX_STATES = {
    1: TCPState.ESTABLISHED,
    2: TCPState.SYN_SENT,
    3: TCPState.SYN_RECEIVED,
    4: TCPState.FIN_WAIT_1,
    5: TCPState.FIN_WAIT_2,
    6: TCPState.TIME_WAIT,
    7: TCPState.CLOSED,
    8: TCPState.CLOSE_WAIT,
    9: TCPState.LAST_ACK,
    10: TCPState.LISTEN,
    11: TCPState.CLOSING,
    12: TCPState.SYN_RECEIVED,  # TCP_NEW_SYN_RECV: a request socket, before accept
}
# States in which no more data can arrive (the peer's FIN came, or the connection is gone).
_NO_MORE_DATA = frozenset(
    {TCPState.CLOSE_WAIT, TCPState.LAST_ACK, TCPState.CLOSING, TCPState.TIME_WAIT, TCPState.CLOSED}
)


class KernelTargetError(ValueError):
    """The kernel target cannot run this script here; ``str()`` is one line."""


# the namespace ---------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def in_namespace(namespace: str, job: Callable[[], T]) -> T:
    """Run ``job`` in a new thread that has entered network namespace ``namespace``.

    ``setns`` moves only the calling thread, and that thread ends with the job, so nothing else
    in this process ever changes namespace. Sockets the job creates stay in the namespace.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            descriptor = os.open(NAMESPACE_DIRECTORY / namespace, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(descriptor, CLONE_NEWNET) != 0:
                    number = ctypes.get_errno()
                    raise OSError(number, f"setns: {os.strerror(number)}")
            finally:
                os.close(descriptor)
            outcome.append(job())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=body, name=f"netns-{namespace}", daemon=True)
    thread.start()
    thread.join(NAMESPACE_CALL_TIMEOUT)
    if thread.is_alive():
        raise KernelTargetError(f"a job in namespace {namespace} hung")
    if failure:
        raise failure[0]
    return outcome[0]


def serve_echo_in_namespace(namespace: str, port: int, service: str = "echo") -> EchoServer:
    """Start ``kernel_service.EchoServer`` on PORT of ``namespace``'s 0.0.0.0 (``serve echo``)."""

    def listen() -> socket.socket:
        made = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            made.bind(("0.0.0.0", port))
            made.listen(16)
        except OSError:
            made.close()
            raise
        made.setblocking(False)
        return made

    return EchoServer(in_namespace(namespace, listen), service)


class KernelSandbox:
    """A fresh namespace whose kernel owns 10.0.0.2/24 on a TUN device; ``close()`` removes all.

    ``link`` is this process's end of the device (IP mode, no offloads): what pystack's peer
    writes and reads. ``settings`` are applied as sysctls of the namespace.
    """

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        self.settings = dict(settings or {})
        sysctls = sysctl_values(self.settings)  # a bad name fails before anything is made
        self.socket_options = socket_options(self.settings)
        self.sockets: list[socket.socket] = []
        self.namespace: Namespace | None = None
        self.link: TunLink | None = None
        self._diag: socket.socket | None = None
        try:
            self.namespace = Namespace.create()
            self.link = TunLink(DEVICE_PATTERN)
            move_device(self.namespace, self.link.name)
            configure_peer(self.namespace, self.link.name, STACK_ADDRESS, self.link.mtu)
            for name, value in sysctls.items():
                self._write_sysctl(name, value)
        except (NamespaceError, LinkUnavailable, OSError) as error:
            self.close()
            raise KernelTargetError(f"cannot set up the kernel target: {error}") from None
        except BaseException:  # KernelTargetError from a sysctl, KeyboardInterrupt, ...
            self.close()
            raise

    @property
    def name(self) -> str:
        assert self.namespace is not None
        return self.namespace.name

    def _write_sysctl(self, name: str, value: str) -> None:
        path = "/proc/sys/" + name.replace(".", "/")

        def write() -> None:
            with open(path, "w") as handle:
                handle.write(value)

        try:
            in_namespace(self.name, write)
        except OSError as error:
            raise KernelTargetError(f"sysctl {name}={value}: {error.strerror}") from None

    def socket(self, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A non-blocking TCP (or ``SOCK_DGRAM``: UDP) socket in the namespace, closed with the
        sandbox; a TCP socket gets the script's socket options (``mss``, buffers)."""
        made = in_namespace(self.name, lambda: socket.socket(socket.AF_INET, kind))
        made.setblocking(False)
        self.sockets.append(made)
        if kind == socket.SOCK_STREAM:
            for level, option, value in self.socket_options:
                made.setsockopt(level, option, value)
        return made

    def counters(self) -> dict[tuple[str, str, str], int]:
        """The namespace's /proc/net/snmp and /proc/net/netstat as (file, group, name) -> value."""

        def read() -> dict[tuple[str, str, str], int]:
            values: dict[tuple[str, str, str], int] = {}
            for file in ("snmp", "netstat"):
                with open(f"/proc/thread-self/net/{file}") as handle:
                    lines = handle.read().splitlines()
                for header, numbers in zip(lines[0::2], lines[1::2], strict=False):
                    group, _, names = header.partition(":")
                    for key, number in zip(names.split(), numbers.split()[1:], strict=False):
                        with contextlib.suppress(ValueError):
                            values[(file, group, key)] = int(number)
            return values

        return in_namespace(self.name, read)

    def diagnose(self, local_port: int, remote_port: int) -> DiagEntry | None:
        """The kernel's entry for TCP socket (10.0.0.2:local_port, any:remote_port), if any."""
        if self._diag is None:
            self._diag = in_namespace(
                self.name,
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG),
            )
            self._diag.settimeout(NAMESPACE_CALL_TIMEOUT)  # the kernel answers at once
        entries = [
            entry
            for entry in sock_diag_dump(self._diag)
            if entry.local_port == local_port and entry.remote_port == remote_port
        ]
        # A finishing connection (TIME-WAIT) and a new one can share the ports: the live one.
        entries.sort(key=lambda entry: entry.state is TCPState.TIME_WAIT)
        return entries[0] if entries else None

    def close(self) -> None:
        """Close every socket, the device and the netlink socket, then remove the namespace."""
        for made in self.sockets:
            with contextlib.suppress(OSError):
                made.close()
        self.sockets.clear()
        if self._diag is not None:
            with contextlib.suppress(OSError):
                self._diag.close()
            self._diag = None
        if self.link is not None:
            self.link.close()
        if self.namespace is not None:
            self.namespace.close()

    def __enter__(self) -> KernelSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sysctl_values(settings: Mapping[str, str]) -> dict[str, str]:
    """The sysctls ``settings`` become; ``KernelTargetError`` names a setting Linux lacks."""
    values: dict[str, str] = {}
    for name, value in kernel_settings(settings).items():
        if KERNEL_SETTINGS[name].kind == "sysctl":
            values[str(KERNEL_SETTINGS[name].key)] = str(value)
            if name in KERNEL_COMPANIONS:
                companion, table = KERNEL_COMPANIONS[name]
                values[companion] = table[str(value)]
    return values


def socket_options(settings: Mapping[str, str]) -> list[tuple[int, int, int | bytes]]:
    """(level, option, value) to set on each socket for ``settings``."""
    options: list[tuple[int, int, int | bytes]] = []
    for name, value in kernel_settings(settings).items():
        setting = KERNEL_SETTINGS[name]
        if setting.kind == "socket":
            assert isinstance(setting.key, tuple) and isinstance(value, int | bytes)
            options.append((*setting.key, value))
    return options


def kernel_settings(settings: Mapping[str, str]) -> dict[str, str | int | bytes]:
    """Each setting's converted value; ``KernelTargetError`` (one line) for a name Linux cannot
    set, a name no target knows, or a bad value."""
    converted: dict[str, str | int | bytes] = {}
    for name, value in settings.items():
        if name in KERNEL_UNSETTABLE:
            raise KernelTargetError(
                f"set {name}: not settable on the kernel: {KERNEL_UNSETTABLE[name]}"
            )
        setting = KERNEL_SETTINGS.get(name)
        if setting is None:
            known = ", ".join(sorted(KERNEL_SETTINGS))
            raise KernelTargetError(f"set {name}: not a setting of the kernel target ({known})")
        try:
            converted[name] = setting.convert(value)
        except ValueError as error:
            raise KernelTargetError(f"set {name} {value}: bad value ({error})") from None
    return converted


# the kernel's socket table (NETLINK_SOCK_DIAG, linux/inet_diag.h) ------------------------------
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_INFO = 2
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQUEST = struct.Struct("=BBBxI")  # family, protocol, extensions, states (then a sockid)
_SOCKID = struct.Struct("!HH16s16sI8s")  # ports, addresses, interface, cookie
_DIAG_MESSAGE = struct.Struct("=BBBB")  # family, state, timer, retransmits (then a sockid)
_DIAG_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_ATTRIBUTE = struct.Struct("=HH")
_TCP_INFO_HEAD = struct.Struct("=8B24I")  # struct tcp_info up to tcpi_total_retrans


@dataclass(frozen=True)
class DiagEntry:
    local_port: int
    remote_port: int
    state: TCPState
    info: dict[str, object]  # mapped tcp_info keys (empty for TIME-WAIT and request sockets)


def sock_diag_dump(channel: socket.socket) -> list[DiagEntry]:
    """Every IPv4 TCP socket of ``channel``'s namespace, with its state and tcp_info."""
    body = _DIAG_REQUEST.pack(
        socket.AF_INET, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0xFFFFFFFF
    ) + bytes(_SOCKID.size)
    header = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    channel.send(header + body)
    entries: list[DiagEntry] = []
    for _ in range(1000):  # bound: a few sockets need one or two reads
        data = channel.recv(65536)
        offset = 0
        while offset + _NLMSG_HEADER.size <= len(data):
            length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
            if length < _NLMSG_HEADER.size:
                return entries
            if kind == NLMSG_DONE:
                return entries
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
            entries.append(_diag_entry(data[offset + _NLMSG_HEADER.size : offset + length]))
            offset += (length + 3) & ~3
    return entries


def _diag_entry(message: bytes) -> DiagEntry:
    _, state, _, _ = _DIAG_MESSAGE.unpack_from(message)
    local, remote, *_ = _SOCKID.unpack_from(message, _DIAG_MESSAGE.size)
    offset = _DIAG_MESSAGE.size + _SOCKID.size + _DIAG_TAIL.size
    info: dict[str, object] = {}
    while offset + _ATTRIBUTE.size <= len(message):
        length, kind = _ATTRIBUTE.unpack_from(message, offset)
        if length < _ATTRIBUTE.size:
            break
        value = message[offset + _ATTRIBUTE.size : offset + length]
        if kind == INET_DIAG_INFO and len(value) >= _TCP_INFO_HEAD.size:
            info = _tcp_info(value)
        offset += (length + 3) & ~3
    mapped = _LINUX_STATES.get(state, TCPState.CLOSED)
    return DiagEntry(local, remote, mapped, info)


def _tcp_info(raw: bytes) -> dict[str, object]:
    """The ``tcp_info`` keys pystack's ``tcp_info()`` also has, with the same meaning."""
    fields = _TCP_INFO_HEAD.unpack_from(raw)
    options, scales = fields[5], fields[6]
    numbers = fields[8:]
    return {
        "state": _LINUX_STATES.get(fields[0], TCPState.CLOSED).value,
        "timestamps": bool(options & 1),  # TCPI_OPT_TIMESTAMPS
        "sack": bool(options & 2),  # TCPI_OPT_SACK
        "snd_wscale": scales & 0x0F if options & 4 else 0,  # TCPI_OPT_WSCALE
        "rcv_wscale": scales >> 4 if options & 4 else 0,
        "mss": numbers[2],  # tcpi_snd_mss
        "retransmits": numbers[23],  # tcpi_total_retrans
    }


# the socket side -------------------------------------------------------------------------------
class KernelConnection:
    """A kernel socket in the shape ``application.ConnectionLike`` describes (non-blocking)."""

    def __init__(self, sandbox: KernelSandbox, sock: socket.socket, remote_port: int) -> None:
        self.sandbox, self.sock = sandbox, sock
        self.local_port: int = sock.getsockname()[1]
        self.remote_port = remote_port
        self.closed = False
        self.remembered_error: int | None = None  # Linux reports an error once; pystack keeps it
        self.soft_error: int | None = None
        self.eof = False

    def fileno(self) -> int:
        return -1 if self.closed else self.sock.fileno()

    def entry(self) -> DiagEntry | None:
        return self.sandbox.diagnose(self.local_port, self.remote_port)

    @property
    def state(self) -> TCPState:
        entry = self.entry()
        return TCPState.CLOSED if entry is None else entry.state

    @property
    def error(self) -> int | None:
        """The error that ended the connection (pystack's ``error``), kept once seen."""
        self._read_error()
        return self.remembered_error

    def _read_error(self) -> None:
        # SO_ERROR reports an error once, hard or soft (an ICMP error on a live connection).
        # pystack keeps both apart: a hard error ends the connection (the kernel's socket is
        # then CLOSED), a soft one is tcp_info's ``soft_error`` while the connection goes on.
        if self.closed:
            return
        number = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not number:
            return
        if self.state is TCPState.CLOSED:
            self.remembered_error = number
        else:
            self.soft_error = number

    @property
    def at_eof(self) -> bool:
        if self.eof or self.closed:
            return self.eof
        try:
            self.eof = self.sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        return self.eof

    @property
    def readable(self) -> int:
        return self.available()

    def available(self) -> int:
        """Bytes waiting to be read (SIOCINQ)."""
        if self.closed:
            return 0
        buffer = bytearray(4)
        fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, buffer)
        return int.from_bytes(buffer, "little")

    def _remember(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except BlockingIOError:
            raise
        except OSError as error:
            if error.errno not in (errno.EBADF, None):
                self.remembered_error = error.errno
            raise

    def send(self, data: bytes, now: float) -> int:
        try:
            return self._remember(lambda: self.sock.send(data))
        except BlockingIOError:
            return 0

    def receive(self, size: int) -> bytes:
        try:
            data = self._remember(lambda: self.sock.recv(size))
        except BlockingIOError:
            return b""
        if not data:
            self.eof = True
        return data

    def set_nodelay(self, enabled: bool) -> None:
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))

    def shutdown(self, now: float) -> None:
        self._remember(lambda: self.sock.shutdown(socket.SHUT_WR))

    def close(self, now: float) -> None:
        self.error  # noqa: B018 - keep a pending error: after close() it cannot be read
        self.closed = True
        self.sock.close()

    def abort(self, now: float) -> None:
        # SO_LINGER with a zero timeout: close() sends RST and drops the connection (ABORT).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close(now)

    def tcp_info(self) -> dict[str, object]:
        self._read_error()
        entry = self.entry()
        info = {} if entry is None else dict(entry.info)
        return {**info, "soft_error": self.soft_error}


class KernelListener:
    def __init__(self, sandbox: KernelSandbox, sock: socket.socket) -> None:
        self.sandbox, self.sock = sandbox, sock

    def ready(self) -> bool:
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def accept(self) -> KernelConnection | None:
        try:
            accepted, (_, port) = self.sock.accept()
        except BlockingIOError:
            return None
        accepted.setblocking(False)
        self.sandbox.sockets.append(accepted)
        return KernelConnection(self.sandbox, accepted, port)


class KernelUDPSocket:
    """A non-blocking kernel UDP socket in the shape ``application.UDPLike`` describes.

    Linux keeps an ICMP error a connected socket got and raises it from the next call itself,
    so ``take_error`` has nothing to add: the call's own ``OSError`` carries it.
    """

    def __init__(self, sandbox: KernelSandbox, port: int) -> None:
        self.sock = sandbox.socket(socket.SOCK_DGRAM)
        self.sock.bind((KERNEL_ADDRESS, port))
        self.port: int = self.sock.getsockname()[1]

    def connect(self, address: tuple[int, int]) -> None:
        self.sock.connect((ip_to_str(address[0]), address[1]))

    def take_error(self) -> int:
        return 0

    def send(self, data: bytes, now: float) -> int:
        return self.sock.send(data)

    def send_to(self, data: bytes, address: tuple[int, int], now: float) -> int:
        return self.sock.sendto(data, (ip_to_str(address[0]), address[1]))

    def receive(self) -> tuple[bytes, tuple[int, int]] | None:
        try:
            data, (host, port) = self.sock.recvfrom(65535)
        except BlockingIOError:
            return None
        return data, (ip_from_str(host), port)

    def ready(self) -> bool:
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def close(self, now: float | None = None) -> None:
        self.sock.close()


class KernelTCP:
    """``listen`` and ``connect`` on kernel sockets (``application.TCPLike``)."""

    def __init__(self, sandbox: KernelSandbox) -> None:
        self.sandbox = sandbox

    def listen(self, port: int, backlog: int = DEFAULT_BACKLOG) -> KernelListener:
        sock = self.sandbox.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(backlog)
        return KernelListener(self.sandbox, sock)

    def connect(
        self, address: int, port: int, now: float, local_port: int | None = None
    ) -> KernelConnection:
        sock = self.sandbox.socket()
        if local_port is not None:
            sock.bind((KERNEL_ADDRESS, local_port))
        code = sock.connect_ex((ip_to_str(address), port))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, os.strerror(code))
        return KernelConnection(self.sandbox, sock, port)


class Unobservable(Exception):
    """An expectation the kernel target cannot check; the message says which and why."""


class KernelApplication(Application):
    """The script's program on kernel sockets: ``Application`` with the kernel's TCP surface.

    The calls and checks themselves (payload patterns, read positions, errno names) are
    ``Application``'s; this class adds what waits (``would_block``) and the kernel's view of
    counters, drops and ``tcp_info``.
    """

    def __init__(self, sandbox: KernelSandbox) -> None:
        self.sandbox = sandbox
        self.kernel_tcp = KernelTCP(sandbox)
        self.listener: KernelListener | None = None  # type: ignore[assignment]
        self.connection: KernelConnection | None = None  # type: ignore[assignment]
        self.written = bytearray()
        self.read_position: int | None = None
        self.udp: KernelUDPSocket | None = None

    def open_udp(self, port: int) -> KernelUDPSocket:
        return KernelUDPSocket(self.sandbox, port)

    @property
    def tcp(self) -> KernelTCP:  # type: ignore[override]
        return self.kernel_tcp

    def would_block(self, call: ev.Call) -> bool:
        """Whether ``call`` would wait now: its result is not there yet."""
        if isinstance(call, ev.Accept) and not call.optional and self.listener is not None:
            return not self.listener.ready()
        if isinstance(call, ev.UDPRecvFrom) and self.udp is not None:
            # A datagram written to the device reaches the socket a moment later: wait for it
            # (a line that expects EAGAIN has an error, and waiting calls never have one).
            return not self.udp.ready()
        connection = self.connection
        if not isinstance(call, ev.Read) or connection is None or connection.closed:
            return False
        if not call.exact or call.length == 0:
            return False  # ``read upto N`` takes what is there now, ``read 0`` checks it is none
        # SO_RCVLOWAT makes the socket readable only once N bytes are there (or the end of
        # the stream or an error): select() then wakes the runner exactly when the read can
        # complete, instead of at every partial arrival.
        wanted = min(call.length or 1, RCVLOWAT_LIMIT)
        connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, wanted)
        readable, _, _ = select.select([connection.sock], [], [], 0)
        if not readable:
            return True
        if call.length is None or connection.available() >= call.length:
            return False
        # Fewer bytes than asked: complete once the peer can send no more (FIN or reset).
        return connection.state not in _NO_MORE_DATA

    def waits_on(self, call: ev.Call) -> list[int]:
        """The descriptor whose readiness may complete the waiting ``call``."""
        if isinstance(call, ev.Accept) and self.listener is not None:
            return [self.listener.sock.fileno()]
        if isinstance(call, ev.UDPRecvFrom) and self.udp is not None:
            return [self.udp.sock.fileno()]
        if self.connection is not None and not self.connection.closed:
            return [self.connection.sock.fileno()]
        return []

    def check(self, expectation: ev.Expectation) -> None:
        if isinstance(expectation, ev.ExpectCounter | ev.ExpectDrop):
            table = KERNEL_COUNTERS if isinstance(expectation, ev.ExpectCounter) else KERNEL_DROPS
            name = (
                expectation.name
                if isinstance(expectation, ev.ExpectCounter)
                else expectation.reason
            )
            where = table.get(name)
            if where is None:
                raise Unobservable(f"{name} has no kernel equivalent")
            value = self.sandbox.counters().get(where, 0)
            if value != expectation.value:
                raise CheckFailed(
                    f"{name} (kernel {where[1]}{where[2]}) is {value}, expected {expectation.value}"
                )
            return
        connection = self.connection
        if isinstance(expectation, ev.ExpectError) and connection is not None:
            if connection.closed and connection.remembered_error is None:
                raise Unobservable("a closed socket's error cannot be read on the kernel")
        if isinstance(expectation, ev.ExpectInfo) and connection is not None:
            if expectation.key not in _tcp_info_keys():
                raise Unobservable(f"tcp_info {expectation.key} is not mapped to the kernel's")
        super().check(expectation)


def _tcp_info_keys() -> frozenset[str]:
    return frozenset([*_tcp_info(bytes(_TCP_INFO_HEAD.size)), "soft_error"])


# the runner -------------------------------------------------------------------------------------
class _WallClock(ManualClock):
    """Real (monotonic) seconds since the script started; ``set`` cannot move it."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.start

    def set(self, when: float) -> float:
        return self.now()


@dataclass
class _Waiting:
    line: ScriptLine
    call: ev.Call
    since: float


class KernelScriptRunner(ScriptRunner):
    """``ScriptRunner`` on real time, with the kernel behind a TUN device as the side under test.

    Only the clock, the wire, the application and the TS val mapping differ from the pystack
    runner: the line semantics, packet matching and failure reports are the same code.
    """

    application: KernelApplication
    # Linux's window sizes and option layout are its configuration, not the script's subject
    exact_layout = False

    def __init__(
        self,
        script: str | Sequence[ScriptLine],
        sandbox: KernelSandbox,
        *,
        tolerance: float = KERNEL_TOLERANCE,
        any_time_limit: float = ANY_TIME_LIMIT,
    ) -> None:
        # Not ScriptRunner.__init__: it builds a pystack stack; the run's state is the same.
        assert sandbox.link is not None
        self.lines = list(parse_script(script) if isinstance(script, str) else script)
        self.sandbox = sandbox
        self.wire = sandbox.link
        self.clock = _WallClock()
        self.application = KernelApplication(sandbox)
        self._start_state(Numbering(), tolerance)
        self.time = 0.0  # lines count from the script's start, whenever the first one runs
        self.minimum_tolerance = tolerance
        self.any_time_limit = any_time_limit
        self.ts_offset: int | None = None  # kernel TS val - script TS val, from its SYN
        self.waiting: _Waiting | None = None
        self.unobservable: list[str] = []
        self.scheduled = 0.0  # the current line's time as written (real seconds)
        self.late_note = ""
        self.ignored = 0  # frames from the kernel that are not IPv4 (none expected)
        self.services: list[EchoServer] = []  # ``serve echo PORT``: stopped with the run

    def fail(
        self,
        reason: str,
        expected: str | None = None,
        actual: str | None = None,
        details: Sequence[str] = (),
    ) -> ScriptFailure:
        # The runner's reasons name the side under test "pystack"; here it is the kernel.
        reason = reason.replace("pystack's", "the kernel's").replace("pystack ", "the kernel ")
        return super().fail(reason, expected, actual, details)

    # time and the wire --------------------------------------------------------------------------
    def _drain(self) -> None:
        """Take every frame the kernel has sent; finish a waiting call whose result is there."""
        for frame in self.wire.receive(self.clock.now(), 1 << 20):
            if frame[:1] and frame[0] >> 4 == 4 and self.ignore_outbound:
                self._keep_outbound(self.clock.now(), frame)  # recorded, never matched
            elif frame[:1] and frame[0] >> 4 == 4:
                self.pending.append((self.clock.now(), frame))
            else:
                self.ignored += 1
        self._progress()

    def _poll(self, when: float) -> None:
        self._drain()

    def _advance(self, until: float) -> None:
        """Wait (really) until ``until`` or the kernel's first packet, whichever comes first."""
        descriptor = self.wire.fileno()
        assert descriptor is not None
        while True:
            self._drain()
            remaining = until - self.clock.now()
            if self.pending or remaining <= 0:
                return
            waiting = self.waiting
            watched = [descriptor, *(self.application.waits_on(waiting.call) if waiting else ())]
            select.select(watched, [], [], remaining)

    def _line_time(self, spec: ev.TimeSpec | None) -> float:
        # Real time cannot be set back: a line whose time has passed happens now.
        assert spec is not None and spec.start is not None
        self.scheduled = (self.time if spec.relative else 0.0) + spec.start
        return max(self.scheduled, self.clock.now())

    def _note_lateness(self) -> None:
        """A line acted on later than the tolerance allows is noted in the trace (at its own
        entry), and '+' times after it count from when it really happened."""
        late = self.clock.now() - self.scheduled
        if late > self.tolerance:
            self.late_note = f"late by {late * 1000:.1f} ms"
            self.time = self.clock.now()

    def _record(self, when: float, text: str, line: ScriptLine | None, note: str = "") -> None:
        if self.late_note and line is not None and line is self._line:
            note = "; ".join(part for part in (note, self.late_note) if part)
            self.late_note = ""
        super()._record(when, text, line, note)

    def _window(self, spec: ev.TimeSpec | None) -> tuple[float, float]:
        if spec is not None and spec.start is None:
            return self.time, self.time + self.any_time_limit
        low, high = super()._window(spec)
        # Linux's timer wheel fires a timer late by up to 1/8 of its length (each wheel level
        # is 8 times coarser, kernel/time/timer.c): a 1 s retransmission may come ~60 ms late.
        # So a packet may be that much later than the line says, counted from the last line.
        return low, high + max(0.0, high - self.tolerance - self.time) * TIMER_WHEEL_SLACK

    def _local_address(self) -> int:
        return ip_from_str(KERNEL_ADDRESS)

    # lines --------------------------------------------------------------------------------------
    def _execute(self, line: ScriptLine) -> None:
        if isinstance(line.event, ev.Tolerance):
            self.tolerance = max(line.event.seconds, self.minimum_tolerance)
            return
        if isinstance(line.event, ev.Serve):  # the built-in echo server, inside the namespace
            self.services.append(serve_echo_in_namespace(self.sandbox.name, line.event.port))
            return
        super()._execute(line)

    def _act(self, line: ScriptLine, event: ev.Event, when: float) -> None:
        self._note_lateness()
        if isinstance(event, ev.Call):
            self._collect(line)
            self._call(line, event, when)
            return
        if isinstance(event, Packet | ev.ICMP | ev.UDP | ev.Echo):
            super()._act(line, event, when)
            return
        self._collect(line)
        try:
            super()._act(line, event, when)
        except Unobservable as why:
            note = f"not observable on kernel: {why}"
            self.unobservable.append(f"line {line.number}: {line.text}  # {why}")
            self._record(when, format_event(event), line, note)

    def _call(self, line: ScriptLine, call: ev.Call, when: float) -> None:
        if call.error is None and self.application.would_block(call):
            self.waiting = _Waiting(line, call, when)
            self._record(when, format_event(call), line, "waits for its result")
            return
        super()._call(line, call, when)

    def _progress(self) -> None:
        """Complete the waiting call if its result has come."""
        waiting = self.waiting
        if waiting is None or self.application.would_block(waiting.call):
            return
        self.waiting = None
        connection = self.application.connection
        if connection is not None and not connection.closed:
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        current, self._line = self._line, waiting.line  # a failure names the call's own line
        try:
            super()._call(waiting.line, waiting.call, self.clock.now())
        finally:
            self._line = current
        last = self.events[-1]
        note = "; ".join(
            part for part in (last.note, f"called at {format_seconds(waiting.since)}") if part
        )
        self.events[-1] = TraceEntry(last.time, last.text, last.line, note)

    def _collect(self, line: ScriptLine | None) -> None:
        """A call still waiting must return by the next call or expectation (or the end)."""
        if self.waiting is None:
            return
        self._advance_for_call(self.clock.now() + self.tolerance)
        waiting = self.waiting
        if waiting is None:
            return
        what = f"line {line.number}" if line is not None else "the end of the script"
        reason = f"the call still waits for its result at {what}"
        details = [f"called at {format_seconds(waiting.since)}"]
        connection = self.application.connection
        if isinstance(waiting.call, ev.Read) and connection is not None:
            details.append(f"{connection.available()} bytes readable")
        raise ScriptFailure(reason, waiting.line, None, None, details, self.events)

    def _advance_for_call(self, until: float) -> None:
        while self.waiting is not None and self.clock.now() < until:
            watched = self.application.waits_on(self.waiting.call)
            select.select(watched, [], [], max(0.0, until - self.clock.now()))
            self._progress()

    def _finish(self) -> None:
        self._collect(None)
        super()._finish()

    def stop_services(self) -> None:
        """Stop the ``serve echo`` servers (their sockets close with the sandbox too)."""
        for service in self.services:
            service.stop()
        self.services.clear()

    def result(self) -> ScriptResult:
        # Read-only properties where ConnectionLike has attributes: what a reader reads is there.
        connection = cast(ConnectionLike | None, self.application.connection)
        return ScriptResult(
            None,
            self.wire,
            self.clock,
            self.events,
            connection,
            target="kernel",
            unobservable=list(self.unobservable),
        )

    # TS val: the kernel's clock starts at a random offset per connection -----------------------
    # Mapped where frames meet the runner, so the trace, the reports, and ``ecr *``/``ecr $``
    # all see script numbers: the kernel's SYN has TS val 0, later values count in its ms.
    def _decode(self, frame: bytes) -> tuple[IPv4Packet, TCPSegment | None]:
        packet, segment = super()._decode(frame)
        if segment is None or segment.timestamp is None:
            return packet, segment
        value, echo = segment.timestamp
        if segment.flags & SYN:
            self.ts_offset = value  # decoding the same SYN again learns the same offset
        if self.ts_offset is None:
            return packet, segment
        return packet, _with_timestamp(segment, (value - self.ts_offset) & MASK, echo)

    def _problems(self, expected: Packet, packet: IPv4Packet, segment: TCPSegment) -> list[str]:
        # Real time: a TS val may be off from the line's number by the tolerance in ms (+1).
        wanted = _tsval_of(expected)
        if segment.timestamp is not None and wanted is not None:
            value, echo = segment.timestamp
            slack = math.ceil(self.tolerance * 1000) + 1
            if abs(((value - wanted + (1 << 31)) & MASK) - (1 << 31)) <= slack:
                segment = _with_timestamp(segment, wanted, echo)
        return super()._problems(expected, packet, segment)

    def _send_ip(self, packet: IPv4Packet, when: float) -> None:
        """A ``<`` segment's ecr is in script numbers: on the wire it gets the kernel's offset
        back (not on a bare SYN, whose ecr means nothing, RFC 7323 3.2)."""
        if self.ts_offset is not None and packet.protocol == PROTO_TCP:
            segment = TCPSegment.parse(packet.payload, packet.src, packet.dst)
            bare_syn = segment.flags & SYN and not segment.flags & tcp.ACK
            if segment.timestamp is not None and not bare_syn:
                value, echo = segment.timestamp
                segment = _with_timestamp(segment, value, (echo + self.ts_offset) & MASK)
                packet = packet._replace(payload=segment.build(packet.src, packet.dst))
        super()._send_ip(packet, when)


def _with_timestamp(segment: TCPSegment, value: int, echo: int) -> TCPSegment:
    options = tuple(
        tcp.timestamp_option(value, echo) if option.kind == tcp.OPT_TIMESTAMP else option
        for option in segment.options
    )
    return segment._replace(options=options)


def _tsval_of(event: ev.Event | None) -> int | None:
    if (
        isinstance(event, Packet)
        and event.direction == OUTBOUND
        and isinstance(event.options, tuple)
    ):
        for option in event.options:
            if option.kind == tcp.OPT_TIMESTAMP and isinstance(option.values[0], int):
                return option.values[0]
    return None


# the target -------------------------------------------------------------------------------------
class ScriptLike(Protocol):
    """What the kernel target reads of a script file (``files.ScriptFile`` has these)."""

    @property
    def path(self) -> str: ...

    @property
    def lines(self) -> tuple[ScriptLine, ...]: ...

    @property
    def settings(self) -> Mapping[str, str]: ...


class KernelTarget:
    """Runs scripts against Linux in a fresh namespace each (the ``Target`` protocol)."""

    name = "kernel"
    real_time = (
        True  # its scripts take their written time (``batch.Workers`` starts long ones first)
    )

    def __init__(self, tolerance: float = KERNEL_TOLERANCE) -> None:
        self.tolerance = tolerance

    def run(self, script: ScriptLike) -> ScriptResult:
        """Run ``script``; raises ``ScriptFailure`` on a difference, ``KernelTargetError`` when
        the kernel target cannot run here (no root, no TUN, an unknown setting)."""
        return run_kernel_lines(script.lines, script.settings, tolerance=self.tolerance)


def run_kernel_lines(
    lines: Sequence[ScriptLine],
    settings: Mapping[str, str] | None = None,
    *,
    tolerance: float = KERNEL_TOLERANCE,
) -> ScriptResult:
    """Run parsed ``lines`` against the kernel; the namespace is gone when this returns."""
    unsupported = [line for line in lines if not isinstance(line.event, _SUPPORTED)]
    if unsupported:
        first = unsupported[0]
        raise KernelTargetError(f"line {first.number}: not supported on the kernel: {first.text}")
    with KernelSandbox(settings) as sandbox:
        runner = KernelScriptRunner(lines, sandbox, tolerance=tolerance)
        try:
            return runner.run()
        finally:
            runner.stop_services()


def run_kernel_script(
    text: str, settings: Mapping[str, str] | None = None, *, tolerance: float = KERNEL_TOLERANCE
) -> ScriptResult:
    """Parse and run ``text`` against the kernel (``run_script``'s twin)."""
    return run_kernel_lines(parse_script(text), settings, tolerance=tolerance)


# The lines of today's notation; a line type added later must be taught here first.
_SUPPORTED = (
    *(Packet, ev.ICMP, ev.UDP, ev.Echo, ev.Call, ev.Tolerance, ev.Ports, ev.EndStrict),
    *(ev.ExpectState, ev.ExpectError, ev.ExpectCounter, ev.ExpectDrop, ev.ExpectInfo),
    ev.ExpectNothing,
    *(ev.IgnoreOutbound, ev.Serve),  # recording only; the echo server inside the namespace
    ev.ExactWindows,
)
