"""The simulated network's test certificates (made by tools/make_test_certs.sh): a test CA
(``ca.pem``, ``ca.der``) and the peer's server certificate and key (``server.pem``,
``server.key``) for peer.sim, example.com, localhost, 10.0.0.1 and 127.0.0.1. Public test
material: never trust this CA outside tests.
Entry points: ``CERTS_DIR``, ``read_cert``.
"""

from __future__ import annotations

from pathlib import Path

CERTS_DIR = Path(__file__).resolve().parent
CA_PEM = CERTS_DIR / "ca.pem"
CA_DER = CERTS_DIR / "ca.der"
SERVER_CERT = CERTS_DIR / "server.pem"
SERVER_KEY = CERTS_DIR / "server.key"


def read_cert(name: str) -> bytes:
    """The bytes of one of the files here (``"ca.der"``, ``"server.pem"``...)."""
    return (CERTS_DIR / name).read_bytes()
