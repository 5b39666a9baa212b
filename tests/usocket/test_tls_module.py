"""The ``tls`` and ``ssl`` module surfaces (USOCKET.md 5): constants, contexts, certificates and
keys, cipher suites, argument checks and the MicroPython forms of the errors. No handshakes
here (test_tls_streams.py has those)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from pystack.services.certs import CA_DER, CA_PEM, SERVER_CERT, SERVER_KEY, read_cert
from tests.helpers.tls_fixtures import PKI, make_pki, stream_pair
from usocket import tls_errors
from usocket.ssl_module import ssl_module
from usocket.tls import tls_module

BAD_CONFIG = (-24192, "MBEDTLS_ERR_SSL_BAD_CONFIG")


@pytest.fixture(scope="module")
def tls() -> types.ModuleType:
    return tls_module()


@pytest.fixture(scope="module")
def ssl(tls: types.ModuleType) -> types.ModuleType:
    return ssl_module(tls)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- surface ---------------------------------------------------------------------------------------
def test_tls_exports_the_mbedtls_constants(tls: types.ModuleType) -> None:
    assert (tls.PROTOCOL_TLS_CLIENT, tls.PROTOCOL_TLS_SERVER) == (0, 1)
    assert (tls.CERT_NONE, tls.CERT_OPTIONAL, tls.CERT_REQUIRED) == (0, 1, 2)
    assert isinstance(tls.MBEDTLS_VERSION, str) and tls.MBEDTLS_VERSION
    public = {name for name in dir(tls) if not name.startswith("_")}
    assert public == {
        "SSLContext",
        "MBEDTLS_VERSION",
        "PROTOCOL_TLS_CLIENT",
        "PROTOCOL_TLS_SERVER",
        "CERT_NONE",
        "CERT_OPTIONAL",
        "CERT_REQUIRED",
    }


def test_dtls_constants_only_when_asked_and_dtls_is_unavailable() -> None:
    assert not hasattr(tls_module(), "PROTOCOL_DTLS_CLIENT")  # tests probe this to skip DTLS
    tls = tls_module(dtls_constants=True)
    assert (tls.PROTOCOL_DTLS_CLIENT, tls.PROTOCOL_DTLS_SERVER) == (2, 3)
    with pytest.raises(OSError) as raised:
        tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
    assert raised.value.args == (-0x7080, "MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE")


def test_ssl_reexports_tls_and_adds_wrap_socket(
    ssl: types.ModuleType, tls: types.ModuleType
) -> None:
    for name in ("CERT_NONE", "CERT_OPTIONAL", "CERT_REQUIRED", "MBEDTLS_VERSION"):
        assert getattr(ssl, name) == getattr(tls, name)
    assert ssl.PROTOCOL_TLS_CLIENT == 0 and ssl.PROTOCOL_TLS_SERVER == 1
    assert ssl.tls is tls and callable(ssl.wrap_socket)
    assert ssl.SSLContext is not tls.SSLContext
    assert not hasattr(ssl, "SSLError")


def test_two_modules_share_nothing() -> None:
    first, second = tls_module(), tls_module()
    assert first.SSLContext is not second.SSLContext
    assert ssl_module(first).SSLContext is not ssl_module(first).SSLContext


# -- contexts --------------------------------------------------------------------------------------
def test_tls_client_context_defaults_to_cert_required_and_server_to_cert_none(
    tls: types.ModuleType,
) -> None:
    assert tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).verify_mode == tls.CERT_REQUIRED
    assert tls.SSLContext(tls.PROTOCOL_TLS_SERVER).verify_mode == tls.CERT_NONE


def test_ssl_context_defaults_clients_to_cert_none(ssl: types.ModuleType) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    assert context.verify_mode == ssl.CERT_NONE
    context.verify_mode = ssl.CERT_REQUIRED
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_sslcontext_takes_one_positional_int(tls: types.ModuleType) -> None:
    for arguments, keywords in (((), {}), ((0, 1), {}), ((), {"protocol": 0})):
        with pytest.raises(TypeError):
            tls.SSLContext(*arguments, **keywords)
    with pytest.raises(TypeError):
        tls.SSLContext("0")


def test_context_attributes_are_fixed(tls: types.ModuleType) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    assert context.verify_callback is None
    context.verify_callback = print
    assert context.verify_callback is print
    with pytest.raises(AttributeError):
        context.check_hostname = False  # MicroPython has no such attribute
    with pytest.raises(TypeError):
        context.verify_mode = "2"


def test_cert_required_client_without_server_hostname_is_a_valueerror(
    tls: types.ModuleType,
) -> None:
    client, _ = stream_pair()
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ValueError, match=r"^CERT_REQUIRED requires server_hostname$"):
        context.wrap_socket(client)
    assert client.writes == []  # nothing was sent: the check comes before the handshake


def test_wrap_socket_needs_the_stream_protocol(tls: types.ModuleType) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    with pytest.raises(OSError, match="stream operation not supported"):
        context.wrap_socket(object(), server_side=True)


def test_wrap_socket_options_are_keyword_only(tls: types.ModuleType) -> None:
    client, _ = stream_pair()
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    with pytest.raises(TypeError):
        context.wrap_socket(client, False)
    with pytest.raises(TypeError):
        context.wrap_socket(client, server_hostname=b"peer.sim")


# -- cipher suites ---------------------------------------------------------------------------------
def test_get_ciphers_lists_mbedtls_names(tls: types.ModuleType) -> None:
    ciphers = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).get_ciphers()
    assert "TLS-RSA-WITH-AES-256-CBC-SHA256" in ciphers  # sslcontext_server_client_ciphers.py
    assert "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" in ciphers
    assert all(name.startswith("TLS-") for name in ciphers)
    assert len(set(ciphers)) == len(ciphers) > 10


def test_set_ciphers_accepts_a_list_or_tuple_of_known_names(tls: types.ModuleType) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(["TLS-RSA-WITH-AES-256-CBC-SHA256"])
    context.set_ciphers(("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",))


@pytest.mark.parametrize(
    "argument", ["TLS-RSA-WITH-AES-256-CBC-SHA256", [], ["FOOBAR"], ["TLS-RSA-WITH-NULL-MD5"]]
)
def test_set_ciphers_rejects_anything_else_with_bad_config(
    tls: types.ModuleType, argument: object
) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    with pytest.raises(OSError) as raised:
        context.set_ciphers(argument)
    assert raised.value.args == BAD_CONFIG
    assert str(raised.value) == "(-24192, 'MBEDTLS_ERR_SSL_BAD_CONFIG')"  # MicroPython's print


# -- certificates and keys -------------------------------------------------------------------------
def test_load_cert_chain_takes_pem_and_der(tls: types.ModuleType, pki: PKI) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(read_cert("server.pem"), read_cert("server.key"))  # PEM, PKCS#8
    context.load_cert_chain(read_cert("server.pem").decode(), read_cert("server.key").decode())
    cert_der = _der(pki.other_server_pem)
    context.load_cert_chain(cert_der, pki.ec_key_der_sec1)  # DER certificate, SEC1 DER key
    context.load_cert_chain(bytearray(cert_der), pki.ec_key_der_pkcs8)  # PKCS#8 DER key
    context.load_cert_chain(_der(pki.rsa_pem), pki.rsa_key_der)  # PKCS#1 DER RSA key


def test_load_cert_chain_reports_a_bad_key_first(tls: types.ModuleType) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match=r"^invalid key$"):
        context.load_cert_chain(read_cert("server.pem"), b"not a key")
    with pytest.raises(ValueError, match=r"^invalid key$"):
        context.load_cert_chain(b"not a cert", b"not a key")  # key checked before the cert
    with pytest.raises(ValueError, match=r"^invalid cert$"):
        context.load_cert_chain(b"\x30\x03\x02\x01\x00", read_cert("server.key"))
    with pytest.raises(TypeError):
        context.load_cert_chain(read_cert("server.pem"), None)


def test_load_cert_chain_with_a_key_of_another_certificate_is_an_invalid_key(
    tls: types.ModuleType, pki: PKI
) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match=r"^invalid key$"):
        context.load_cert_chain(read_cert("server.pem"), pki.other_server_key)


def test_load_verify_locations_takes_der_pem_and_str(tls: types.ModuleType) -> None:
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(read_cert("ca.der"))
    context.load_verify_locations(read_cert("ca.pem"))
    context.load_verify_locations(read_cert("ca.pem").decode())
    for bad in (b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(ValueError, match=r"^invalid cert$"):
            context.load_verify_locations(bad)


def test_ssl_context_reads_str_as_file_paths(ssl: types.ModuleType, tmp_path: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(SERVER_CERT), str(SERVER_KEY))
    context.load_cert_chain(read_cert("server.pem"), read_cert("server.key"))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=str(CA_PEM))
    client.load_verify_locations(str(CA_DER))  # cafile is the first parameter
    client.load_verify_locations(cadata=read_cert("ca.der"))
    with pytest.raises(OSError) as raised:
        client.load_verify_locations(cafile=str(tmp_path / "missing.pem"))
    assert raised.value.args == (2,)  # MicroPython's OSError(ENOENT)
    assert "TLS-RSA-WITH-AES-256-CBC-SHA256" in client.get_ciphers()
    client.set_ciphers(["TLS-RSA-WITH-AES-256-CBC-SHA256"])


def test_ssl_wrap_socket_rejects_a_name_and_its_old_form_together(ssl: types.ModuleType) -> None:
    client, _ = stream_pair()
    with pytest.raises(TypeError):
        ssl.wrap_socket(client, key=b"k", keyfile="k.pem")
    with pytest.raises(TypeError):
        ssl.wrap_socket(client, cadata=b"c", ca_certs="c.pem")


# -- the error forms -------------------------------------------------------------------------------
def test_tls_errors_look_like_micropython_oserrors() -> None:
    error = tls_errors.tls_error(-0x7780)
    assert isinstance(error, OSError)
    assert error.args == (-30592, "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE")
    assert error.errno == -30592
    assert str(error) == "(-30592, 'MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE')"
    assert type(error).__name__ == "OSError"
    assert tls_errors.tls_error(-0x7280).args == (-29312, "MBEDTLS_ERR_SSL_CONN_EOF")
    assert tls_errors.tls_error(-0x1234).args[1] == "UNKNOWN ERROR CODE (1234)"


def test_verify_texts_are_mbedtls_lines() -> None:
    assert tls_errors.verify_text(62) == (
        "\nThe certificate Common Name (CN) does not match with the expected CN\n"
    )
    assert tls_errors.verify_text(10) == "\nThe certificate validity has expired\n"
    assert tls_errors.verify_text(20) == (
        "\nThe certificate is not correctly signed by the trusted CA\n"
    )


def _der(pem: bytes) -> bytes:
    import ssl as cpython_ssl

    return cpython_ssl.PEM_cert_to_DER_cert(pem.decode())
