"""TunLink/TapLink argument checks and LinkUnavailable messages (no device is created here)."""

from __future__ import annotations

import errno
import os

import pytest

from pystack.link.tuntap import LinkUnavailable, TapLink, TunLink, explain_open_error


def test_link_unavailable_permission_message_is_one_line_and_says_root() -> None:
    error = LinkUnavailable.from_os_error(
        "TUN", PermissionError(errno.EPERM, "Operation not permitted")
    )
    assert str(error) == "creating a TUN device needs root (CAP_NET_ADMIN)"


@pytest.mark.parametrize(
    ("error_number", "words"),
    [
        (errno.EACCES, "needs root"),
        (errno.ENOENT, "/dev/net/tun"),
        (errno.ENODEV, "tun module"),
        (errno.EBUSY, "busy"),
        (errno.EINVAL, "refused"),
        (errno.EMFILE, os.strerror(errno.EMFILE)),
    ],
)
def test_link_unavailable_messages_explain_each_errno(error_number: int, words: str) -> None:
    message = explain_open_error("TAP", error_number)
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("mtu", [0, 67, 65536])
def test_tun_mtu_out_of_range_is_value_error(mtu: int) -> None:
    with pytest.raises(ValueError, match="mtu"):
        TunLink(mtu=mtu)


def test_tap_mtu_above_65521_is_value_error() -> None:
    with pytest.raises(ValueError, match="65521"):
        TapLink(mtu=65522)


@pytest.mark.parametrize("name", ["much-too-long-device-name", "a/b", "has space"])
def test_bad_device_names_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        TunLink(name)


def test_attach_existing_needs_exact_name() -> None:
    with pytest.raises(ValueError):
        TunLink("pst%d", attach_existing=True)
    with pytest.raises(ValueError):
        TunLink(None, attach_existing=True)


def test_attach_existing_missing_device_is_link_unavailable() -> None:
    with pytest.raises(LinkUnavailable, match="ip tuntap add"):
        TunLink(f"pstno{os.getpid() % 100000}", attach_existing=True)


def test_creating_over_an_existing_device_name_is_refused() -> None:
    with pytest.raises(LinkUnavailable, match="already exists"):
        TunLink("lo")
