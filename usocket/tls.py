"""MicroPython's ``tls`` module (extmod/modtls_mbedtls.c) on CPython's ``ssl``.

``tls_module()`` builds the module a script imports: the constants, ``MBEDTLS_VERSION`` and
``SSLContext``, whose ``wrap_socket`` returns the ``SSLSocket`` of usocket.tls_socket (an
``ssl.SSLObject`` over the wrapped MicroPython stream, two ``MemoryBIO`` between them). Each
call makes a fresh module with its own ``SSLContext`` class; nothing here is global.

``tls.SSLContext(protocol)`` follows ``ssl_context_make_new`` and friends:

- one positional int argument; bit 0 of ``protocol`` makes a server, bit 1 DTLS. This build
  has no DTLS (there is no DTLS in CPython's ``ssl``): a DTLS protocol raises
  MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE, and ``PROTOCOL_DTLS_CLIENT``/``_SERVER`` (2, 3) are
  exported only with ``tls_module(dtls_constants=True)``, because MicroPython defines them only
  in DTLS builds and tests probe ``hasattr(tls, "PROTOCOL_DTLS_SERVER")`` to decide whether to
  run DTLS code.
- ``verify_mode`` (an int; clients start at CERT_REQUIRED, servers at CERT_NONE) and
  ``verify_callback``; setting any other attribute is an AttributeError, as on MicroPython.
  CERT_REQUIRED verifies the chain, and the peer's name when ``server_hostname`` is given.
  CERT_OPTIONAL on a client continues whatever the verification finds (mbedTLS's
  VERIFY_OPTIONAL; OpenSSL is told CERT_NONE); on a server it asks for a client certificate and
  checks one if it comes (OpenSSL's CERT_OPTIONAL, which fails the handshake on a bad one where
  mbedTLS would go on). No PSK (``psk_identity`` ...): CPython 3.11 cannot do it.
- ``load_cert_chain(cert, key)`` and ``load_verify_locations(cadata)``: data (bytes or str),
  DER or PEM; see usocket.tls_credentials for the errors.
- ``get_ciphers()`` lists mbedTLS names; ``set_ciphers(names)`` takes a list or tuple of them.
  Anything else (an empty list, an unknown name, a plain str) raises MBEDTLS_ERR_SSL_BAD_CONFIG
  (tests/multi_net/sslcontext_server_client_ciphers_errors.py.exp shows the str case).
- ``wrap_socket(sock, *, server_side=False, do_handshake_on_connect=True,
  server_hostname=None, client_id=None)``: the socket needs ``read``, ``write`` and ``ioctl``
  (else OSError "stream operation not supported"). The role comes from the context's protocol,
  as in mbedTLS; ``server_side`` only exempts a server from the hostname rule. A client with
  CERT_REQUIRED and no ``server_hostname`` raises ``ValueError("CERT_REQUIRED requires
  server_hostname")``. ``client_id`` (DTLS cookies) is accepted and ignored.

Only TLS 1.2 is negotiated: MicroPython's mbedTLS configuration (extmod/mbedtls) enables TLS
1.2 alone, so scripts see the same suite names, versions and handshake order (a server's
rejection of a client certificate fails the client's own handshake, as on MicroPython) against
any peer, CPython ones included.

The WiPy form (docs/usocket.md 5, historical API): wrapping a socket whose ``_proto`` is
``IPPROTO_SEC`` (100) and which is not connected yet (it polls POLLHUP without POLLERR, the
state of a new stream socket) defers the handshake to ``connect()``, which the returned
SSLSocket then has: it connects the wrapped socket and runs the handshake. The hostname rule
does not apply there (the WiPy API had no ``server_hostname``): CERT_REQUIRED checks the chain.
Entry points: ``tls_module``, ``MBEDTLS_VERSION``.
"""

from __future__ import annotations

import ssl
import types
from collections.abc import Callable
from typing import Any, ClassVar

from pystack.tlsrecords import RecordPump
from usocket import constants as c
from usocket import tls_errors as e
from usocket.tls_credentials import (
    available_suites,
    ca_data,
    check_certificates,
    load_own_chain,
)
from usocket.tls_socket import SSLSocket, WiPySSLSocket

PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER = 0, 1
PROTOCOL_DTLS_CLIENT, PROTOCOL_DTLS_SERVER = 2, 3
CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = 0, 1, 2
_SERVER, _DTLS = 1, 2  # MP_ENDPOINT_IS_SERVER, MP_TRANSPORT_IS_DTLS
MBEDTLS_VERSION = f"Mbed TLS 3.6.2 (pystack on {ssl.OPENSSL_VERSION})"
SPIN_LIMIT = 60.0  # seconds a non-blocking do_handshake_on_connect may spin (usocket.tls_socket)


def _get_int(value: Any) -> int:
    if not isinstance(value, int):
        raise TypeError(f"can't convert {type(value).__name__} to int")
    return value


class _SSLContext:
    """``tls.SSLContext(protocol)``: an mbedTLS configuration held as a CPython SSLContext."""

    __slots__ = ("_cadata_loaded", "_context", "_server", "_verify_mode", "verify_callback")
    _suites: ClassVar[tuple[tuple[str, str], ...]] = ()
    _spin_limit: ClassVar[float] = SPIN_LIMIT

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        if keywords or len(arguments) != 1:
            raise TypeError("function takes 1 positional argument")
        protocol = _get_int(arguments[0])
        if protocol & _DTLS:
            raise e.tls_error(e.SSL_FEATURE_UNAVAILABLE)  # no DTLS in CPython's ssl
        self._server = bool(protocol & _SERVER)
        context = ssl.SSLContext(
            ssl.PROTOCOL_TLS_SERVER if self._server else ssl.PROTOCOL_TLS_CLIENT
        )
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers(":".join(openssl for _, openssl in self._suites))
        self._context = context
        self._verify_mode = CERT_NONE if self._server else CERT_REQUIRED
        self._cadata_loaded = False
        self.verify_callback: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return "<SSLContext>"

    @property
    def verify_mode(self) -> int:
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value: Any) -> None:
        self._verify_mode = _get_int(value)

    def get_ciphers(self) -> list[str]:
        return [name for name, _ in self._suites]

    def set_ciphers(self, ciphersuite: Any) -> None:
        if not isinstance(ciphersuite, list | tuple) or not ciphersuite:
            raise e.tls_error(e.SSL_BAD_CONFIG)
        known = dict(self._suites)
        chosen = []
        for name in ciphersuite:
            if not isinstance(name, str):
                raise TypeError(f"can't convert '{type(name).__name__}' object to str implicitly")
            if name not in known:
                raise e.tls_error(e.SSL_BAD_CONFIG)
            chosen.append(known[name])
        try:
            self._context.set_ciphers(":".join(chosen))
        except ssl.SSLError:
            raise e.tls_error(e.SSL_BAD_CONFIG) from None

    def load_cert_chain(self, cert: Any, key: Any) -> None:
        load_own_chain(self._context, cert, key)

    def load_verify_locations(self, cadata: Any) -> None:
        data = ca_data(cadata)
        check_certificates(data)
        self._context.load_verify_locations(cadata=data)
        self._cadata_loaded = True

    def wrap_socket(
        self,
        sock: Any,
        *,
        server_side: object = False,
        do_handshake_on_connect: object = True,
        server_hostname: str | None = None,
        client_id: object = None,
    ) -> SSLSocket:
        del client_id  # DTLS only
        for method in ("read", "write", "ioctl"):
            if not callable(getattr(sock, method, None)):
                raise OSError("stream operation not supported")
        if server_hostname is not None and not isinstance(server_hostname, str):
            raise TypeError("server_hostname must be a str")
        wipy = _is_unconnected_sec_socket(sock)
        required = self._verify_mode == CERT_REQUIRED
        if required and server_hostname is None and not server_side and not wipy:
            raise ValueError("CERT_REQUIRED requires server_hostname")
        hostname = None if self._server else server_hostname
        self._prepare(hostname)
        records = RecordPump.wrap(self._context, self._server, hostname)
        options: dict[str, Any] = {
            "verify_callback": self.verify_callback if self._verify_mode != CERT_NONE else None,
            "spin_limit": self._spin_limit,
            "no_ca_chain": required and not self._cadata_loaded,
        }
        if wipy:
            return WiPySSLSocket(
                sock, records, handshake_on_connect=bool(do_handshake_on_connect), **options
            )
        tls_socket = SSLSocket(sock, records, **options)
        if do_handshake_on_connect:
            tls_socket._handshake_now()
        return tls_socket

    def _prepare(self, hostname: str | None) -> None:
        """Set OpenSSL's verification for the next SSLObject (SSL_new copies it)."""
        context, mode = self._context, self._verify_mode
        context.check_hostname = False
        if self._server:
            context.verify_mode = {CERT_NONE: ssl.CERT_NONE, CERT_OPTIONAL: ssl.CERT_OPTIONAL}.get(
                mode, ssl.CERT_REQUIRED
            )
            return
        if mode in (CERT_NONE, CERT_OPTIONAL):
            context.verify_mode = ssl.CERT_NONE  # OPTIONAL: mbedTLS goes on whatever it finds
            return
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = hostname is not None


def _is_unconnected_sec_socket(sock: Any) -> bool:
    """An ``IPPROTO_SEC`` socket that was never connected: a new stream socket polls POLLHUP
    (and no POLLERR, which a reset one adds) - docs/usocket.md 4."""
    if getattr(sock, "_proto", None) != c.IPPROTO_SEC:
        return False
    events = int(sock.ioctl(c.MP_STREAM_POLL, c.POLLIN | c.POLLOUT))
    return bool(events & c.POLLHUP) and not events & (c.POLLERR | c.POLLNVAL)


def tls_module(
    name: str = "tls", *, dtls_constants: bool = False, spin_limit: float = SPIN_LIMIT
) -> types.ModuleType:
    """A fresh ``tls`` module. ``dtls_constants`` adds PROTOCOL_DTLS_CLIENT/SERVER (see the
    module docstring); ``spin_limit`` bounds a non-blocking handshake in ``wrap_socket``."""
    suites = available_suites()
    context_type = type(
        "SSLContext",
        (_SSLContext,),
        {"__slots__": (), "_suites": suites, "_spin_limit": spin_limit, "__module__": name},
    )
    module = types.ModuleType(name, "MicroPython's tls module (mbedTLS API), on CPython's ssl")
    module.SSLContext = context_type  # type: ignore[attr-defined]
    module.MBEDTLS_VERSION = MBEDTLS_VERSION  # type: ignore[attr-defined]
    constants = {
        "PROTOCOL_TLS_CLIENT": PROTOCOL_TLS_CLIENT,
        "PROTOCOL_TLS_SERVER": PROTOCOL_TLS_SERVER,
        "CERT_NONE": CERT_NONE,
        "CERT_OPTIONAL": CERT_OPTIONAL,
        "CERT_REQUIRED": CERT_REQUIRED,
    }
    if dtls_constants:
        constants["PROTOCOL_DTLS_CLIENT"] = PROTOCOL_DTLS_CLIENT
        constants["PROTOCOL_DTLS_SERVER"] = PROTOCOL_DTLS_SERVER
    for constant, value in constants.items():
        setattr(module, constant, value)
    return module
