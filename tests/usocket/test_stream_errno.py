"""Every errno path of docs/usocket.md for usocket streams, on the simulated network.

Grouped as the spec's rules are: timeouts (ETIMEDOUT, then EALREADY), non-blocking (EINPROGRESS,
EALREADY, EAGAIN, None from the stream methods), resets (ECONNRESET once, then b'' or EBADF),
refused connects, closed sockets (EBADF, POLLNVAL), listen/accept (EINVAL, EOPNOTSUPP, ENOTCONN,
the accept ring), bind clashes, options, half-close and poll, large transfers, select and
threads. Each test names its rule. Errors must be MicroPython's: plain ``OSError(errno)`` with
``args == (errno,)`` (``expect``).

A SYN nobody answers: 10.0.0.99 is on the simulated subnet but nobody owns it (ARP fails),
192.0.2.1 (TEST-NET-1, as connect_nonblock_xfer.py uses) goes to the gateway, which drops it.
A peer RST: a loopback client closes with data it never read (pystack, like lwIP and Linux,
then sends RST instead of FIN). Timeouts are small (0.05 to 0.2 s); every other wait is bounded
by WAIT.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pystack.services.stream import DiscardService, chargen_pattern
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from tests.usocket.conftest import (
    CHARGEN_SIZE,
    HALF_CLOSE_GREETING,
    LOOPBACK,
    SIM_HOST,
    SIM_PEER,
    WAIT,
    SimHalfClosePeer,
    Simulation,
)
from tests.usocket.test_threads import run_threads

UNOWNED = "10.0.0.99"  # on-link, nobody answers ARP
NOWHERE = "192.0.2.1"  # off-link: the gateway (the peer) drops it
ECHO, DISCARD, DAYTIME, CHARGEN = (SIM_PEER, 7), (SIM_PEER, 9), (SIM_PEER, 13), (SIM_PEER, 19)
CLOSED_PORT = (SIM_PEER, 81)  # nothing listens: the peer answers the SYN with RST
POLLNVAL = 32
REQUEST = b"GET / HTTP/1.0\r\n\r\n"


# -- helpers ---------------------------------------------------------------------------------------
def expect(code: int, call: Callable[[], Any]) -> OSError:
    """``call`` raises MicroPython's ``OSError(code)``: plain, ``args == (code,)``."""
    try:
        result = call()
    except OSError as error:
        assert error.args == (code,) and error.errno == code, repr(error)
        assert type(error).__name__ == "OSError"
        assert not isinstance(error, TimeoutError | BlockingIOError | ConnectionError)
        return error
    raise AssertionError(f"expected OSError({code}), it returned {result!r}")


def events(sim: Simulation, s: Any, mask: int, timeout_ms: int = 0) -> list[int]:
    poller = sim.select.poll()
    poller.register(s, mask)
    return [e for _, e in poller.poll(timeout_ms)]


def wait_events(sim: Simulation, s: Any, mask: int, want: int, timeout: float = WAIT) -> int:
    """Poll until every bit of ``want`` is reported; the events then."""
    poller = sim.select.poll()
    poller.register(s, mask)
    deadline = time.monotonic() + timeout
    while True:
        for _, got in poller.poll(20):
            if got & want == want:
                return int(got)
        assert time.monotonic() < deadline, f"no {want:#x} within {timeout} s"


def wait_queued(sim: Simulation, s: Any, size: int) -> None:
    """Wait until ``size`` bytes are queued on ``s``."""
    tcp = s._part.tcp
    assert sim.wait_until(lambda: tcp.connection is not None and tcp.connection.readable >= size)


def receive_exactly(s: Any, size: int) -> bytes:
    data = bytearray()
    for _ in range(size):
        if len(data) >= size:
            break
        chunk = s.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


def pair(sim: Simulation, port: int = 8000, backlog: int | None = None) -> tuple[Any, Any, Any]:
    """(listener, client, accepted) over 127.0.0.1, every one with timeout WAIT."""
    listener, client, accepted, _ = sim.stream_pair(port, backlog)
    return listener, client, accepted


def reset_by_client(sim: Simulation, port: int = 8000) -> tuple[Any, Any]:
    """(accepted, listener): the client sent REQUEST, then closed with unread data, so its
    close sent RST; the RST has arrived at ``accepted``."""
    listener, client, accepted = pair(sim, port)
    accepted.send(b"unread")
    wait_queued(sim, client, 6)
    client.send(REQUEST)
    wait_queued(sim, accepted, len(REQUEST))
    client.close()
    wait_events(sim, accepted, sim.select.POLLIN, sim.select.POLLERR)
    return accepted, listener


def fill_send_buffer(s: Any, chunk: int = 1 << 16) -> int:
    """Non-blocking sends until EAGAIN (the peer does not read); the bytes accepted."""
    s.setblocking(False)
    total = 0
    for _ in range(1000):
        try:
            total += s.send(bytes(chunk))
        except OSError as error:
            assert error.args == (errno.EAGAIN,), repr(error)
            return total
    raise AssertionError("the send buffer never filled")


def tune_syn_retries(sim: Simulation) -> None:
    """Let an unanswered SYN give up in about 0.35 s (0.05 + 0.1 + 0.2) instead of minutes."""
    tcp = sim.host.tcp
    with sim.thread.lock:
        tcp.settings = dataclasses.replace(
            tcp.settings, syn_retries=2, initial_rto=0.05, min_rto=0.05
        )


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except BaseException as error:
        return error, time.monotonic() - started
    return None, time.monotonic() - started


# == timeouts (USOCKET.md 2, "the general EAGAIN / ETIMEDOUT / EINPROGRESS rule") ====================
@pytest.mark.parametrize("address", [UNOWNED, NOWHERE])
def test_connect_timeout_raises_etimedout_then_connect_again_raises_ealready(
    sim: Simulation, address: str
) -> None:
    """USOCKET.md 3 connect: timeout > 0 and expired raises ETIMEDOUT; the SYN is not
    cancelled, the state stays CONNECTING, and a later connect() raises EALREADY."""
    s = sim.new_stream(0.1)
    error, elapsed = timed(lambda: s.connect((address, 80)))
    assert isinstance(error, OSError) and error.args == (errno.ETIMEDOUT,), repr(error)
    assert not isinstance(error, TimeoutError)
    assert 0.09 <= elapsed < 0.1 + WAIT
    expect(errno.EALREADY, lambda: s.connect((address, 80)))
    expect(errno.EALREADY, lambda: s.connect(ECHO))  # any address: the state decides
    assert events(sim, s, sim.select.POLLIN | sim.select.POLLOUT) == []  # CONNECTING: nothing


def test_recv_while_connecting_with_a_timeout_raises_enotconn(sim: Simulation) -> None:
    """USOCKET.md 3 recv rule 5: a blocking or timed recv waits only while CONNECTED; state
    CONNECTING raises ENOTCONN (at once, not after the timeout)."""
    s = sim.new_stream(0.05)
    expect(errno.ETIMEDOUT, lambda: s.connect((NOWHERE, 80)))
    s.settimeout(1)
    error, elapsed = timed(lambda: s.recv(10))
    assert isinstance(error, OSError) and error.args == (errno.ENOTCONN,), repr(error)
    assert elapsed < 0.5


def test_send_while_connecting_waits_for_the_connect_and_times_out(sim: Simulation) -> None:
    """USOCKET.md 3 send: CONNECTING counts as 0 bytes free; a timeout raises ETIMEDOUT."""
    s = sim.new_stream(0.05)
    expect(errno.ETIMEDOUT, lambda: s.connect((NOWHERE, 80)))
    error, elapsed = timed(lambda: s.send(b"x"))
    assert isinstance(error, OSError) and error.args == (errno.ETIMEDOUT,), repr(error)
    assert elapsed >= 0.05
    expect(errno.ETIMEDOUT, lambda: s.sendall(b"x"))
    expect(errno.ETIMEDOUT, lambda: s.write(b"x"))  # ETIMEDOUT is not turned into None


def test_accept_timeout_raises_etimedout(sim: Simulation) -> None:
    """accept_timeout.py: ETIMEDOUT with MicroPython's errno."""
    listener = sim.new_stream(0.1)
    listener.bind((LOOPBACK, 8000))
    listener.listen(1)
    error, elapsed = timed(listener.accept)
    assert isinstance(error, OSError) and error.args == (errno.ETIMEDOUT,), repr(error)
    assert 0.09 <= elapsed < 0.1 + WAIT


def test_recv_timeout_raises_etimedout_and_the_connection_still_works(sim: Simulation) -> None:
    s = sim.new_stream()
    s.connect(ECHO)
    s.settimeout(0.1)
    error, elapsed = timed(lambda: s.recv(10))
    assert isinstance(error, OSError) and error.args == (errno.ETIMEDOUT,), repr(error)
    assert 0.09 <= elapsed < 0.1 + WAIT
    expect(errno.ETIMEDOUT, lambda: s.recvfrom(10))
    s.settimeout(WAIT)
    s.send(b"still up")
    assert receive_exactly(s, 8) == b"still up"


def test_send_timeout_when_the_peer_does_not_read(sim: Simulation) -> None:
    """USOCKET.md 3 send: a blocking send waits until 16 bytes are free; with a timeout it
    raises ETIMEDOUT. sendall and write time out the same way (not converted to None)."""
    _, client, _ = pair(sim)  # the accepted socket never reads
    client.settimeout(0.2)
    total = 0
    error: BaseException | None = None
    for _ in range(1000):
        try:
            sent = client.send(bytes(1 << 16))
        except OSError as caught:
            error = caught
            break
        assert 0 < sent <= 1 << 16  # what fits now: maybe short
        total += sent
    assert isinstance(error, OSError) and error.args == (errno.ETIMEDOUT,), repr(error)
    assert total > 0
    client.settimeout(0.05)
    expect(errno.ETIMEDOUT, lambda: client.sendall(b"more"))
    expect(errno.ETIMEDOUT, lambda: client.write(b"more"))


def test_sendall_timeout_applies_to_each_chunk_not_to_the_whole_call(sim: Simulation) -> None:
    """USOCKET.md 3 sendall: the timeout applies to each chunk. A reader that takes 64 KiB
    every 20 ms keeps every wait short, so a sendall that lasts several timeouts succeeds."""
    _, client, accepted = pair(sim)
    buffers = sim.host.tcp.settings.send_buffer + sim.host.tcp.settings.receive_buffer
    payload = bytes(range(256)) * ((buffers + (1 << 20)) // 256)
    client.settimeout(0.15)

    def slow_reader() -> bytes:
        data = bytearray()
        while len(data) < len(payload):
            time.sleep(0.02)  # not for correctness: the pace that makes sendall wait
            data += accepted.recv(1 << 16)
        return bytes(data)

    started = time.monotonic()
    received, sent = run_threads([slow_reader, lambda: client.sendall(payload)])
    assert sent is None, repr(sent)
    assert time.monotonic() - started > 0.15  # longer than one timeout in all
    assert received == payload


def test_read_and_readline_timeouts_raise_etimedout_not_none(sim: Simulation) -> None:
    """USOCKET.md 2: the stream layer turns EAGAIN into None; ETIMEDOUT propagates."""
    s = sim.new_stream()
    s.connect(DISCARD)
    s.settimeout(0.05)
    expect(errno.ETIMEDOUT, lambda: s.read(1))
    expect(errno.ETIMEDOUT, lambda: s.readline())
    expect(errno.ETIMEDOUT, lambda: s.readinto(bytearray(1)))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("address", [UNOWNED, NOWHERE])
def test_blocking_connect_that_nobody_answers_raises_econnaborted(
    sim: Simulation, address: str
) -> None:
    """USOCKET.md 3 connect / 7: lwIP gives up after its SYN retransmissions: ERR_ABRT is
    ECONNABORTED (Linux: ETIMEDOUT). The error stays pending: poll reports POLLERR, recv raises
    it once and the socket is then BADF; a failed socket cannot connect again (EBADF)."""
    tune_syn_retries(sim)
    s = sim.new_stream(None)  # blocking: ends when the stack gives up (the test timeout bounds it)
    expect(errno.ECONNABORTED, lambda: s.connect((address, 80)))
    assert events(sim, s, sim.select.POLLIN) == [sim.select.POLLERR]
    expect(errno.ECONNABORTED, lambda: s.recv(10))
    expect(errno.EBADF, lambda: s.recv(10))
    expect(errno.EBADF, lambda: s.connect(ECHO))


def test_nonblocking_connect_that_is_aborted_reports_it_to_the_first_send(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 send: with no PCB, send raises the pending errno, then the socket is BADF."""
    tune_syn_retries(sim)
    s = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: s.connect((NOWHERE, 80)))
    got = wait_events(sim, s, sim.select.POLLOUT, sim.select.POLLERR)
    assert got & sim.select.POLLERR
    expect(errno.ECONNABORTED, lambda: s.send(b"x"))
    expect(errno.EBADF, lambda: s.send(b"x"))
    assert events(sim, s, sim.select.POLLIN) == [POLLNVAL]


# == non-blocking (USOCKET.md 2, 3, 9) =================================================================
def test_connect_nonblock_xfer_sequence(sim: Simulation) -> None:
    """connect_nonblock_xfer.py: right after EINPROGRESS poll shows nothing, send and recv
    raise EAGAIN, write and read return None; a second connect raises EALREADY."""
    s = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: s.connect((NOWHERE, 80)))
    assert events(sim, s, sim.select.POLLIN | sim.select.POLLOUT) == []
    expect(errno.EAGAIN, lambda: s.send(b"1234"))
    expect(errno.EAGAIN, lambda: s.recv(10))
    assert s.write(b"1234") is None
    assert s.read(10) is None
    assert s.readline() is None
    assert s.readinto(bytearray(4)) is None
    expect(errno.EAGAIN, lambda: s.sendall(b"1234"))
    expect(errno.EAGAIN, lambda: s.recv(10, sim.socket.MSG_DONTWAIT))
    expect(errno.EALREADY, lambda: s.connect((NOWHERE, 80)))


@pytest.mark.parametrize("timeout", [0, 0.0004])
def test_connect_timeout_zero_raises_einprogress(sim: Simulation, timeout: float) -> None:
    """connect_timeout.py: EINPROGRESS for settimeout(0) (the general rule's one exception);
    settimeout(0.0004) truncates to 0 ms, which is non-blocking too (USOCKET.md 2)."""
    s = sim.new_stream(timeout)
    error, elapsed = timed(lambda: s.connect((UNOWNED, 80)))
    assert isinstance(error, OSError) and error.args == (errno.EINPROGRESS,), repr(error)
    assert elapsed < 0.05


def test_connect_poll_new_then_connected(sim: Simulation) -> None:
    """connect_poll.py: 20 on a NEW socket (POLLHUP whatever the mask), 4 after connect."""
    select = sim.select
    s = sim.new_stream()
    poller = select.poll()
    poller.register(s)
    assert poller.poll(0) == [(s, 20)]
    assert events(sim, s, select.POLLIN) == [select.POLLHUP]
    s.connect(ECHO)
    assert poller.poll(1000) == [(s, 4)]


def test_nonblocking_connect_to_the_echo_peer_then_pollout(sim: Simulation) -> None:
    """Decision 2: EINPROGRESS even when the peer answers at once; POLLOUT when connected."""
    select = sim.select
    s = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: s.connect(ECHO))
    assert wait_events(sim, s, select.POLLIN | select.POLLOUT, select.POLLOUT) == select.POLLOUT
    assert s.send(b"ok") == 2
    assert wait_events(sim, s, select.POLLIN, select.POLLIN) == select.POLLIN
    assert s.recv(10) == b"ok"


def test_nonblocking_accept_raises_eagain(sim: Simulation) -> None:
    """accept_nonblock.py."""
    listener = sim.new_stream(0)
    listener.bind((LOOPBACK, 8000))
    listener.listen(1)
    expect(errno.EAGAIN, listener.accept)


def test_nonblocking_recv_raises_eagain_and_msg_dontwait_too(sim: Simulation) -> None:
    _, client, accepted = pair(sim)
    accepted.setblocking(False)
    expect(errno.EAGAIN, lambda: accepted.recv(10))
    expect(errno.EAGAIN, lambda: accepted.recvfrom(10))
    accepted.settimeout(None)
    expect(errno.EAGAIN, lambda: accepted.recv(10, sim.socket.MSG_DONTWAIT))
    client.send(b"now")
    wait_queued(sim, accepted, 3)
    assert accepted.recv(10, sim.socket.MSG_DONTWAIT) == b"now"


def test_send_raises_eagain_once_the_send_buffer_is_full(sim: Simulation) -> None:
    """USOCKET.md 3 send: no free send buffer and non-blocking raises EAGAIN; write returns
    None; poll stops reporting POLLOUT until there is room again (any room: tcp_sndbuf > 0)."""
    select = sim.select
    _, client, accepted = pair(sim)
    assert fill_send_buffer(client) > 0
    expect(errno.EAGAIN, lambda: client.send(b"x"))
    assert client.write(b"x") is None
    expect(errno.EAGAIN, lambda: client.sendall(b"x"))
    assert events(sim, client, select.POLLOUT) == []
    drained = 0
    for _ in range(1000):  # read until the client's buffer has room again
        drained += len(accepted.recv(1 << 16))
        if events(sim, client, select.POLLOUT):
            break
    assert drained > 0
    assert wait_events(sim, client, select.POLLOUT, select.POLLOUT) == select.POLLOUT
    sent = client.send(bytes(1 << 20))  # more than the room: what fits, a short count
    assert 0 < sent < 1 << 20


def test_nonblocking_write_returns_the_partial_count_when_the_buffer_fills(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 write: non-blocking, it returns the partial count when EAGAIN comes after
    progress."""
    _, client, _ = pair(sim)
    client.setblocking(False)
    size = 4 * sim.host.tcp.settings.send_buffer  # more than the send and receive buffers
    written = client.write(bytes(size))
    assert written is not None and 0 < written < size


def test_nonblocking_sendall_too_big_raises_eagain_and_sends_nothing(sim: Simulation) -> None:
    """USOCKET.md 3 sendall: non-blocking and len > free send buffer: EAGAIN, nothing sent."""
    _, client, accepted = pair(sim)
    client.setblocking(False)
    expect(errno.EAGAIN, lambda: client.sendall(bytes(sim.host.tcp.settings.send_buffer + 1)))
    assert events(sim, accepted, sim.select.POLLIN, 100) == []
    assert client.sendall(b"this fits") is None
    assert receive_exactly(accepted, 9) == b"this fits"
    accepted.setblocking(False)
    expect(errno.EAGAIN, lambda: accepted.recv(10))  # nothing of the big one came


def test_nonblocking_sendall_on_a_never_connected_socket_raises_enotconn(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 sendall: EAGAIN only when len > free send buffer, otherwise it loops over
    send(), which on a NEW socket raises ENOTCONN (lwIP tcp_write: ERR_CONN)."""
    s = sim.new_stream(0)
    expect(errno.ENOTCONN, lambda: s.sendall(b"x"))


def test_nonblocking_sendall_after_a_peer_rst_raises_econnreset_then_ebadf(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 send/sendall: modlwip's sendall starts with lwip_socket_check_connected:
    no PCB raises the pending errno (ECONNRESET) and marks the socket BADF."""
    accepted, _ = reset_by_client(sim)
    accepted.setblocking(False)
    expect(errno.ECONNRESET, lambda: accepted.sendall(b"x"))
    expect(errno.EBADF, lambda: accepted.sendall(b"x"))


# == reset (USOCKET.md 3 recv rule 3, send; 4 poll table; 9 tcp_client_rst) ==========================
def test_tcp_client_rst_sequence_on_the_server_side(sim: Simulation) -> None:
    """[25] -> data -> data -> ECONNRESET -> [17], then b'', [17]; after close [32], EBADF."""
    select = sim.select
    accepted, _ = reset_by_client(sim)
    accepted.setblocking(False)
    poller = select.poll()
    poller.register(accepted, select.POLLIN)

    def polled() -> list[int]:
        return [e for _, e in poller.poll(1000)]

    assert polled() == [25]
    assert accepted.recv(10) == b"GET / HTTP"
    assert polled() == [25]
    assert accepted.recv(10) == b"/1.0\r\n\r\n"
    assert polled() == [25]
    expect(errno.ECONNRESET, lambda: accepted.recv(10))
    assert polled() == [17]
    assert accepted.recv(10) == b""
    assert polled() == [17]
    accepted.close()
    assert polled() == [32]
    expect(errno.EBADF, lambda: accepted.recv(10))


def test_rst_poll_with_pollin_and_pollout_requested(sim: Simulation) -> None:
    """USOCKET.md 4: ERR_RST gives the requested IN and OUT plus ERR and HUP (29); after recv
    reported it (PEER_RST_HANDLED) POLLIN if requested plus HUP, no POLLOUT (17)."""
    select = sim.select
    accepted, _ = reset_by_client(sim)
    both = select.POLLIN | select.POLLOUT
    assert events(sim, accepted, both) == [both | select.POLLERR | select.POLLHUP]
    assert events(sim, accepted, select.POLLOUT) == [
        select.POLLOUT | select.POLLERR | select.POLLHUP
    ]
    receive_exactly(accepted, len(REQUEST))
    expect(errno.ECONNRESET, lambda: accepted.recv(10))
    assert events(sim, accepted, both) == [select.POLLIN | select.POLLHUP]
    assert events(sim, accepted, select.POLLOUT) == [select.POLLHUP]


def test_first_send_after_a_peer_rst_raises_econnreset_then_ebadf(sim: Simulation) -> None:
    """USOCKET.md 3 send: the first send after a peer RST raises ECONNRESET and marks the
    socket BADF: later sends and recv raise EBADF, poll reports NVAL."""
    accepted, _ = reset_by_client(sim)
    receive_exactly(accepted, len(REQUEST))  # (the data is read: only the error is left)
    expect(errno.ECONNRESET, lambda: accepted.send(b"x"))
    expect(errno.EBADF, lambda: accepted.send(b"x"))
    expect(errno.EBADF, lambda: accepted.recv(10))
    expect(errno.EBADF, lambda: accepted.write(b"x"))
    assert events(sim, accepted, sim.select.POLLIN) == [POLLNVAL]


def test_send_after_the_rst_was_reported_by_recv_raises_econnreset(sim: Simulation) -> None:
    """Decision 3 (10.1): send after recv reported the RST (state 6) raises ECONNRESET."""
    accepted, _ = reset_by_client(sim)
    receive_exactly(accepted, len(REQUEST))
    expect(errno.ECONNRESET, lambda: accepted.recv(10))
    expect(errno.ECONNRESET, lambda: accepted.send(b"x"))
    expect(errno.ECONNRESET, lambda: accepted.write(b"x"))


def test_rst_in_blocking_mode_read_gets_the_data_then_econnreset(sim: Simulation) -> None:
    """USOCKET.md 3 recv rule 2 (RST data is kept): read(n) returns the buffered bytes; the
    next read raises ECONNRESET; then EOF is b'' forever (rule 3)."""
    accepted, _ = reset_by_client(sim)
    assert accepted.read(len(REQUEST)) == REQUEST
    expect(errno.ECONNRESET, lambda: accepted.read(10))
    assert [accepted.read(10), accepted.recv(10), accepted.readline()] == [b"", b"", b""]


def test_close_with_unread_data_resets_the_peer(sim: Simulation) -> None:
    """USOCKET.md 3 close: lwIP sends RST instead of FIN when received data was never read."""
    _, client, accepted = pair(sim)
    counters = sim.host.counters.counters
    client.send(b"never read")
    wait_queued(sim, accepted, 10)
    accepted.close()
    expect(errno.ECONNRESET, lambda: client.recv(10))
    assert counters["tcp.closed_with_unread_data"] == 1


# == refused (USOCKET.md 3 connect; 7) ==================================================================
def test_connect_to_a_closed_port_raises_econnreset_then_connect_again_ebadf(
    sim: Simulation,
) -> None:
    s = sim.new_stream()
    expect(errno.ECONNRESET, lambda: s.connect(CLOSED_PORT))
    expect(errno.EBADF, lambda: s.connect(CLOSED_PORT))
    expect(errno.EBADF, lambda: s.connect(ECHO))


def test_a_refused_connect_leaves_the_rst_pending_for_recv_and_poll(sim: Simulation) -> None:
    """The refused socket's state stays ERR_RST: poll gives IN|OUT + ERR + HUP, recv reports
    ECONNRESET once, then b''."""
    select = sim.select
    s = sim.new_stream()
    expect(errno.ECONNRESET, lambda: s.connect(CLOSED_PORT))
    both = select.POLLIN | select.POLLOUT
    assert events(sim, s, both) == [both | select.POLLERR | select.POLLHUP]
    expect(errno.ECONNRESET, lambda: s.recv(10))
    assert s.recv(10) == b""


def test_nonblocking_connect_to_a_closed_port_reports_econnreset_to_recv(
    sim: Simulation,
) -> None:
    """asyncio's pattern (USOCKET.md 6): EINPROGRESS, wait for POLLOUT, then the first read
    reports the refusal (ECONNRESET)."""
    select = sim.select
    s = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: s.connect(CLOSED_PORT))
    got = wait_events(sim, s, select.POLLOUT, select.POLLOUT)
    assert got == select.POLLOUT | select.POLLERR | select.POLLHUP
    expect(errno.ECONNRESET, lambda: s.recv(10))
    assert s.read(10) == b""
    expect(errno.EBADF, lambda: s.connect(ECHO))


def test_connect_without_a_route_raises_ehostunreach_and_the_state_stays_new(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 connect: tcp_connect failing at once (ERR_RTE) raises EHOSTUNREACH and the
    state goes back to NEW, so the socket can still connect."""
    routes = sim.host.ip.routes
    with sim.thread.lock:
        default = [route for route in routes.routes() if route.prefix_length == 0]
        assert default, "the simulated host has a default route"
        routes.remove(0, 0)
    s = sim.new_stream()
    expect(errno.EHOSTUNREACH, lambda: s.connect((NOWHERE, 80)))
    assert events(sim, s, sim.select.POLLOUT) == [sim.select.POLLOUT | sim.select.POLLHUP]
    s.connect(ECHO)  # on-link: still routable
    s.send(b"new again")
    assert receive_exactly(s, 9) == b"new again"


# == closed (USOCKET.md 3 close) ====================================================================
CLOSED_CALLS: dict[str, Callable[[Any], Any]] = {
    "recv": lambda s: s.recv(10),
    "recv MSG_PEEK": lambda s: s.recv(10, 1),
    "recvfrom": lambda s: s.recvfrom(10),
    "send": lambda s: s.send(b"x"),
    "sendall": lambda s: s.sendall(b"x"),
    "sendto": lambda s: s.sendto(b"x", ECHO),
    "accept": lambda s: s.accept(),
    "connect": lambda s: s.connect(ECHO),
    "listen": lambda s: s.listen(1),
    "bind": lambda s: s.bind(("", 0)),
    "read": lambda s: s.read(10),
    "read()": lambda s: s.read(),
    "readall": lambda s: s.readall(),
    "readinto": lambda s: s.readinto(bytearray(4)),
    "readline": lambda s: s.readline(),
    "write": lambda s: s.write(b"x"),
}


@pytest.mark.parametrize("kind", ["new", "connected", "listening", "nonblocking"])
@pytest.mark.parametrize("operation", sorted(CLOSED_CALLS))
def test_every_method_after_close_raises_ebadf(sim: Simulation, kind: str, operation: str) -> None:
    s = sim.new_stream()
    if kind == "connected":
        s.connect(ECHO)
    elif kind == "listening":
        s.bind((LOOPBACK, 8000))
        s.listen(1)
    elif kind == "nonblocking":
        s.connect(ECHO)
        s.setblocking(False)
    s.close()
    expect(errno.EBADF, lambda: CLOSED_CALLS[operation](s))


@pytest.mark.parametrize("kind", ["closed", "reset"])
def test_connect_checks_the_pcb_before_the_address(sim: Simulation, kind: str) -> None:
    """USOCKET.md 3 connect: no PCB (closed, or a TCP socket that had an error) raises EBADF;
    modlwip's lwip_socket_connect checks the PCB before it parses the address, so even an
    address it would reject gives EBADF."""
    s = sim.new_stream()
    if kind == "closed":
        s.close()
    else:
        expect(errno.ECONNRESET, lambda: s.connect(CLOSED_PORT))
    expect(errno.EBADF, lambda: s.connect(("no.such.host", 80)))


def test_close_twice_is_fine_and_a_closed_socket_polls_nval(sim: Simulation) -> None:
    listener, client, accepted = pair(sim)
    fresh = sim.new_stream()
    for s in (listener, client, accepted, fresh):
        s.close()
        s.close()
        assert events(sim, s, sim.select.POLLIN | sim.select.POLLOUT) == [POLLNVAL]
        assert s.makefile() is s  # makefile takes no PCB
        assert s.settimeout(1) is None


def test_closing_a_listener_resets_the_connections_not_yet_accepted(sim: Simulation) -> None:
    """USOCKET.md 3 close: for a listener, every connection not yet accepted is aborted."""
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    listener.listen(2)
    client = sim.new_stream()
    client.connect((LOOPBACK, 8000))
    assert wait_events(sim, listener, sim.select.POLLIN, sim.select.POLLIN)
    listener.close()
    expect(errno.ECONNRESET, lambda: client.recv(10))


# == listen / accept (USOCKET.md 3 listen, accept; 9 tcp_accept_recv) ================================
def test_accept_on_a_socket_that_is_not_listening_raises_einval(sim: Simulation) -> None:
    fresh = sim.new_stream()
    expect(errno.EINVAL, fresh.accept)
    connected = sim.new_stream()
    connected.connect(ECHO)
    expect(errno.EINVAL, connected.accept)


def test_accept_and_listen_on_udp_raise_eopnotsupp(sim: Simulation) -> None:
    s = sim.new_socket()
    expect(errno.EOPNOTSUPP, s.accept)
    expect(errno.EOPNOTSUPP, lambda: s.listen(1))
    expect(errno.EOPNOTSUPP, lambda: s.listen())


@pytest.mark.parametrize("blocking", [True, False])
@pytest.mark.parametrize("backlog", [None, 0, 1, 2])
def test_recv_on_a_listener_after_accept_raises_enotconn(
    sim: Simulation, backlog: int | None, blocking: bool
) -> None:
    """tcp_accept_recv.py: ENOTCONN for backlogs None/0/1/2, blocking or not."""
    module = sim.socket
    listener = sim.new_stream()
    listener.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    listener.bind(sim.socket.getaddrinfo("0.0.0.0", 8000)[0][-1])
    if backlog is None:
        listener.listen()
    else:
        listener.listen(backlog)
    client = sim.new_stream()
    client.connect((SIM_HOST, 8000))
    client.send(REQUEST)
    client.close()
    accepted, _ = listener.accept()
    sim.track(accepted)
    listener.setblocking(blocking)
    expect(errno.ENOTCONN, lambda: listener.recv(10))
    assert accepted.read() == REQUEST  # what came before accept, then the client's FIN


@pytest.mark.parametrize(("backlog", "slots"), [(None, 2), (-1, 1), (0, 1), (1, 1), (2, 2), (3, 3)])
def test_accept_queue_holds_its_slots_and_the_next_client_is_reset(
    sim: Simulation, backlog: int | None, slots: int
) -> None:
    """USOCKET.md 3 listen: one slot when backlog <= 1 (negative is clamped to 0), otherwise
    a ring of exactly backlog slots (default 2). A handshake that finds its slot taken is
    aborted: that client's connect succeeded, then it gets ECONNRESET. Counted in
    usocket.accept_queue_full."""
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    if backlog is None:
        listener.listen()
    else:
        listener.listen(backlog)
    clients = []
    for number in range(slots):
        client = sim.new_stream()
        client.connect((LOOPBACK, 8000))  # every handshake completes
        client.send(b"%d" % number)
        clients.append(client)
    extra = sim.new_stream()
    try:
        extra.connect((LOOPBACK, 8000))
        extra.send(b"%d" % slots)
    except OSError as error:
        # The listener's RST may be processed before this thread looks again: modlwip's
        # connect (or send) then finds the connection gone and raises the pending error.
        # Over loopback both orders happen within one stack poll; both are lwIP's.
        assert error.errno == errno.ECONNRESET
    else:
        expect(errno.ECONNRESET, lambda: extra.recv(10))
    assert sim.host.statistics()["counters"]["usocket.accept_queue_full"] == 1
    for number in range(slots):  # the ring keeps the order
        accepted, _ = listener.accept()
        sim.track(accepted)
        assert receive_exactly(accepted, 1) == b"%d" % number
    listener.setblocking(False)
    expect(errno.EAGAIN, listener.accept)


def test_a_queued_connection_the_peer_resets_is_dropped_silently(sim: Simulation) -> None:
    """USOCKET.md 3 listen: a queued connection that the peer resets before accept() is taken
    off the queue silently; the next one is accepted."""
    listener = sim.new_stream()
    listener.bind(("", 8000))
    listener.listen(2)
    peer = sim.peer
    host = ip_from_str(SIM_HOST)

    def connect_from_peer() -> Any:
        connection = sim.thread.call(lambda: peer.tcp.connect(host, 8000, peer.clock.now()))
        assert sim.wait_until(lambda: connection.state is TCPState.ESTABLISHED)
        return connection

    doomed = connect_from_peer()
    assert wait_events(sim, listener, sim.select.POLLIN, sim.select.POLLIN)
    sim.thread.call(lambda: doomed.abort(peer.clock.now()))  # RST to the host
    deadline = time.monotonic() + WAIT
    while events(sim, listener, sim.select.POLLIN, 20):  # until the queue is empty again
        assert time.monotonic() < deadline, "the reset connection stayed queued"
    survivor = connect_from_peer()
    sim.thread.call(lambda: survivor.send(b"survivor", peer.clock.now()))
    accepted, (address, _) = listener.accept()
    sim.track(accepted)
    assert address == SIM_PEER
    assert receive_exactly(accepted, 8) == b"survivor"


def test_a_queued_connection_reset_with_data_pending_is_dropped_too(sim: Simulation) -> None:
    """USOCKET.md 3 listen: _lwip_tcp_err_unaccepted takes a reset connection off the queue
    whatever it holds (lwIP frees the PCB and the data it kept for it): accept() never
    returns it."""
    listener = sim.new_stream(0)
    listener.bind(("", 8000))
    listener.listen(2)
    peer = sim.peer
    host = ip_from_str(SIM_HOST)
    connection = sim.thread.call(lambda: peer.tcp.connect(host, 8000, peer.clock.now()))
    assert sim.wait_until(lambda: connection.state is TCPState.ESTABLISHED)
    sim.thread.call(lambda: connection.send(b"data, then RST", peer.clock.now()))
    assert sim.wait_until(lambda: len(connection.send_buffer) == 0)  # the host has it (acked)
    sim.thread.call(lambda: connection.abort(peer.clock.now()))
    deadline = time.monotonic() + 1.0  # the RST arrives within milliseconds
    while events(sim, listener, sim.select.POLLIN, 20):
        assert time.monotonic() < deadline, "the reset connection stayed queued"
    expect(errno.EAGAIN, listener.accept)


def test_accept_returns_the_clients_address_and_recvfrom_gives_zero_address(
    sim: Simulation,
) -> None:
    """USOCKET.md 3 accept: (sock2, (ip_str, port)); recvfrom on sock2 reports ('0.0.0.0', 0)."""
    _, client, accepted = pair(sim)
    client.send(b"hi")
    assert accepted.recvfrom(10) == (b"hi", ("0.0.0.0", 0))
    accepted.send(b"ho")
    assert client.recvfrom(10) == (b"ho", (LOOPBACK, 8000))  # connect() stored the peer


def test_accepted_socket_inherits_nonblocking_and_timeout(sim: Simulation) -> None:
    listener = sim.new_stream(0)
    listener.bind((LOOPBACK, 8000))
    listener.listen(2)
    for _ in range(2):
        sim.new_stream().connect((LOOPBACK, 8000))
    wait_events(sim, listener, sim.select.POLLIN, sim.select.POLLIN)
    nonblocking, _ = listener.accept()
    sim.track(nonblocking)
    expect(errno.EAGAIN, lambda: nonblocking.recv(1))
    assert nonblocking.read(1) is None
    listener.settimeout(0.05)
    timed_out, _ = listener.accept()
    sim.track(timed_out)
    expect(errno.ETIMEDOUT, lambda: timed_out.recv(1))
    assert repr(timed_out).endswith("timeout=50>")


# == bind (USOCKET.md 3 bind, listen) =================================================================
def test_bind_clash_without_so_reuseaddr_raises_eaddrinuse(sim: Simulation) -> None:
    bound = sim.new_stream()
    bound.bind(("", 8000))  # bound only, not listening: lwIP's PCB holds the port
    expect(errno.EADDRINUSE, lambda: sim.new_stream().bind(("", 8000)))
    expect(errno.EADDRINUSE, lambda: sim.new_stream().bind((LOOPBACK, 8000)))
    listener = sim.new_stream()
    listener.bind(("", 8001))
    listener.listen(1)
    expect(errno.EADDRINUSE, lambda: sim.new_stream().bind(("", 8001)))


def test_so_reuseaddr_on_only_one_socket_still_clashes(sim: Simulation) -> None:
    module = sim.socket
    first = sim.new_stream()
    first.bind(("", 8000))
    second = sim.new_stream()
    second.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    expect(errno.EADDRINUSE, lambda: second.bind(("", 8000)))


def test_so_reuseaddr_on_both_bind_succeeds_even_onto_a_listener_and_listen_raises(
    sim: Simulation,
) -> None:
    """With SO_REUSE=1, bind succeeds even if the other PCB is listening; listen() reports
    the clash (lwIP tcp_listen: ERR_USE -> EADDRINUSE)."""
    module = sim.socket
    first, second = sim.new_stream(), sim.new_stream()
    for s in (first, second):
        s.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    first.bind(("", 8000))
    first.listen(1)
    assert second.bind(("", 8000)) is None
    expect(errno.EADDRINUSE, lambda: second.listen(1))
    expect(errno.EADDRINUSE, lambda: second.listen())


def test_so_reuseaddr_rebinds_a_port_held_in_time_wait(sim: Simulation) -> None:
    """lwIP tcp_bind skips TIME-WAIT PCBs when SO_REUSEADDR is set (tcp_accept_recv.py and
    the other multi_net servers rebind port 8000 this way); without it the port clashes."""
    module = sim.socket
    listener, client, accepted = pair(sim)
    accepted.close()  # the server closes first: its side of port 8000 ends in TIME-WAIT
    assert client.recv(10) == b""
    client.close()
    listener.close()
    connections = sim.host.tcp.connections
    assert sim.wait_until(
        lambda: any(
            key[1] == 8000 and connection.state is TCPState.TIME_WAIT
            for key, connection in connections.items()
        )
    )
    expect(errno.EADDRINUSE, lambda: sim.new_stream().bind((LOOPBACK, 8000)))
    again = sim.new_stream()
    again.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    again.bind((LOOPBACK, 8000))
    again.listen(1)
    late = sim.new_stream()
    late.connect((LOOPBACK, 8000))
    sim.track(again.accept()[0])


def test_a_closed_listener_frees_its_port(sim: Simulation) -> None:
    listener = sim.new_stream()
    listener.bind(("", 8000))
    listener.listen(1)
    listener.close()
    again = sim.new_stream()
    again.bind(("", 8000))
    again.listen(1)


# == connect on other states (USOCKET.md 3 connect) ===================================================
def test_connect_on_a_connected_socket_raises_eisconn(sim: Simulation) -> None:
    s = sim.new_stream()
    s.connect(ECHO)
    expect(errno.EISCONN, lambda: s.connect(ECHO))
    expect(errno.EISCONN, lambda: s.connect(DISCARD))


def test_connect_on_a_listener_raises_ealready(sim: Simulation) -> None:
    """State LISTENING is neither NEW nor CONNECTED: EALREADY."""
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    listener.listen(1)
    expect(errno.EALREADY, lambda: listener.connect(ECHO))


def test_connect_after_the_peer_closed_raises_ealready(sim: Simulation) -> None:
    """State PEER_CLOSED is neither NEW nor CONNECTED: EALREADY."""
    s = sim.new_stream()
    s.connect(DAYTIME)
    while s.recv(100):
        pass
    expect(errno.EALREADY, lambda: s.connect(DAYTIME))


# == options (USOCKET.md 3 setsockopt) =================================================================
@pytest.mark.parametrize(
    ("level", "nodelay"), [("IPPROTO_TCP", 0), ("IPPROTO_TCP", 1), ("SOL_SOCKET", 1)]
)
def test_tcp_nodelay_turns_nagle_off_whatever_the_level(
    sim: Simulation, level: str, nodelay: int, capsys: Any
) -> None:
    """USOCKET.md 3 send/setsockopt: Nagle is on by default; TCP_NODELAY turns it off (the
    level is ignored). 20 quick 1-byte sends to discard go out as 20 segments only without
    Nagle (Nagle holds them while one is unacknowledged)."""
    module = sim.socket
    discard = next(s for s in sim.net.services if isinstance(s, DiscardService))
    counters = sim.host.counters.counters
    s = sim.new_stream()
    s.connect(DISCARD)
    s.setsockopt(getattr(module, level), module.TCP_NODELAY, nodelay)
    assert capsys.readouterr().out == ""  # a known option: no warning
    before = counters["tcp.segments_sent"]
    for _ in range(20):
        assert s.send(b"x") == 1
    assert sim.wait_until(lambda: discard.bytes_in >= 20)
    segments = counters["tcp.segments_sent"] - before
    if nodelay:
        assert segments >= 20
    else:
        assert segments < 10


def test_unknown_setsockopt_on_a_stream_socket_prints_the_warning(
    sim: Simulation, capsys: Any
) -> None:
    s = sim.new_stream()
    s.connect(ECHO)
    assert s.setsockopt(sim.socket.IPPROTO_TCP, 0x7777, 1) is None
    captured = capsys.readouterr()
    assert captured.out == "Warning: lwip.setsockopt() not implemented\n"
    assert captured.err == ""
    s.send(b"fine")
    assert receive_exactly(s, 4) == b"fine"


# == half-close and poll (USOCKET.md 3 recv rule 4, send; 4) =========================================
def test_peer_fin_recv_returns_b_empty_repeatedly_and_send_still_works(sim: Simulation) -> None:
    half = SimHalfClosePeer(sim, 4001)
    s = sim.new_stream()
    s.connect((SIM_PEER, 4001))
    assert s.read() == HALF_CLOSE_GREETING  # read() reads to EOF
    assert [s.recv(10), s.recv(10), s.read(5), s.readline()] == [b"", b"", b"", b""]
    s.setblocking(False)
    assert s.recv(10) == b""  # rule 4: non-blocking and the peer closed: b'', not EAGAIN
    assert s.read(10) == b""
    s.setblocking(True)
    assert s.send(b"half ") == 5
    assert s.write(b"open") == 4
    s.close()
    assert half.received(WAIT) == b"half open"


@pytest.mark.parametrize(("mask", "expected"), [(1, [1]), (4, [4]), (5, [5]), (0, [])])
def test_peer_closed_poll_gives_the_requested_in_out(
    sim: Simulation, mask: int, expected: list[int]
) -> None:
    """USOCKET.md 4: PEER_CLOSED (FIN) gives req & (POLLIN|POLLOUT), always, no HUP."""
    s = sim.new_stream()
    s.connect(DAYTIME)
    while s.recv(100):
        pass
    assert events(sim, s, mask) == expected


def test_data_then_fin_is_all_read_before_b_empty(sim: Simulation) -> None:
    """No data is lost: read() returns everything the client sent before its FIN."""
    payload = bytes(range(256)) * 1000
    _, client, accepted = pair(sim)
    client.sendall(payload)
    client.close()
    assert accepted.read() == payload
    assert accepted.read() == b""


def test_chargen_read_n_loops_until_n_then_eof(sim: Simulation) -> None:
    """USOCKET.md 3 read(n): loops until n bytes or EOF (no short reads when blocking)."""
    pattern = chargen_pattern()
    expected = (pattern * (CHARGEN_SIZE // len(pattern) + 1))[:CHARGEN_SIZE]
    s = sim.new_stream()
    s.connect(CHARGEN)
    first = s.read(100_000)
    assert first == expected[:100_000]
    buffer = bytearray(CHARGEN_SIZE)
    assert s.readinto(buffer) == CHARGEN_SIZE - 100_000  # EOF came first
    assert first + bytes(buffer[: CHARGEN_SIZE - 100_000]) == expected
    assert s.read(10) == b""
    assert s.readinto(bytearray(10)) == 0


def test_readline_keeps_a_partial_line_on_eagain(sim: Simulation) -> None:
    """USOCKET.md 3 readline: one byte at a time; EAGAIN mid-line returns the partial line
    (nothing is lost); None when nothing was read."""
    _, client, accepted = pair(sim)
    accepted.setblocking(False)
    client.send(b"ab")
    wait_queued(sim, accepted, 2)
    assert accepted.readline() == b"ab"
    assert accepted.readline() is None
    client.send(b"c\nd")
    wait_queued(sim, accepted, 3)
    assert accepted.readline() == b"c\n"
    assert accepted.readline(5) == b"d"


def test_connected_socket_is_writable_while_it_has_send_room(sim: Simulation) -> None:
    select = sim.select
    s = sim.new_stream()
    s.connect(ECHO)
    assert events(sim, s, select.POLLOUT) == [select.POLLOUT]
    assert events(sim, s, select.POLLIN) == []
    s.send(b"echoed")
    assert wait_events(sim, s, select.POLLIN, select.POLLIN) == select.POLLIN


def test_listener_poll_pollin_on_a_pending_connection_never_pollout(sim: Simulation) -> None:
    """USOCKET.md 4 LISTENING row and decision 4."""
    select = sim.select
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    listener.listen(2)
    both = select.POLLIN | select.POLLOUT
    assert events(sim, listener, both) == []
    sim.new_stream().connect((LOOPBACK, 8000))
    assert wait_events(sim, listener, both, select.POLLIN) == select.POLLIN
    assert events(sim, listener, select.POLLOUT) == []
    sim.track(listener.accept()[0])
    assert events(sim, listener, both) == []


# == large transfers ====================================================================================
def test_3_mb_through_echo_with_write_and_readinto(sim: Simulation) -> None:
    payload = bytes((n * 7) & 0xFF for n in range(3 << 20))
    s = sim.new_stream()
    s.connect(ECHO)
    results: list[Any] = []
    writer = threading.Thread(target=lambda: results.append(s.write(payload)), daemon=True)
    writer.start()
    buffer = bytearray(len(payload))
    try:
        assert s.readinto(buffer) == len(payload)
    finally:
        writer.join(4 * WAIT)
    assert results == [len(payload)]
    assert buffer == payload


def test_2_mb_over_loopback_both_ways_at_once(sim: Simulation) -> None:
    up = bytes(range(256)) * 8192
    down = bytes(reversed(range(256))) * 8192
    _, client, accepted = pair(sim)

    def sender(s: Any, data: bytes) -> None:
        s.sendall(data)

    got_up, got_down, _, _ = run_threads(
        [
            lambda: receive_exactly(accepted, len(up)),
            lambda: receive_exactly(client, len(down)),
            lambda: sender(client, up),
            lambda: sender(accepted, down),
        ]
    )
    assert got_up == up and got_down == down


# == select.select (USOCKET.md 4) ========================================================================
def test_select_on_stream_sockets(sim: Simulation) -> None:
    select = sim.select
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    listener.listen(1)
    connecting = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: connecting.connect((NOWHERE, 80)))
    fresh = sim.new_stream()
    assert select.select([listener, connecting], [listener, connecting], [], 0) == ([], [], [])
    assert select.select([], [fresh], [], 0) == ([], [fresh], [fresh])  # NEW: OUT + HUP
    client = sim.new_stream()
    client.connect((LOOPBACK, 8000))
    assert select.select([listener], [], [], WAIT) == ([listener], [], [])
    accepted, _ = listener.accept()
    sim.track(accepted)
    assert select.select([accepted], [client], [], 0) == ([], [client], [])
    client.send(b"data")
    assert select.select([accepted], [], [], WAIT) == ([accepted], [], [])
    client.close()
    assert select.select([], [], [client], 0) == ([], [], [client])  # NVAL


# == threads ============================================================================================
def test_several_threads_use_different_stream_sockets_at_once(sim: Simulation) -> None:
    def echo_client(number: int) -> int:
        s = sim.new_stream()
        s.connect(ECHO)
        for n in range(40):
            message = b"thread %d message %d " % (number, n) + bytes([number]) * (n * 50)
            s.sendall(message)
            assert receive_exactly(s, len(message)) == message
        s.close()
        return number

    def chargen_reader() -> int:
        s = sim.new_stream()
        s.connect(CHARGEN)
        return len(s.read())

    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8000))
    listener.listen(2)

    def loopback_server() -> bytes:
        accepted, _ = listener.accept()
        sim.track(accepted)
        data = accepted.read(13)
        accepted.write(data[::-1])
        accepted.close()  # everything was read: FIN
        return bytes(data)

    def loopback_client() -> bytes:
        s = sim.new_stream()
        s.connect((LOOPBACK, 8000))
        s.sendall(b"over loopback")
        return bytes(s.read())  # to the server's FIN

    targets: list[Callable[[], Any]] = [functools.partial(echo_client, n) for n in range(4)]
    targets += [chargen_reader, loopback_server, loopback_client]
    results = run_threads(targets)
    assert results == [0, 1, 2, 3, CHARGEN_SIZE, b"over loopback", b"kcabpool revo"]


def test_close_from_another_thread_wakes_a_blocked_accept_with_ebadf(sim: Simulation) -> None:
    listener = sim.new_stream(WAIT)
    listener.bind((LOOPBACK, 8000))
    listener.listen(1)
    started = threading.Event()

    def blocked_accept() -> tuple[BaseException | None, float]:
        started.set()
        return timed(listener.accept)

    def closer() -> None:
        started.wait(WAIT)
        time.sleep(0.05)  # the outcome is EBADF either way; this makes the wake-up path run
        listener.close()

    (error, elapsed), _ = run_threads([blocked_accept, closer])
    assert isinstance(error, OSError) and error.args == (errno.EBADF,), repr(error)
    assert elapsed < WAIT / 2


def test_close_from_another_thread_wakes_a_blocked_stream_recv_with_ebadf(
    sim: Simulation,
) -> None:
    s = sim.new_stream(WAIT)
    s.connect(DISCARD)
    started = threading.Event()

    def blocked_recv() -> tuple[BaseException | None, float]:
        started.set()
        return timed(lambda: s.recv(10))

    def closer() -> None:
        started.wait(WAIT)
        time.sleep(0.05)
        s.close()

    (error, elapsed), _ = run_threads([blocked_recv, closer])
    assert isinstance(error, OSError) and error.args == (errno.EBADF,), repr(error)
    assert elapsed < WAIT / 2


# == states (USOCKET.md 2) ===============================================================================
def test_repr_shows_modlwips_state_numbers(sim: Simulation) -> None:
    """USOCKET.md 2: NEW=0, LISTENING=1, CONNECTING=2, CONNECTED=3, ACTIVE_UDP=4,
    PEER_CLOSED=5, PEER_RST_HANDLED=6 (repr: <socket state=S timeout=T ...>)."""
    fresh = sim.new_stream()
    assert "state=0 " in repr(fresh)
    listener = sim.new_stream()
    listener.bind((LOOPBACK, 8001))
    listener.listen(1)
    assert "state=1 " in repr(listener)
    connecting = sim.new_stream(0)
    expect(errno.EINPROGRESS, lambda: connecting.connect((NOWHERE, 80)))
    assert "state=2 " in repr(connecting)
    connected = sim.new_stream()
    connected.connect(ECHO)
    assert "state=3 " in repr(connected)
    assert "state=4 " in repr(sim.new_socket())
    daytime = sim.new_stream()
    daytime.connect(DAYTIME)
    while daytime.recv(100):
        pass
    assert "state=5 " in repr(daytime)
    accepted, _ = reset_by_client(sim)
    receive_exactly(accepted, len(REQUEST))
    expect(errno.ECONNRESET, lambda: accepted.recv(10))
    assert "state=6 " in repr(accepted)
