"""Kernel links: a TUN device (raw IPv4 packets) or a TAP device (Ethernet frames) via pytun.

Job: open ``/dev/net/tun`` with ``IFF_NO_PI`` (no packet-info header), set the MTU before the
device is used, make the descriptor non-blocking, and move frames with one ``os.read`` or
``os.write`` each. ``receive`` drains until the kernel has nothing more (EAGAIN) or ``limit``;
``send`` writes one frame. Errors on the per-packet path are counted, never raised.

Must not: parse frames, configure addresses or routes (that is ``pystack.netns``, inside a
namespace), block, or log on the per-packet path. After the device is moved into another network
namespace its name no longer resolves here, so ``name``, ``mtu`` and ``hwaddr`` are read once, at
creation, and cached.

Entry points: ``TunLink(name, mtu=..., attach_existing=...)``, ``TapLink(...)``,
``LinkUnavailable`` (raised when the device cannot be created, with a one-line explanation).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import pytun

from pystack.link.base import LinkKind, LinkStatistics, OffloadedFrame, SegmentedFrame

TUN_DEVICE_PATH = "/dev/net/tun"
ETHERNET_HEADER_LENGTH = 14
MINIMUM_MTU = 68  # RFC 791: every IPv4 module must handle 68-octet datagrams
MAXIMUM_TUN_MTU = 65535  # the tun driver's MAX_MTU
MAXIMUM_TAP_MTU = 65535 - ETHERNET_HEADER_LENGTH  # MAX_MTU minus the Ethernet header
READ_SLACK = 64  # read a little more than the largest frame so an oversized one shows up
INTERFACE_NAME_MAXIMUM = 15  # IFNAMSIZ - 1
# Offloads (linux/if_tun.h, linux/virtio_net.h): a virtio-net header before every frame.
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM, TUN_F_TSO4 = 0x01, 0x02
VNET_HEADER = struct.Struct(
    "=BBHHHH"
)  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_NEEDS_CSUM = 0x01
VNET_GSO_NONE, VNET_GSO_TCPV4 = 0, 1
_PLAIN_HEADER = VNET_HEADER.pack(0, VNET_GSO_NONE, 0, 0, 0, 0)


class LinkUnavailable(Exception):
    """The kernel device cannot be opened here; ``str()`` is a one-line explanation."""

    @classmethod
    def from_os_error(cls, device: str, error: OSError) -> LinkUnavailable:
        """Explain why opening a ``device`` ("TUN" or "TAP") failed with ``error``."""
        return cls(explain_open_error(device, error.errno, error.strerror))

    @classmethod
    def attaching(cls, device: str, name: str, error: OSError) -> LinkUnavailable:
        """Explain why attaching to the existing ``device`` named ``name`` failed."""
        if error.errno in (errno.EPERM, errno.EACCES):
            return cls(
                f"attaching to {device} device {name!r} needs CAP_NET_ADMIN, or a device made "
                f"for this user (ip tuntap add {name} mode {device.lower()} user USER)"
            )
        return cls.from_os_error(device, error)


def explain_open_error(device: str, error_number: int | None, detail: str | None = None) -> str:
    """A one-line human explanation for a failed TUN/TAP open (``errno`` decides the wording)."""
    if error_number in (errno.EPERM, errno.EACCES):
        return f"creating a {device} device needs root (CAP_NET_ADMIN)"
    if error_number in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"{TUN_DEVICE_PATH} is missing: load the tun module or pass the device into the container"
    if error_number == errno.EBUSY:
        return f"the {device} device is busy: another process has it open"
    if error_number == errno.EINVAL:
        return f"the kernel refused the {device} device settings (name, flags or mtu)"
    reason = detail or (os.strerror(error_number) if error_number else "unknown error")
    return f"cannot open a {device} device: {reason}"


@dataclass(slots=True)
class TunTapStatistics(LinkStatistics):
    """``LinkStatistics`` plus read errors other than "nothing waiting"."""

    receive_errors: int = 0


def _interface_exists(name: str) -> bool:
    """Whether a network device called ``name`` exists in this process's namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


class _KernelLink:
    """Shared body of ``TunLink`` and ``TapLink`` (the subclasses fix the flags and kind)."""

    __slots__ = (
        "_device",
        "_fd",
        "_hwaddr",
        "_mtu",
        "_name",
        "_offload",
        "_read_size",
        "_statistics",
    )

    _kind: ClassVar[LinkKind]
    _flag: ClassVar[int]
    _label: ClassVar[str]
    _default_name: ClassVar[str]
    _maximum_mtu: ClassVar[int]

    def __init__(
        self,
        name: str | None = None,
        *,
        mtu: int | None = None,
        attach_existing: bool = False,
        offload: bool = False,
    ) -> None:
        """Create (or with ``attach_existing`` attach to) a device.

        ``name`` is a device name or a kernel pattern such as ``"pst%d"``; ``mtu`` (68 up to
        65535 for TUN, 65521 for TAP) is set before the device is used, default 1500 for a new
        device and the device's current MTU when attaching. Raises ``LinkUnavailable``.
        """
        device_name = self._check_name(name, attach_existing)
        if mtu is not None and not MINIMUM_MTU <= mtu <= self._maximum_mtu:
            raise ValueError(
                f"{self._label} mtu must be {MINIMUM_MTU}..{self._maximum_mtu}, got {mtu}"
            )
        self._offload = offload and self._kind is LinkKind.IP
        device = self._open(device_name, attach_existing)
        try:
            if mtu is None and not attach_existing:
                mtu = 1500
            if mtu is not None and device.mtu != mtu:
                device.mtu = mtu
            self._mtu: int = device.mtu
            self._name: str = device.name
            self._hwaddr: bytes | None = (
                bytes(device.hwaddr) if self._kind is LinkKind.ETHERNET else None
            )
            self._fd: int = device.fileno()
            os.set_blocking(self._fd, False)
        except OSError as error:
            device.close()
            raise LinkUnavailable.from_os_error(self._label, error) from error
        except BaseException:
            device.close()
            raise
        self._device: Any = device
        header = ETHERNET_HEADER_LENGTH if self._kind is LinkKind.ETHERNET else 0
        self._read_size = self._mtu + header + READ_SLACK
        if self._offload:  # offloaded frames reach 64 KiB whatever the MTU, behind a vnet header
            self._read_size = VNET_HEADER.size + MAXIMUM_TUN_MTU + READ_SLACK
        self._statistics = TunTapStatistics()

    def _check_name(self, name: str | None, attach_existing: bool) -> str:
        if attach_existing:
            if not name or "%" in name:
                raise ValueError("attach_existing needs the exact name of an existing device")
            if not _interface_exists(name):
                raise LinkUnavailable(
                    f"no {self._label} device named {name!r} here (make it with `ip tuntap add`)"
                )
        elif name and "%" not in name and _interface_exists(name):
            raise LinkUnavailable(
                f"a device named {name!r} already exists (pass attach_existing=True to use it)"
            )
        name = name or self._default_name
        if len(name) > INTERFACE_NAME_MAXIMUM or "/" in name or any(c.isspace() for c in name):
            raise ValueError(f"bad device name {name!r} (at most 15 characters, no '/' or spaces)")
        return name

    def _open(self, name: str, attach_existing: bool) -> Any:
        try:
            flags = self._flag | pytun.IFF_NO_PI | (pytun.IFF_VNET_HDR if self._offload else 0)
            device = pytun.TunTapDevice(name=name, flags=flags)
        except OSError as error:
            if attach_existing:
                raise LinkUnavailable.attaching(self._label, name, error) from error
            raise LinkUnavailable.from_os_error(self._label, error) from error
        if self._offload:
            try:
                fcntl.ioctl(device.fileno(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
            except OSError as error:
                device.close()
                raise LinkUnavailable(
                    f"the kernel refused TUN offloads: {error.strerror}"
                ) from error
        return device

    @property
    def kind(self) -> LinkKind:
        return self._kind

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def name(self) -> str:
        """The device's actual name (the pattern expanded)."""
        return self._name

    @property
    def statistics(self) -> TunTapStatistics:
        return self._statistics

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def segmentation_limit(self) -> int:
        """Largest frame ``send_segmented`` takes (0: this link does not segment)."""
        return MAXIMUM_TUN_MTU if self._offload else 0

    def send_segmented(self, frame: SegmentedFrame, now: float) -> None:
        """Write a large TCP frame for the kernel to cut into ``segment_size`` pieces (TSO)."""
        header = VNET_HEADER.pack(
            VNET_NEEDS_CSUM,
            VNET_GSO_TCPV4,
            frame.header_length,
            frame.segment_size,
            frame.checksum_start,
            frame.checksum_offset,
        )
        self._write(header + frame.frame)

    def send(self, frame: bytes, now: float) -> None:
        """Write one frame; a refused write (EAGAIN, ENOBUFS, EIO, closed link) is counted."""
        self._write(_PLAIN_HEADER + frame if self._offload else frame)

    def _write(self, frame: bytes) -> None:
        try:
            written = os.write(self._fd, frame)
        except OSError:
            self._statistics.send_errors += 1
            return
        statistics = self._statistics
        statistics.frames_sent += 1
        statistics.bytes_sent += written

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        """Read frames until the kernel has none waiting or ``limit`` is reached."""
        frames: list[bytes] = []
        fd = self._fd
        if fd < 0:
            return frames
        read = os.read
        size = self._read_size
        append = frames.append
        offload = self._offload
        received = 0
        for _ in range(limit):
            try:
                frame = read(fd, size)
            except BlockingIOError:
                break
            except OSError:
                self._statistics.receive_errors += 1
                break
            if not frame:
                break
            if offload:
                # The kernel's own packets come with the transport checksum left to compute
                # (NEEDS_CSUM): they never crossed a wire, so they are marked, not checked.
                frame = OffloadedFrame(frame[10:]) if frame[0] & VNET_NEEDS_CSUM else frame[10:]
            append(frame)
            received += len(frame)
        if frames:
            statistics = self._statistics
            statistics.frames_received += len(frames)
            statistics.bytes_received += received
        return frames

    def next_deadline(self) -> float | None:
        return None

    def fileno(self) -> int | None:
        """The device descriptor (readable when frames wait); None once closed."""
        return self._fd if self._fd >= 0 else None

    def close(self) -> None:
        """Close the descriptor (a non-persistent device disappears with it). Idempotent."""
        if self._fd < 0:
            return
        self._fd = -1
        self._device.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else "open"
        return f"{type(self).__name__}(name={self._name!r}, mtu={self._mtu}, {state})"


class TunLink(_KernelLink):
    """A TUN device: frames are raw IPv4 packets (``LinkKind.IP``)."""

    __slots__ = ()
    _kind = LinkKind.IP
    _flag = pytun.IFF_TUN
    _label = "TUN"
    _default_name = "pystun%d"
    _maximum_mtu = MAXIMUM_TUN_MTU


class TapLink(_KernelLink):
    """A TAP device: frames are Ethernet II frames (``LinkKind.ETHERNET``)."""

    __slots__ = ()
    _kind = LinkKind.ETHERNET
    _flag = pytun.IFF_TAP
    _label = "TAP"
    _default_name = "pystap%d"
    _maximum_mtu = MAXIMUM_TAP_MTU

    @property
    def hwaddr(self) -> bytes:
        """The kernel side's MAC address (6 bytes), read when the device was created."""
        assert self._hwaddr is not None
        return self._hwaddr
