"""Streams and servers: ``Stream`` (= ``StreamReader`` = ``StreamWriter``), ``Server``,
``open_connection`` and ``start_server`` (docs/asyncio.md 1.7 and 3).

A ``Stream`` wraps any object with ``read``/``readinto``/``readline``/``write`` returning
``None`` when they would block, and a poll ``ioctl``: a non-blocking usocket socket, or a test
stub. Every read first parks the task until the raw stream polls readable (even if data is
already queued), then makes one non-blocking call; ``None`` means wait again. ``write`` never
suspends: it sends what it can at once and buffers the rest for ``drain``, which with an empty
buffer is one ``sleep_ms(0)`` (so a write+drain loop still lets others run). ``close()`` does
nothing and ``wait_closed()`` closes the socket without suspending, as on MicroPython (the
order of section 5.3 depends on both). Errors of the socket calls go to the caller.

``open_connection`` resolves (blocking), connects without blocking (EINPROGRESS is the normal
answer; any other error is raised before the first suspension), optionally wraps the socket in
TLS, waits once for POLLOUT and returns the same stream twice; a refused connect shows up on the
first read or write. ``start_server`` binds and listens (errors raised at once), starts the
accept loop as a task and yields once so that the loop is waiting before it returns. The accept
loop makes one handler task per connection, ``cb(stream, stream)``, never tracked or cancelled;
closing the server cancels the accept loop, which closes the listener and returns normally.

The awaitables are plain generators, except ``Server.__aenter__``/``__aexit__``, which
``async with`` needs as coroutines. Client streams share one empty extra-info dict, so
``get_extra_info("peername")`` raises ``KeyError`` on them (copied from MicroPython).
Entry points: ``Stream``, ``Server``, ``Connections`` (``open_connection``, ``start_server``).
"""

from __future__ import annotations

import errno
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from pystack.bufferview import BytearrayView
from pystack.runtime.masyncio.task import Awaiting, CancelledError, Suspension, Task

if TYPE_CHECKING:
    from pystack.runtime.masyncio.core import Core

_NO_EXTRA: Any = object()  # Stream(s) without e: the class's one shared dict
DEFAULT_BACKLOG = 5


def _readable(core: Core, stream: Any) -> Suspension[None]:
    core.io_queue.queue_read(stream)
    yield


def _writable(core: Core, stream: Any) -> Suspension[None]:
    core.io_queue.queue_write(stream)
    yield


def _as_bytes(data: Any) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


class Stream:
    _core: ClassVar[Core]
    _shared_extra: ClassVar[dict[str, Any]]  # per world: MicroPython's mutable default e={}

    def __init__(self, s: Any, e: Any = _NO_EXTRA) -> None:
        self.s = s
        self.e = self._shared_extra if e is _NO_EXTRA else e
        self.out_buf = b""

    def get_extra_info(self, name: str) -> Any:
        return self.e[name]

    def close(self) -> None:
        """Does nothing: ``wait_closed()`` closes the socket."""

    def wait_closed(self) -> Suspension[None]:
        self.s.close()  # at once, without suspending
        yield from ()

    aclose = wait_closed

    def read(self, n: int = -1) -> Suspension[bytes]:
        collected = b""
        while True:
            yield from _readable(self._core, self.s)
            data: bytes | None = self.s.read(n)
            if data is None:
                continue  # a false wake-up: wait again
            if n >= 0:
                return data  # whatever one read gave, b"" at EOF
            if not data:
                return collected  # read to EOF
            collected += data

    def readinto(self, buf: Any) -> Suspension[int | None]:
        yield from _readable(self._core, self.s)
        count: int | None = self.s.readinto(buf)  # once: None after a false wake-up
        return count

    def readexactly(self, n: int) -> Suspension[bytes]:
        collected = b""
        while n > 0:
            yield from _readable(self._core, self.s)
            data: bytes | None = self.s.read(n)
            if data is None:
                continue
            if not data:
                raise EOFError  # what was read so far is lost, as on MicroPython
            collected += data
            n -= len(data)
        return collected

    def readline(self) -> Suspension[bytes]:
        line = b""
        while True:
            yield from _readable(self._core, self.s)
            part: bytes | None = self.s.readline()
            if part is None:
                continue
            line += part
            if not part or line[-1:] == b"\n":
                return line  # a whole line, or what there was at EOF

    def write(self, buf: Any) -> None:
        if isinstance(buf, str):
            buf = buf.encode()  # so that counts and slices are in bytes, as the socket's are
        if not self.out_buf:
            sent = self.s.write(buf)  # try at once; errors are raised here
            if sent == len(buf):
                return
            if sent is not None:
                buf = buf[sent:]
        self.out_buf += _as_bytes(buf)

    def drain(self) -> Suspension[None]:
        if not self.out_buf:
            yield from self._core.sleep_ms(0)  # always give the others one turn
            return
        pending = memoryview(self.out_buf)
        while pending:
            yield from _writable(self._core, self.s)
            sent = self.s.write(pending)
            if sent is not None:
                pending = pending[sent:]
        self.out_buf = b""

    def awrite(self, buf: Any, off: int = 0, sz: int = -1) -> Suspension[None]:
        if off != 0 or sz != -1:
            if isinstance(buf, str):
                buf = _as_bytes(buf)
            view = buf if isinstance(buf, BytearrayView) else memoryview(buf)
            buf = view[off:] if sz == -1 else view[off : off + sz]
        self.write(buf)
        yield from self.drain()

    awritestr = awrite


class Server:
    """A listening socket and the task that accepts on it."""

    _core: ClassVar[Core]

    def __init__(self) -> None:
        self.task: Task | None = None
        self._closing = False  # close() was called: the accept loop ends without an error

    async def __aenter__(self) -> Server:
        return self  # does not suspend

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self.close()
        await Awaiting(self.wait_closed())

    def close(self) -> None:
        self._closing = True
        if self.task is not None:
            self.task.cancel()

    def wait_closed(self) -> Suspension[None]:
        if self.task is not None:
            yield from self.task.__await__()

    def _serve(self, listener: Any, callback: Any, ssl: Any) -> Suspension[None]:
        core = self._core
        while True:
            try:
                yield from _readable(core, listener)
            except CancelledError:
                listener.close()
                if self._closing:
                    return  # closed on purpose: wait_closed() does not raise
                raise  # e.g. a parent's cancel forwarded along an await link
            try:
                connection, peer = listener.accept()
            except Exception:
                continue  # accept errors are ignored
            if ssl:
                try:
                    connection = ssl.wrap_socket(
                        connection, server_side=True, do_handshake_on_connect=False
                    )
                except Exception as error:
                    core.sys.print_exception(error)
                    connection.close()
                    continue
            connection.setblocking(False)
            stream = core.Stream(connection, {"peername": peer})
            core.create_task(callback(stream, stream))


class Connections:
    """``open_connection`` and ``start_server`` on the world's ``socket`` (and ``ssl``)."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def _socket(self) -> ModuleType:
        return self._core.world.module("socket")

    def open_connection(
        self, host: Any, port: Any, ssl: Any = None, server_hostname: Any = None
    ) -> Suspension[tuple[Stream, Stream]]:
        socket = self._socket()
        family, kind, proto, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(family, kind, proto)
        s.setblocking(False)
        try:
            s.connect(address)
        except OSError as error:
            if error.errno != errno.EINPROGRESS:
                raise
        if ssl:
            if ssl is True:
                module = self._core.world.module("ssl")
                ssl = module.SSLContext(module.PROTOCOL_TLS_CLIENT)
            s = ssl.wrap_socket(
                s, server_hostname=server_hostname or host, do_handshake_on_connect=False
            )
            s.setblocking(False)
        stream = self._core.Stream(s)
        yield from _writable(self._core, s)  # no SO_ERROR check: errors come on first use
        return stream, stream

    def start_server(
        self, cb: Any, host: Any, port: Any, backlog: int = DEFAULT_BACKLOG, ssl: Any = None
    ) -> Suspension[Server]:
        core = self._core
        socket = self._socket()
        family, *_, address = socket.getaddrinfo(host, port)[0]
        s = socket.socket(family)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        s.listen(backlog)
        server = core.Server()
        server.task = core.create_task(server._serve(s, cb, ssl))
        try:
            yield from core.sleep_ms(0)  # the accept loop takes its first step (it parks)
        except CancelledError:
            server.close()
            raise
        return server
