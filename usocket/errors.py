"""Errors as MicroPython raises them: plain ``OSError(errno)`` with ``args == (errno,)``.

MicroPython has no ``socket.timeout``, ``BlockingIOError`` or ``ConnectionResetError``; every
failure is ``OSError`` whose only argument is the errno (shared/USOCKET.md, notation). The errno
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


def fail(code: int) -> NoReturn:
    """Raise the MicroPython form of an error: ``OSError(code)``."""
    raise OSError(code)
