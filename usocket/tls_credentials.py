"""Certificates, keys and cipher suites for the ``tls`` module: mbedTLS's inputs on OpenSSL.

mbedTLS takes certificates and keys as data, DER or PEM (``asn1_get_data``: PEM when the data
holds ``"-----BEGIN "``, else DER), as bytes or str. CPython's ``SSLContext`` takes CA data
directly (``cadata``: PEM str or DER bytes) but reads its own certificate chain and key only from
*files*; ``load_own_chain`` therefore writes both as PEM into a private temporary directory,
loads them and removes the files at once (there is no in-memory path in CPython 3.11).

Errors are modtls_mbedtls's: a key that does not parse is ``ValueError("invalid key")``, a
certificate ``ValueError("invalid cert")``, checked key first as ``ssl_context_load_key`` does.
A key that does not match the certificate is also "invalid key" (mbedTLS would only fail later,
in the handshake). An encrypted key is "invalid key" as well: mbedTLS is given no password, and
CPython is given an empty one so OpenSSL never prompts on the terminal.

Cipher suites carry mbedTLS's names (``TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256``), listed in
mbedTLS's preference order (library/ssl_ciphersuites.c) and limited to the TLS 1.2 suites this
OpenSSL offers too; ``SUITES`` maps each to OpenSSL's name.
Entry points: ``as_bytes``, ``key_pem``, ``certificate_pem``, ``ca_data``, ``load_own_chain``,
``SUITES``, ``available_suites``.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from typing import Any

from pystack.bufferview import BytearrayView

PEM_MARK = b"-----BEGIN "

# (mbedTLS name, OpenSSL name), in mbedTLS's preference order.
SUITES: tuple[tuple[str, str], ...] = (
    ("TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
    ("TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("TLS-DHE-RSA-WITH-CHACHA20-POLY1305-SHA256", "DHE-RSA-CHACHA20-POLY1305"),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS-DHE-RSA-WITH-AES-256-GCM-SHA384", "DHE-RSA-AES256-GCM-SHA384"),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-CCM", "ECDHE-ECDSA-AES256-CCM"),
    ("TLS-DHE-RSA-WITH-AES-256-CCM", "DHE-RSA-AES256-CCM"),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA384", "ECDHE-ECDSA-AES256-SHA384"),
    ("TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA384", "ECDHE-RSA-AES256-SHA384"),
    ("TLS-DHE-RSA-WITH-AES-256-CBC-SHA256", "DHE-RSA-AES256-SHA256"),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-CBC-SHA", "ECDHE-ECDSA-AES256-SHA"),
    ("TLS-ECDHE-RSA-WITH-AES-256-CBC-SHA", "ECDHE-RSA-AES256-SHA"),
    ("TLS-DHE-RSA-WITH-AES-256-CBC-SHA", "DHE-RSA-AES256-SHA"),
    ("TLS-ECDHE-ECDSA-WITH-AES-256-CCM-8", "ECDHE-ECDSA-AES256-CCM8"),
    ("TLS-DHE-RSA-WITH-AES-256-CCM-8", "DHE-RSA-AES256-CCM8"),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS-DHE-RSA-WITH-AES-128-GCM-SHA256", "DHE-RSA-AES128-GCM-SHA256"),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CCM", "ECDHE-ECDSA-AES128-CCM"),
    ("TLS-DHE-RSA-WITH-AES-128-CCM", "DHE-RSA-AES128-CCM"),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256", "ECDHE-ECDSA-AES128-SHA256"),
    ("TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256", "ECDHE-RSA-AES128-SHA256"),
    ("TLS-DHE-RSA-WITH-AES-128-CBC-SHA256", "DHE-RSA-AES128-SHA256"),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA", "ECDHE-ECDSA-AES128-SHA"),
    ("TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA", "ECDHE-RSA-AES128-SHA"),
    ("TLS-DHE-RSA-WITH-AES-128-CBC-SHA", "DHE-RSA-AES128-SHA"),
    ("TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8", "ECDHE-ECDSA-AES128-CCM8"),
    ("TLS-DHE-RSA-WITH-AES-128-CCM-8", "DHE-RSA-AES128-CCM8"),
    ("TLS-RSA-WITH-AES-256-GCM-SHA384", "AES256-GCM-SHA384"),
    ("TLS-RSA-WITH-AES-256-CCM", "AES256-CCM"),
    ("TLS-RSA-WITH-AES-256-CBC-SHA256", "AES256-SHA256"),
    ("TLS-RSA-WITH-AES-256-CBC-SHA", "AES256-SHA"),
    ("TLS-RSA-WITH-AES-256-CCM-8", "AES256-CCM8"),
    ("TLS-RSA-WITH-AES-128-GCM-SHA256", "AES128-GCM-SHA256"),
    ("TLS-RSA-WITH-AES-128-CCM", "AES128-CCM"),
    ("TLS-RSA-WITH-AES-128-CBC-SHA256", "AES128-SHA256"),
    ("TLS-RSA-WITH-AES-128-CBC-SHA", "AES128-SHA"),
    ("TLS-RSA-WITH-AES-128-CCM-8", "AES128-CCM8"),
)


def available_suites() -> tuple[tuple[str, str], ...]:
    """``SUITES`` limited to what the linked OpenSSL implements (asked once per module)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.set_ciphers("ALL")
    known = {str(cipher["name"]) for cipher in probe.get_ciphers()}
    return tuple(suite for suite in SUITES if suite[1] in known)


def as_bytes(data: Any, what: str) -> bytes:
    """``mp_obj_str_get_data``: str (its UTF-8) or bytes-like; anything else is a TypeError."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview | BytearrayView):
        return bytes(data)
    raise TypeError(f"{what}: can't convert '{type(data).__name__}' object to str implicitly")


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"\n".join(
        [f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode()]
    )


def _der_item(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """One DER TLV at ``offset``: (tag, start of value, end of value), or None if malformed."""
    if offset + 2 > len(data):
        return None
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            return None
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    return (tag, start, end) if end <= len(data) else None


def _der_key_label(der: bytes) -> str | None:
    """The PEM label of a DER private key, told apart by its second element: PKCS#8
    ``PrivateKeyInfo`` {INTEGER, SEQUENCE, ...}, PKCS#1 ``RSAPrivateKey`` {INTEGER, INTEGER, ...},
    SEC1 ``ECPrivateKey`` {INTEGER 1, OCTET STRING, ...}, PKCS#8 encrypted {SEQUENCE, ...}."""
    outer = _der_item(der, 0)
    if outer is None or outer[0] != 0x30:
        return None
    first = _der_item(der, outer[1])
    if first is None:
        return None
    if first[0] == 0x30:
        return "ENCRYPTED PRIVATE KEY"
    second = _der_item(der, first[2]) if first[0] == 0x02 else None
    if second is None:
        return None
    return {0x30: "PRIVATE KEY", 0x02: "RSA PRIVATE KEY", 0x04: "EC PRIVATE KEY"}.get(second[0])


def key_pem(key: Any) -> bytes:
    """The private key as PEM; ``ValueError("invalid key")`` when it is neither PEM nor a DER
    private-key structure."""
    data = as_bytes(key, "key")
    if PEM_MARK in data:
        if b"PRIVATE KEY-----" not in data:
            raise ValueError("invalid key")
        return data
    label = _der_key_label(data)
    if label is None:
        raise ValueError("invalid key")
    return _pem(label, data)


def ca_data(data: Any) -> str | bytes:
    """Certificates in the form CPython's ``cadata`` takes: PEM as str, DER as bytes."""
    raw = as_bytes(data, "cadata")
    if PEM_MARK in raw:
        return raw.decode("ascii", "replace")
    return raw


def check_certificates(data: str | bytes) -> None:
    """``ValueError("invalid cert")`` unless OpenSSL parses ``data`` as certificates."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError, TypeError):
        raise ValueError("invalid cert") from None
    if not probe.cert_store_stats()["x509"]:
        raise ValueError("invalid cert")


def certificate_pem(cert: Any) -> bytes:
    """The certificate (chain) as PEM, checked; ``ValueError("invalid cert")`` when it is bad."""
    data = ca_data(cert)
    check_certificates(data)
    if isinstance(data, str):
        return data.encode("ascii", "replace")
    return ssl.DER_cert_to_PEM_cert(data).encode("ascii")


def load_own_chain(context: ssl.SSLContext, cert: Any, key: Any) -> None:
    """``load_cert_chain`` from data: key checked first, then the certificate, then both loaded
    through a private temporary directory that is removed before returning."""
    key_text = key_pem(key)
    cert_text = certificate_pem(cert)
    with tempfile.TemporaryDirectory(prefix="pystack-tls-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, text in ((cert_path, cert_text), (key_path, key_text)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(text)
        try:
            context.load_cert_chain(cert_path, key_path, password=lambda: b"")
        except (ssl.SSLError, ValueError, OSError):
            raise ValueError("invalid key") from None  # the certificate parsed: the key is bad
