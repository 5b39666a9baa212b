"""MicroPython's ``ssl`` / ``ussl`` module: micropython-lib's python-stdlib/ssl/ssl.py over a
``tls`` module (usocket.tls).

As in ssl.py, the module re-exports every public name of ``tls`` (``from tls import *``: the
constants and MBEDTLS_VERSION; ``tls`` itself is there too) and adds:

- ``SSLContext(protocol)``, a wrapper around ``tls.SSLContext`` whose ``verify_mode`` starts at
  CERT_NONE for clients too; ``load_cert_chain(certfile, keyfile)`` and
  ``load_verify_locations(cafile=None, cadata=None)`` read a str as a *file path* and use bytes
  as the data; ``wrap_socket(sock, server_side=False, do_handshake_on_connect=True,
  server_hostname=None)`` hands on to the tls context. pystack extension: the wrapper also
  forwards ``get_ciphers()`` and ``set_ciphers()`` (ssl.py lacks them, yet MicroPython's own
  tests/multi_net/sslcontext_server_client_ciphers.py calls them through ``ssl``).
- ``wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE,
  cadata=None, server_hostname=None, do_handshake=True)``: a context for the side, the key and
  certificate (bytes data, or str paths through the wrapper) if either is given, the CA data if
  given, ``verify_mode = cert_reqs``, then ``wrap_socket``.

Compatibility extension (documented, keyword-only): the historical ussl/WiPy names
``keyfile``, ``certfile`` and ``ca_certs`` take *paths* (ussl docs up to v1.12:
``wrap_socket(sock, server_side, keyfile, certfile, cert_reqs, ca_certs)``). Given both a name
and its old form (``key`` and ``keyfile``...), wrap_socket raises TypeError. A socket made with
``IPPROTO_SEC`` and not yet connected comes back with ``connect()`` (the WiPy form, see
usocket.tls). There is no ``ssl.SSLError``: errors are those of usocket.tls_errors.
Entry points: ``ssl_module``.
"""

from __future__ import annotations

import types
from typing import Any

from usocket.errors import EIO, error


def _read(path: str) -> bytes:
    """``open(path, "rb").read()``, failing as MicroPython's open does: ``OSError(errno)``."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as failure:
        raise error(failure.errno or EIO) from None


def _context_type(tls: types.ModuleType) -> type:
    class SSLContext:
        """ssl.py's SSLContext: tls.SSLContext with verify_mode CERT_NONE and file paths."""

        def __init__(self, *arguments: Any) -> None:
            self._context = tls.SSLContext(*arguments)
            self._context.verify_mode = tls.CERT_NONE

        @property
        def verify_mode(self) -> int:
            return int(self._context.verify_mode)

        @verify_mode.setter
        def verify_mode(self, value: Any) -> None:
            self._context.verify_mode = value

        def load_cert_chain(self, certfile: Any, keyfile: Any) -> None:
            if isinstance(certfile, str):
                certfile = _read(certfile)
            if isinstance(keyfile, str):
                keyfile = _read(keyfile)
            self._context.load_cert_chain(certfile, keyfile)

        def load_verify_locations(self, cafile: Any = None, cadata: Any = None) -> None:
            if cafile:
                cadata = _read(cafile)
            self._context.load_verify_locations(cadata)

        def get_ciphers(self) -> list[str]:
            return list(self._context.get_ciphers())

        def set_ciphers(self, ciphersuite: Any) -> None:
            self._context.set_ciphers(ciphersuite)

        def wrap_socket(
            self,
            sock: Any,
            server_side: object = False,
            do_handshake_on_connect: object = True,
            server_hostname: Any = None,
        ) -> Any:
            return self._context.wrap_socket(
                sock,
                server_side=server_side,
                do_handshake_on_connect=do_handshake_on_connect,
                server_hostname=server_hostname,
            )

    return SSLContext


def _pick(new: Any, old: Any, names: str) -> Any:
    if new is not None and old is not None:
        raise TypeError(f"give {names}, not both")
    return old if old is not None else new


def _wrap_socket_function(tls: types.ModuleType, context_type: type) -> Any:
    def wrap_socket(
        sock: Any,
        server_side: object = False,
        key: Any = None,
        cert: Any = None,
        cert_reqs: int = tls.CERT_NONE,
        cadata: Any = None,
        server_hostname: Any = None,
        do_handshake: object = True,
        *,
        keyfile: str | None = None,
        certfile: str | None = None,
        ca_certs: str | None = None,
    ) -> Any:
        """micropython-lib's ``ssl.wrap_socket``, plus the old path keywords (module docstring)."""
        key = _pick(key, keyfile, "key or keyfile")
        cert = _pick(cert, certfile, "cert or certfile")
        if cadata is not None and ca_certs is not None:
            raise TypeError("give cadata or ca_certs, not both")
        context = context_type(tls.PROTOCOL_TLS_SERVER if server_side else tls.PROTOCOL_TLS_CLIENT)
        if cert or key:
            context.load_cert_chain(cert, key)
        if ca_certs:
            context.load_verify_locations(cafile=ca_certs)
        if cadata:
            context.load_verify_locations(cadata=cadata)
        context.verify_mode = cert_reqs
        return context.wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake,
            server_hostname=server_hostname,
        )

    return wrap_socket


def ssl_module(tls: types.ModuleType, name: str = "ssl") -> types.ModuleType:
    """A fresh ``ssl`` (or ``ussl``) module over the ``tls`` module given."""
    module = types.ModuleType(name, "MicroPython's ssl module (micropython-lib ssl.py over tls)")
    for public in dir(tls):
        if not public.startswith("_"):
            setattr(module, public, getattr(tls, public))
    context_type = _context_type(tls)
    context_type.__module__ = name
    module.tls = tls  # type: ignore[attr-defined]  # ssl.py's ``import tls``
    module.SSLContext = context_type  # type: ignore[attr-defined]
    module.wrap_socket = _wrap_socket_function(tls, context_type)  # type: ignore[attr-defined]
    return module
