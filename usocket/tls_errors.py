"""TLS errors as MicroPython's mbedTLS module raises them, translated from CPython's ``ssl``.

MicroPython (extmod/modtls_mbedtls.c, ``mbedtls_raise_error``) raises a failed TLS operation as
``OSError(code, name)``: a negative mbedTLS error code and its ``MBEDTLS_ERR_*`` name, printed as
the tuple ``(-30592, 'MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE')``. A certificate that fails
verification raises ``ValueError`` with mbedTLS's verify text (``mbedtls_x509_crt_verify_info``
with the prefix ``"\\n"``: every reason on its own line, framed by newlines). There is no
``ssl.SSLError``. pystack runs OpenSSL through CPython, so codes and texts are chosen to be the
*closest* mbedTLS equivalent (docs/usocket.md decision 9); the table, CPython -> MicroPython:

==================================================  =============================================
CPython ``ssl`` (class or ``reason``)               raised to the script
==================================================  =============================================
``SSLCertVerificationError``                         ``ValueError(verify text)``, see ``VERIFY``;
                                                     later calls: -0x2700 X509_CERT_VERIFY_FAILED
  ... the same with CERT_REQUIRED and no CA loaded   -0x7680 SSL_CA_CHAIN_REQUIRED
``SSLEOFError`` / stream EOF during the handshake    -0x7280 SSL_CONN_EOF
EOF after the handshake, close_notify or not         ``b''`` (mbedtls_ssl_read returns 0)
reason ``*ALERT*`` (the peer sent a fatal alert)     -0x7780 SSL_FATAL_ALERT_MESSAGE
``PEER_DID_NOT_RETURN_A_CERTIFICATE``                -0x7480 SSL_NO_CLIENT_CERTIFICATE
``NO_SHARED_CIPHER``, ``NO_CIPHERS_AVAILABLE``, ...  -0x6E00 SSL_HANDSHAKE_FAILURE
``UNSUPPORTED_PROTOCOL``, ``VERSION_TOO_LOW``, ...   -0x6E80 SSL_BAD_PROTOCOL_VERSION
``WRONG_VERSION_NUMBER``, ``HTTP_REQUEST``, ...,     -0x7200 SSL_INVALID_RECORD
  or a record header that is not TLS
``DECRYPTION_FAILED_OR_BAD_RECORD_MAC``, ...         -0x7180 SSL_INVALID_MAC
``UNEXPECTED_MESSAGE``, ``UNEXPECTED_RECORD``        -0x7700 SSL_UNEXPECTED_MESSAGE
``LENGTH_MISMATCH``, ``BAD_PACKET_LENGTH``, ...      -0x7300 SSL_DECODE_ERROR
``SSLZeroReturnError`` on write                      -0x7880 SSL_PEER_CLOSE_NOTIFY
any other reason, during / after the handshake       -0x6E00 SSL_HANDSHAKE_FAILURE / -0x6C00
                                                     SSL_INTERNAL_ERROR
an ``OSError(errno)`` of the wrapped stream          passed through unchanged, as mbedTLS does
                                                     (ECONNRESET, ETIMEDOUT, ...)
bad ``set_ciphers`` argument                         -0x5E80 SSL_BAD_CONFIG
non-blocking handshake inside ``wrap_socket``        -0x6800 SSL_TIMEOUT (a pystack bound; see
  still unfinished after its bound                   usocket.tls_socket)
==================================================  =============================================

OpenSSL stops at the first verification failure while mbedTLS collects every reason, so the
ValueError text holds one reason where mbedTLS could list several (an untrusted *and* misnamed
certificate reads "not correctly signed by the trusted CA" only).
Entry points: ``TLSError``, ``tls_error``, ``translate``, ``verify_text``, the code constants.
"""

from __future__ import annotations

import ssl

# mbedTLS 3.6 error codes (include/mbedtls/ssl.h, x509.h) used here.
SSL_BAD_CONFIG = -0x5E80
SSL_TIMEOUT = -0x6800
SSL_INTERNAL_ERROR = -0x6C00
SSL_HANDSHAKE_FAILURE = -0x6E00
SSL_BAD_PROTOCOL_VERSION = -0x6E80
SSL_FEATURE_UNAVAILABLE = -0x7080
SSL_INVALID_MAC = -0x7180
SSL_INVALID_RECORD = -0x7200
SSL_CONN_EOF = -0x7280
SSL_DECODE_ERROR = -0x7300
SSL_NO_CLIENT_CERTIFICATE = -0x7480
SSL_CA_CHAIN_REQUIRED = -0x7680
SSL_UNEXPECTED_MESSAGE = -0x7700
SSL_FATAL_ALERT_MESSAGE = -0x7780
SSL_PEER_CLOSE_NOTIFY = -0x7880
X509_CERT_VERIFY_FAILED = -0x2700

NAMES = {
    SSL_BAD_CONFIG: "MBEDTLS_ERR_SSL_BAD_CONFIG",
    SSL_TIMEOUT: "MBEDTLS_ERR_SSL_TIMEOUT",
    SSL_INTERNAL_ERROR: "MBEDTLS_ERR_SSL_INTERNAL_ERROR",
    SSL_HANDSHAKE_FAILURE: "MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE",
    SSL_BAD_PROTOCOL_VERSION: "MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION",
    SSL_FEATURE_UNAVAILABLE: "MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE",
    SSL_INVALID_MAC: "MBEDTLS_ERR_SSL_INVALID_MAC",
    SSL_INVALID_RECORD: "MBEDTLS_ERR_SSL_INVALID_RECORD",
    SSL_CONN_EOF: "MBEDTLS_ERR_SSL_CONN_EOF",
    SSL_DECODE_ERROR: "MBEDTLS_ERR_SSL_DECODE_ERROR",
    SSL_NO_CLIENT_CERTIFICATE: "MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE",
    SSL_CA_CHAIN_REQUIRED: "MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED",
    SSL_UNEXPECTED_MESSAGE: "MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE",
    SSL_FATAL_ALERT_MESSAGE: "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE",
    SSL_PEER_CLOSE_NOTIFY: "MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY",
    X509_CERT_VERIFY_FAILED: "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED",
}

# OpenSSL error reasons (``SSLError.reason``) -> mbedTLS code; "*ALERT*" reasons are handled apart.
_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": SSL_NO_CLIENT_CERTIFICATE,
    "NO_SHARED_CIPHER": SSL_HANDSHAKE_FAILURE,
    "NO_CIPHERS_AVAILABLE": SSL_HANDSHAKE_FAILURE,
    "NO_SHARED_SIGNATURE_ALGORITHMS": SSL_HANDSHAKE_FAILURE,
    "NO_SUITABLE_SIGNATURE_ALGORITHM": SSL_HANDSHAKE_FAILURE,
    "UNSUPPORTED_PROTOCOL": SSL_BAD_PROTOCOL_VERSION,
    "VERSION_TOO_LOW": SSL_BAD_PROTOCOL_VERSION,
    "VERSION_TOO_HIGH": SSL_BAD_PROTOCOL_VERSION,
    "NO_PROTOCOLS_AVAILABLE": SSL_BAD_PROTOCOL_VERSION,
    "WRONG_VERSION_NUMBER": SSL_INVALID_RECORD,
    "HTTP_REQUEST": SSL_INVALID_RECORD,
    "HTTPS_PROXY_REQUEST": SSL_INVALID_RECORD,
    "RECORD_LAYER_FAILURE": SSL_INVALID_RECORD,
    "PACKET_LENGTH_TOO_LONG": SSL_INVALID_RECORD,
    "ENCRYPTED_LENGTH_TOO_LONG": SSL_INVALID_RECORD,
    "DATA_LENGTH_TOO_LONG": SSL_INVALID_RECORD,
    "RECORD_LENGTH_MISMATCH": SSL_INVALID_RECORD,
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC": SSL_INVALID_MAC,
    "BAD_RECORD_MAC": SSL_INVALID_MAC,
    "BAD_DECRYPT": SSL_INVALID_MAC,
    "UNEXPECTED_MESSAGE": SSL_UNEXPECTED_MESSAGE,
    "UNEXPECTED_RECORD": SSL_UNEXPECTED_MESSAGE,
    "LENGTH_MISMATCH": SSL_DECODE_ERROR,
    "BAD_PACKET_LENGTH": SSL_DECODE_ERROR,
    "BAD_LENGTH": SSL_DECODE_ERROR,
    "LENGTH_TOO_SHORT": SSL_DECODE_ERROR,
    "BAD_PACKET": SSL_DECODE_ERROR,
    "EXTRA_DATA_IN_MESSAGE": SSL_DECODE_ERROR,
    "BAD_ECPOINT": SSL_DECODE_ERROR,
}

# mbedtls_x509_crt_verify_info's reasons (library/x509_crt.c, x509_crt_verify_strings).
EXPIRED = "The certificate validity has expired"
FUTURE = "The certificate validity starts in the future"
CN_MISMATCH = "The certificate Common Name (CN) does not match with the expected CN"
NOT_TRUSTED = "The certificate is not correctly signed by the trusted CA"
REVOKED = "The certificate has been revoked (is on a CRL)"
EXT_KEY_USAGE = "Usage does not match the extendedKeyUsage extension"
KEY_USAGE = "Usage does not match the keyUsage extension"
BAD_MD = "The certificate is signed with an unacceptable hash."
BAD_KEY = "The certificate is signed with an unacceptable key (eg bad curve, RSA too short)."

# OpenSSL X509_V_ERR_* (SSLCertVerificationError.verify_code) -> mbedTLS reason; others: NOT_TRUSTED.
VERIFY = {
    9: FUTURE,  # CERT_NOT_YET_VALID
    10: EXPIRED,  # CERT_HAS_EXPIRED
    23: REVOKED,  # CERT_REVOKED
    26: EXT_KEY_USAGE,  # INVALID_PURPOSE
    32: KEY_USAGE,  # KEYUSAGE_NO_CERTSIGN
    62: CN_MISMATCH,  # HOSTNAME_MISMATCH
    63: CN_MISMATCH,  # EMAIL_MISMATCH
    64: CN_MISMATCH,  # IP_ADDRESS_MISMATCH
    66: BAD_KEY,  # EE_KEY_TOO_SMALL
    67: BAD_KEY,  # CA_KEY_TOO_SMALL
    68: BAD_MD,  # CA_MD_TOO_WEAK
}


class TLSError(OSError):
    """``OSError(code, name)`` as modtls_mbedtls raises it: ``args == (code, name)``, ``errno``
    the negative code, and ``str()`` the tuple (MicroPython prints an exception with two
    arguments as their tuple; CPython would print ``[Errno -30592] MBEDTLS_...``)."""

    def __init__(self, code: int, name: str) -> None:
        super().__init__(code, name)

    def __str__(self) -> str:
        return str(self.args)


TLSError.__name__ = TLSError.__qualname__ = "OSError"
TLSError.__module__ = "builtins"


def tls_error(code: int) -> TLSError:
    """The error for one mbedTLS code, named as mbedTLS's error table names it."""
    name = NAMES.get(code)
    if name is None:
        name = f"UNKNOWN ERROR CODE ({abs(code):04X})"  # mbedtls_strerror's form
    return TLSError(code, name)


def verify_text(verify_code: int | None) -> str:
    """mbedTLS's verify text for one OpenSSL verification failure: ``"\\n<reason>\\n"``."""
    reason = VERIFY.get(verify_code if verify_code is not None else -1, NOT_TRUSTED)
    return f"\n{reason}\n"


def translate(error: ssl.SSLError, handshake_done: bool) -> TLSError:
    """The mbedTLS error closest to one CPython ``ssl`` failure (not verification failures,
    which become ValueError, and not EOF on read, which is ``b''``; see the module table)."""
    if isinstance(error, ssl.SSLEOFError):
        return tls_error(SSL_CONN_EOF)
    if isinstance(error, ssl.SSLZeroReturnError):
        return tls_error(SSL_PEER_CLOSE_NOTIFY)
    reason = str(getattr(error, "reason", None) or "")
    if "ALERT" in reason:
        return tls_error(SSL_FATAL_ALERT_MESSAGE)
    code = _REASONS.get(reason)
    if code is None:
        code = SSL_INTERNAL_ERROR if handshake_done else SSL_HANDSHAKE_FAILURE
    return tls_error(code)
