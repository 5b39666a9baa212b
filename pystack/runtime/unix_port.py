"""The MicroPython that ``pystack run`` emulates: its version and its module set, in one place.

The version is that of MicroPython's unix port, standard variant (``ports/unix/variants/
standard``), ``v1.24.0``. The module list below is that port's ``help('modules')``, taken from the
MicroPython source tree: the ``MP_REGISTER_MODULE`` (built-in) and
``MP_REGISTER_EXTENSIBLE_MODULE`` (extensible) lines in ``py/``, ``extmod/`` and ``ports/unix/``
whose ``MICROPY_PY_*`` switch is on for the standard variant (``ports/unix/mpconfigport.h``,
``ports/unix/mpconfigport.mk``, ``py/mpconfig.h`` at ``MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES``),
plus the frozen Python packages of ``ports/unix/variants/standard/manifest.py`` (``asyncio``,
``ssl``, ``mip``). ``docs/library/index.rst`` documents each of them. ``docs/micropython-world.md``
is this table in prose.

A script imports exactly these names (an extensible one also as ``u`` + name), plus whatever is
found on its search path; ``pystack run --cpython-modules`` adds CPython's standard library as a
fallback, which was pystack's behaviour before.

Each entry says how pystack gives the module: ``PYSTACK`` (built here, with MicroPython's
surface), ``MACHINE`` (``machine``, registered by its own module when present), ``NETWORK`` (bound
to the script's stack when the network is set up), or ``NOT_EMULATED`` (MicroPython has it, pystack
does not: importing it raises the ImportError MicroPython raises for an absent module, and the
docs say so). ``network`` is not a unix-port module (it is a board's); pystack gives it anyway so
board code that configures Wi-Fi or Ethernet runs.

Entry points: ``MICROPYTHON_VERSION``, ``UNIX_PORT_MODULES``, ``no_module_named``,
``sys_version``.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

# (major, minor, micro, prerelease): sys.implementation.version of the emulated MicroPython
MICROPYTHON_VERSION = (1, 24, 0, "")
MICROPYTHON_RELEASE_DATE = "2024-10-25"  # the v1.24.0 tag, as the banner and sys.version show it
PYTHON_LANGUAGE_VERSION = (3, 4, 0)  # py/modsys.c: mp_sys_version_info_obj
PYSTACK_VERSION = "0.1.0"  # pyproject.toml's [project] version (a test keeps the two equal)


class Emulation(enum.Enum):
    PYSTACK = "built by pystack with MicroPython's surface"
    MACHINE = "machine: pystack's board emulation, registered when present"
    NETWORK = "bound to the script's stack when the network is set up"
    NOT_EMULATED = "MicroPython's unix port has it; pystack does not"


class Place(enum.Enum):
    BUILTIN = "built-in (MP_REGISTER_MODULE): found before the search path"
    EXTENSIBLE = "extensible (MP_REGISTER_EXTENSIBLE_MODULE): after the path; also u<name>"
    FROZEN = "frozen Python (variants/standard/manifest.py): where '.frozen' stands in the path"


_P, _N, _X = Emulation.PYSTACK, Emulation.NETWORK, Emulation.NOT_EMULATED
_B, _E, _F = Place.BUILTIN, Place.EXTENSIBLE, Place.FROZEN

# name -> (where MicroPython finds it, how pystack gives it); source file in the MicroPython tree
UNIX_PORT_MODULES: MappingProxyType[str, tuple[Place, Emulation]] = MappingProxyType(
    {
        "builtins": (_B, _P),  # py/modbuiltins.c
        "micropython": (_B, _P),  # py/modmicropython.c
        "sys": (_B, _P),  # py/modsys.c
        "gc": (_B, _P),  # py/modgc.c
        "math": (_B, _P),  # py/modmath.c
        "cmath": (_B, _P),  # py/modcmath.c
        "_thread": (_B, _P),  # py/modthread.c (MICROPY_PY_THREAD = 1 in mpconfigport.mk)
        "platform": (_E, _P),  # extmod/modplatform.c
        "array": (_E, _P),  # py/modarray.c
        "collections": (_E, _P),  # py/modcollections.c
        "errno": (_E, _P),  # py/moderrno.c
        "io": (_E, _P),  # py/modio.c
        "struct": (_E, _P),  # py/modstruct.c
        "binascii": (_E, _P),  # extmod/modbinascii.c
        "hashlib": (_E, _P),  # extmod/modhashlib.c
        "heapq": (_E, _P),  # extmod/modheapq.c
        "json": (_E, _P),  # extmod/modjson.c
        "os": (_E, _P),  # extmod/modos.c with ports/unix/modos.c
        "random": (_E, _P),  # extmod/modrandom.c
        "re": (_E, _P),  # extmod/modre.c
        "time": (_E, _P),  # extmod/modtime.c with ports/unix/modtime.c
        "deflate": (_B, _X),  # extmod/moddeflate.c
        "socket": (_E, _N),  # ports/unix/modsocket.c (pystack: extmod/modlwip.c's surface)
        "select": (_E, _N),  # extmod/modselect.c
        "tls": (_B, _N),  # extmod/modtls_mbedtls.c (MICROPY_SSL_MBEDTLS = 1)
        "ssl": (_F, _N),  # micropython-lib python-stdlib/ssl, frozen
        "asyncio": (_F, _N),  # extmod/asyncio, frozen (with its C helper _asyncio)
        "machine": (_E, Emulation.MACHINE),  # extmod/modmachine.c with ports/unix/modmachine.c
        "_asyncio": (_B, _X),  # extmod/modasyncio.c: pystack's asyncio is Python throughout
        "mip": (_F, _X),  # micropython-lib mip, frozen (mip-cmdline)
        "vfs": (_B, _X),  # extmod/modvfs.c
        "btree": (_B, _X),  # extmod/modbtree.c
        "cryptolib": (_E, _X),  # extmod/modcryptolib.c
        "framebuf": (_B, _X),  # extmod/modframebuf.c
        "uctypes": (_B, _X),  # extmod/moductypes.c
        "websocket": (_E, _X),  # extmod/modwebsocket.c
        "ffi": (_B, _X),  # ports/unix/modffi.c
        "termios": (_B, _X),  # ports/unix/modtermios.c
    }
)


def no_module_named(name: str) -> ImportError:
    """The error MicroPython raises for a module it cannot find (``py/builtinimport.c``,
    ``no module named '%q'``, detailed error reporting as on the unix port)."""
    return ImportError(f"no module named '{name}'", name=name)


def version_text() -> str:
    major, minor, micro, prerelease = MICROPYTHON_VERSION
    tag = f"v{major}.{minor}.{micro}" + (f"-{prerelease}" if prerelease else "")
    return f"{tag} on {MICROPYTHON_RELEASE_DATE}"


def sys_version() -> str:
    """``sys.version``: the language version, then the banner's name and version
    (``py/modsys.c``: ``"3.4.0; " MICROPY_BANNER_NAME_AND_VERSION``)."""
    language = ".".join(str(part) for part in PYTHON_LANGUAGE_VERSION)
    return f"{language}; MicroPython {version_text()}"


def machine_text() -> str:
    """``sys.implementation._machine``: on the unix port ``"linux [GCC x.y.z] version"``
    (``MICROPY_BANNER_MACHINE``); here it names pystack and its version instead of the compiler."""
    return f"linux [pystack {PYSTACK_VERSION}] version"
