"""MicroPython-shaped modules: CPython's implementations behind MicroPython's names only.

Libraries feature-test a module's surface (``hasattr(collections, "defaultdict")``,
``json.dumps(x, indent=2)`` in a ``try``), so a script sees exactly the names MicroPython's unix
port gives (``MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES``; each list below cites its source file
in the MicroPython tree). The functions behind the names are CPython's, taking ``str`` wherever
MicroPython takes a read-only buffer (MicroPython's ``str`` has the buffer protocol: its UTF-8
bytes), so ``hashlib.sha256("abc")`` and ``struct.pack("4s", "abcd")`` work as on a board.

Known differences kept: the objects behind the names (a compiled regex, a ``deque``, a file)
are CPython's and may have more methods than MicroPython's; ``json`` errors are CPython's
``ValueError`` subclasses with CPython's messages.

Entry points: ``SHAPED_FACTORIES`` (name -> factory), ``as_buffer``.
"""

from __future__ import annotations

import _thread
import array
import binascii
import collections
import hashlib
import heapq
import io
import json
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

from pystack.bufferview import BytearrayView
from pystack.runtime.unix_port import MICROPYTHON_VERSION

if TYPE_CHECKING:
    from pystack.runtime.world import ScriptWorld


def as_buffer(data: Any) -> Any:
    """``data`` as CPython's C code accepts a read-only buffer: a ``str`` becomes its UTF-8, a
    script's ``BytearrayView`` its bytes."""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return data.tobytes() if isinstance(data, BytearrayView) else data


def _module(name: str, names: Mapping[str, object]) -> ModuleType:
    module = ModuleType(name)
    vars(module).update(names)
    return module


def make_json(world: ScriptWorld) -> ModuleType:
    """``extmod/modjson.c``: dump, dumps (with ``separators``), load, loads. MicroPython writes
    non-ASCII characters as they are (UTF-8), so ``ensure_ascii`` is off."""

    def dumps(obj: object, separators: tuple[str, str] | None = None) -> str:
        return json.dumps(obj, separators=separators, ensure_ascii=False)

    def dump(obj: object, stream: IO[str], separators: tuple[str, str] | None = None) -> None:
        stream.write(dumps(obj, separators))

    def loads(text: str | bytes) -> Any:
        return json.loads(text)

    def load(stream: IO[str]) -> Any:
        return json.loads(stream.read())

    return _module("json", {"dump": dump, "dumps": dumps, "load": load, "loads": loads})


def make_collections(world: ScriptWorld) -> ModuleType:
    """``py/modcollections.c``: namedtuple, OrderedDict, deque (no defaultdict, Counter...)."""
    names = {"namedtuple": collections.namedtuple, "OrderedDict": collections.OrderedDict}
    return _module("collections", {**names, "deque": collections.deque})


def make_struct(world: ScriptWorld) -> ModuleType:
    """``py/modstruct.c``: calcsize, pack, pack_into, unpack, unpack_from (no Struct, no
    error: a bad format or value raises ValueError/TypeError, caught by ``except Exception``)."""

    def pack(fmt: str | bytes, *values: object) -> bytes:
        return struct.pack(fmt, *[as_buffer(value) for value in values])

    def pack_into(fmt: str | bytes, buffer: Any, offset: int, *values: object) -> None:
        arguments = [as_buffer(value) for value in values]
        if not isinstance(buffer, BytearrayView):
            struct.pack_into(fmt, buffer, offset, *arguments)
            return
        # a view of a bytearray (bridge 6) takes the packed bytes by slice assignment, with
        # py/modstruct.c's bounds check and message
        data = struct.pack(fmt, *arguments)
        start = offset + len(buffer) if offset < 0 else offset
        if start < 0 or start + len(data) > len(buffer):
            raise ValueError("buffer too small")
        buffer[start : start + len(data)] = data

    def unpack(fmt: str | bytes, data: Any) -> tuple[Any, ...]:
        return struct.unpack(fmt, as_buffer(data))

    def unpack_from(fmt: str | bytes, data: Any, offset: int = 0) -> tuple[Any, ...]:
        return struct.unpack_from(fmt, as_buffer(data), offset)

    return _module(
        "struct",
        {
            "calcsize": struct.calcsize,
            "pack": pack,
            "pack_into": pack_into,
            "unpack": unpack,
            "unpack_from": unpack_from,
        },
    )


def make_binascii(world: ScriptWorld) -> ModuleType:
    """``extmod/modbinascii.c``: hexlify, unhexlify, a2b_base64, b2a_base64, crc32."""

    def hexlify(data: Any, sep: Any = None) -> bytes:
        if sep is None:
            return binascii.hexlify(as_buffer(data))
        return binascii.hexlify(as_buffer(data), as_buffer(sep))

    def unhexlify(data: Any) -> bytes:
        return binascii.unhexlify(as_buffer(data))

    def a2b_base64(data: Any) -> bytes:
        return binascii.a2b_base64(as_buffer(data))

    def b2a_base64(data: Any, *, newline: bool = True) -> bytes:
        return binascii.b2a_base64(as_buffer(data), newline=newline)

    def crc32(data: Any, value: int = 0) -> int:
        return binascii.crc32(as_buffer(data), value)

    return _module(
        "binascii",
        {
            "hexlify": hexlify,
            "unhexlify": unhexlify,
            "a2b_base64": a2b_base64,
            "b2a_base64": b2a_base64,
            "crc32": crc32,
        },
    )


def _hash_class(name: str) -> type:
    constructor: Callable[[], Any] = getattr(hashlib, name)

    class Hash:
        """MicroPython's hash object: ``update`` and ``digest`` only (no ``hexdigest``)."""

        __slots__ = ("_hash",)

        def __init__(self, data: Any = None) -> None:
            self._hash = constructor()
            if data is not None:
                self._hash.update(as_buffer(data))

        def update(self, data: Any) -> None:
            self._hash.update(as_buffer(data))

        def digest(self) -> bytes:
            result: bytes = self._hash.digest()
            return result

    Hash.__name__ = Hash.__qualname__ = name
    return Hash


def make_hashlib(world: ScriptWorld) -> ModuleType:
    """``extmod/modhashlib.c``: sha256, and sha1 and md5 (on with mbedTLS on the unix port)."""
    return _module("hashlib", {name: _hash_class(name) for name in ("sha256", "sha1", "md5")})


def make_heapq(world: ScriptWorld) -> ModuleType:
    """``extmod/modheapq.c``: heappush, heappop, heapify."""
    names = {"heappush": heapq.heappush, "heappop": heapq.heappop, "heapify": heapq.heapify}
    return _module("heapq", names)


def make_io(world: ScriptWorld) -> ModuleType:
    """``py/modio.c``: open, IOBase, StringIO, BytesIO (BufferedWriter is off at this level)."""
    return _module(
        "io",
        {"open": open, "IOBase": io.IOBase, "StringIO": io.StringIO, "BytesIO": io.BytesIO},
    )


def make_array(world: ScriptWorld) -> ModuleType:
    """``py/modarray.c``: the ``array`` type."""
    return _module("array", {"array": array.array})


def make_re(world: ScriptWorld) -> ModuleType:
    """``extmod/modre.c``: compile, match, search, sub, DEBUG (no findall, escape, flags...)."""

    def compile(pattern: str | bytes, flags: int = 0) -> re.Pattern[Any]:
        return re.compile(pattern, flags & ~DEBUG)

    def match(pattern: str | bytes, string: Any) -> re.Match[Any] | None:
        return re.match(pattern, string)

    def search(pattern: str | bytes, string: Any) -> re.Match[Any] | None:
        return re.search(pattern, string)

    def sub(pattern: Any, replacement: Any, string: Any, count: int = 0, flags: int = 0) -> Any:
        return re.sub(pattern, replacement, string, count=count, flags=flags & ~DEBUG)

    return _module(
        "re", {"compile": compile, "match": match, "search": search, "sub": sub, "DEBUG": DEBUG}
    )


DEBUG = 0x1000  # extmod/modre.c: FLAG_DEBUG


def ilistdir(directory: str = ".") -> Iterator[tuple[str, int, int, int]]:
    """``os.ilistdir``: (name, type, inode, size) per entry, as the unix port gives them."""
    with os.scandir(directory) as entries:
        for entry in entries:
            kind = 0x4000 if entry.is_dir() else 0x8000
            size = entry.stat().st_size if kind == 0x8000 else 0
            yield (entry.name, kind, entry.inode(), size)


def _dupterm(*arguments: object) -> None:
    return None


def _unsetenv(name: str) -> None:
    os.environ.pop(name, None)


def make_os(world: ScriptWorld) -> ModuleType:
    """``extmod/modos.c`` with the unix port's ``ports/unix/modos.c``: the file functions,
    environment, ``system``, ``urandom``, ``errno``, ``ilistdir``, ``dupterm`` (a no-op), ``sep``.
    No ``path`` (micropython-lib's ``os-path`` package adds it), no ``environ``; ``mount``,
    ``umount`` and the ``Vfs*`` classes are not emulated."""
    names: dict[str, object] = {
        name: getattr(os, name)
        for name in (
            "chdir",
            "getcwd",
            "getenv",
            "putenv",
            "listdir",
            "mkdir",
            "remove",
            "rename",
            "rmdir",
            "stat",
            "statvfs",
            "sync",
            "system",
            "unlink",
            "urandom",
            "sep",
        )
    }

    last_error = [0]  # os.errno(): the saved errno value, set by the script

    def errno(value: int | None = None) -> int | None:
        if value is None:
            return last_error[0]
        last_error[0] = int(value)
        return None

    names.update({"ilistdir": ilistdir, "dupterm": _dupterm, "unsetenv": _unsetenv, "errno": errno})
    return _module("os", names)


def make_platform(world: ScriptWorld) -> ModuleType:
    """``extmod/modplatform.c``: platform(), python_compiler(), libc_ver()."""
    major, minor, micro, _ = MICROPYTHON_VERSION

    def platform() -> str:
        return f"MicroPython-{major}.{minor}.{micro}-x86_64-with-glibc"

    def python_compiler() -> str:
        return "pystack"

    def libc_ver() -> tuple[str, str]:
        return ("glibc", "")

    names = {"platform": platform, "python_compiler": python_compiler, "libc_ver": libc_ver}
    return _module("platform", names)


def make_thread(world: ScriptWorld) -> ModuleType:
    """``py/modthread.c``: start_new_thread, allocate_lock, get_ident, stack_size, exit,
    LockType. Threads are CPython's (the unix port's are POSIX threads too)."""
    names = {
        name: getattr(_thread, name)
        for name in ("start_new_thread", "allocate_lock", "get_ident", "stack_size", "exit")
    }
    return _module("_thread", {**names, "LockType": _thread.LockType})


SHAPED_FACTORIES: dict[str, Callable[[ScriptWorld], ModuleType]] = {
    "json": make_json,
    "collections": make_collections,
    "struct": make_struct,
    "binascii": make_binascii,
    "hashlib": make_hashlib,
    "heapq": make_heapq,
    "io": make_io,
    "array": make_array,
    "re": make_re,
    "os": make_os,
    "platform": make_platform,
    "_thread": make_thread,
}
