"""``pystack run`` end to end, in a subprocess, on small scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pystack.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _pystack_run(
    tmp_path: Path, source: str, *arguments: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "pystack", "run", *options, str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=tmp_path,
    )


def test_a_printing_script(tmp_path: Path) -> None:
    result = _pystack_run(
        tmp_path,
        """
        import time, errno, micropython
        print("hello from", __name__, time.ticks_diff(time.ticks_ms(), 0) >= 0, errno.EAGAIN)
        """,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "hello from __main__ True 11\n",
        "",
    )


def test_a_raising_script(tmp_path: Path) -> None:
    result = _pystack_run(tmp_path, "print('partial')\nraise ValueError('boom')\n")
    assert result.returncode == 1
    assert result.stdout == "partial\n"
    assert result.stderr == (
        "Traceback (most recent call last):\n"
        f'  File "{tmp_path / "script.py"}", line 2, in <module>\n'
        "ValueError: boom\n"
    )


def test_a_script_with_arguments_and_an_exit_status(tmp_path: Path) -> None:
    result = _pystack_run(
        tmp_path,
        "import sys\nprint(sys.argv[1:])\nsys.exit(int(sys.argv[-1]))\n",
        "--trace",
        "--link",
        "tun",
        "-x",
        "5",
        options=("--link", "sim", "--seed", "1"),
    )
    assert result.stdout == "['--trace', '--link', 'tun', '-x', '5']\n", result.stderr
    assert result.returncode == 5


def test_options_before_the_script_are_pystacks() -> None:
    arguments = build_parser().parse_args(
        ["run", "--link", "tap", "--seed", "3", "--trace", "s.py", "--seed", "-v", "--", "a"]
    )
    assert (arguments.link, arguments.seed, arguments.trace) == ("tap", 3, "packets")
    assert arguments.script == "s.py"
    assert arguments.arguments == ["--seed", "-v", "--", "a"]


def test_run_defaults() -> None:
    arguments = build_parser().parse_args(["run", "s.py"])
    assert (arguments.link, arguments.netns, arguments.dns, arguments.arguments) == (
        "sim",
        None,
        None,
        [],
    )


def test_a_script_importing_usocket_gets_the_lwip_socket_module(tmp_path: Path) -> None:
    result = _pystack_run(
        tmp_path,
        "import usocket, socket\n"
        "print(usocket is socket, socket.MSG_PEEK, socket.SO_REUSEADDR, hasattr(socket, 'IPPROTO_UDP'))\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True 1 4 False\n"


def test_a_script_importing_ssl_ussl_and_tls_gets_micropythons_tls_modules(tmp_path: Path) -> None:
    result = _pystack_run(
        tmp_path,
        "import ssl, ussl, tls\n"
        "print(ssl is ussl, ssl.CERT_REQUIRED, tls.PROTOCOL_TLS_SERVER, hasattr(ssl, 'SSLError'))\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True 2 1 False\n"


INET_SCRIPT = """\
import socket
print(hasattr(socket, "inet_pton"), hasattr(socket, "inet_ntop"))
if hasattr(socket, "inet_pton"):
    print(socket.inet_pton(socket.AF_INET, "10.0.0.1"), socket.inet_ntop(socket.AF_INET, b"\\x7f\\0\\0\\1"))
    try:
        socket.inet_pton(socket.AF_INET, "no.such")
    except OSError as e:
        print(e.errno)
"""


def test_inet_pton_is_absent_by_default_as_on_lwip_ports(tmp_path: Path) -> None:
    result = _pystack_run(tmp_path, INET_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False False\n"


def test_socket_extensions_add_the_unix_ports_inet_pton_and_inet_ntop(tmp_path: Path) -> None:
    result = _pystack_run(tmp_path, INET_SCRIPT, options=("--socket-extensions",))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True True\nb'\\n\\x00\\x00\\x01' 127.0.0.1\n22\n"


def test_dns_option_chooses_the_server_getaddrinfo_asks(tmp_path: Path) -> None:
    source = """\
    import socket
    try:
        print(socket.getaddrinfo("peer.sim", 7)[0][-1])
    except OSError as e:
        print("error", e.args[0])
    """
    assert _pystack_run(tmp_path, source).stdout == "('10.0.0.1', 7)\n"
    # Nobody answers DNS at 10.0.0.1's neighbour: lwIP's callback failure, -2.
    assert _pystack_run(tmp_path, source, options=("--dns", "10.0.0.3")).stdout == "error -2\n"
