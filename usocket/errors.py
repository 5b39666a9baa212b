"""Errors as MicroPython raises them: plain ``OSError(errno)`` with ``args == (errno,)``.

MicroPython has no ``socket.timeout``, ``BlockingIOError`` or ``ConnectionResetError``; every
failure is ``OSError`` whose only argument is the errno (docs/usocket.md, notation). The errno
numbers are MicroPython's (py/mperrno.h), which are Linux's.
"""

from __future__ import annotations

import errno
from typing import NoReturn

EPERM, ENOENT, EIO, EBADF, EAGAIN, ENOMEM = 1, 2, 5, 9, 11, 12
EACCES, EEXIST, EINVAL = 13, 17, 22
EOPNOTSUPP, EADDRINUSE, ECONNABORTED, ECONNRESET = 95, 98, 103, 104
ENOBUFS, EISCONN, ENOTCONN, ETIMEDOUT, ECONNREFUSED = 105, 106, 107, 110, 111
EHOSTUNREACH, EALREADY, EINPROGRESS = 113, 114, 115

assert errno.ECONNRESET == ECONNRESET and errno.ETIMEDOUT == ETIMEDOUT  # Linux numbering


class MicroPythonOSError(OSError):
    """``OSError(code)`` as MicroPython has it: ``args == (code,)``, ``errno == code`` and
    ``str()`` like ``[Errno 110] ETIMEDOUT``. (CPython's one-argument ``OSError(110)`` leaves
    ``errno`` None and prints ``110``.) It is an ``OSError``, named so in tracebacks."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.errno = code

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno) if self.errno and self.errno > 0 else None
        return f"[Errno {self.errno}] {name}" if name else str(self.errno)


MicroPythonOSError.__name__ = MicroPythonOSError.__qualname__ = "OSError"
MicroPythonOSError.__module__ = "builtins"


def error(code: int) -> OSError:
    """The MicroPython form of an error, to raise: ``OSError(code)``."""
    return MicroPythonOSError(code)


def fail(code: int) -> NoReturn:
    """Raise the MicroPython form of an error: ``OSError(code)``."""
    raise MicroPythonOSError(code)
