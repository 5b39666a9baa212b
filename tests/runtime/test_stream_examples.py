"""The TCP examples of tools/examples on the simulated network.

Server examples run in-process on the script's host (10.0.0.2) while clients on the simulated
peer (10.0.0.1) talk to them through a usocket module of the peer's own stack: the test's
clients are MicroPython-style socket code too. Client examples run as ``pystack run`` would run
them, against the peer's services.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pystack.cli import build_parser
from pystack.runtime import build_runtime
from pystack.runtime.network import ScriptNetwork
from pystack.runtime.script import run_script
from usocket.context import NetworkContext
from usocket.modules import socket_module

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tools" / "examples"
HOST = "10.0.0.2"
WAIT = 10.0


def pystack_run(tmp_path: Path, example: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "pystack", "run", str(EXAMPLES / example), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=tmp_path,
    )


class ServedExample:
    """Runs a server example in-process; ``peer_socket`` is the peer stack's usocket module."""

    def __init__(self, example: str, *arguments: str) -> None:
        self.script = str(EXAMPLES / example)
        self.arguments = build_parser().parse_args(
            ["run", "--seed", "3", "--real-time", self.script, *arguments]
        )
        self.network = ScriptNetwork(self.arguments)
        self.providers = build_runtime(self.arguments)
        self.network.register(self.providers, self.network.start())
        simulation = self.network.simulation
        assert simulation is not None
        self.simulation = simulation
        self.peer_socket: Any = socket_module(NetworkContext(simulation.thread, simulation.peer))
        self.failures: list[str] = []

    def listening(self, port: int) -> bool:
        host = self.simulation.host
        return self.simulation.thread.wait_for(
            lambda: any(p == port for _a, p in host.tcp.listeners), WAIT
        )

    def run(self, clients: Callable[[ServedExample], None]) -> int:
        def guarded() -> None:
            try:
                clients(self)
            except Exception as error:  # reported by the test, not lost in a thread
                self.failures.append(repr(error))

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        status = run_script(self.script, self.arguments.arguments, self.providers)
        thread.join(WAIT)
        return status

    def close(self) -> None:
        self.network.close()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[ServedExample]]:
    monkeypatch.setenv("MICROPYPATH", ".frozen")
    monkeypatch.setenv("HOME", str(tmp_path))
    examples: list[ServedExample] = []
    yield examples
    for example in examples:
        example.close()


def _get(socket: Any, path: str) -> bytes:
    s = socket.socket()
    s.settimeout(WAIT)
    s.connect((HOST, 8080))
    s.write(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
    reply: bytes = s.read()
    s.close()
    return reply


def test_web_server_answers_peer_clients_then_stops(
    served: list[ServedExample], capsys: pytest.CaptureFixture[str]
) -> None:
    example = ServedExample("web_server.py", "8080", "3", "5")
    served.append(example)
    replies: list[bytes] = []

    def clients(example: ServedExample) -> None:
        assert example.listening(8080)
        for path in ("/", "/", "/nothing"):
            replies.append(_get(example.peer_socket, path))

    status = example.run(clients)
    assert not example.failures and status == 0, example.failures
    assert replies[0].startswith(b"HTTP/1.0 200 OK\r\n") and b"Request number 1." in replies[0]
    assert b"Request number 2." in replies[1]
    assert replies[2].startswith(b"HTTP/1.0 404 Not Found\r\n") and replies[2].endswith(
        b"not found\n"
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "listening on port 8080" and lines[-1] == "served 3 requests"
    assert re.fullmatch(r"served / to \('10\.0\.0\.1', \d+\) 200 OK", lines[1]), lines
    assert re.fullmatch(r"served /nothing to \('10\.0\.0\.1', \d+\) 404 Not Found", lines[3])


def test_poll_echo_server_serves_ten_peer_clients_at_once(
    served: list[ServedExample], capsys: pytest.CaptureFixture[str]
) -> None:
    example = ServedExample("tcp_echo_poll_server.py", "7007", "10", "5")
    served.append(example)
    echoed: list[bytes] = []

    def clients(example: ServedExample) -> None:
        assert example.listening(7007)
        socket = example.peer_socket
        sockets = []
        for _ in range(10):
            s = socket.socket()
            s.settimeout(WAIT)
            s.connect((HOST, 7007))
            sockets.append(s)
        for number, s in enumerate(sockets):
            s.write(b"%d " % number * 1000)
        for number, s in enumerate(sockets):
            echoed.append(s.read(len(b"%d " % number * 1000)))
        for s in sockets:
            s.close()

    status = example.run(clients)
    assert not example.failures and status == 0, example.failures
    assert echoed == [b"%d " % n * 1000 for n in range(10)]
    total = sum(len(e) for e in echoed)
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"served 10 clients, at most 10 at once, echoed {total} bytes"
    )


@pytest.mark.parametrize(
    ("example", "arguments", "last_line"),
    [
        ("web_server.py", ("8080", "1", "0.2"), "served 0 requests"),
        (
            "tcp_echo_poll_server.py",
            ("7007", "1", "0.2"),
            "served 0 clients, at most 0 at once, echoed 0 bytes",
        ),
    ],
)
def test_server_examples_alone_on_the_simulator_stop_when_nobody_comes(
    tmp_path: Path, example: str, arguments: tuple[str, ...], last_line: str
) -> None:
    result = pystack_run(tmp_path, example, *arguments)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == last_line


def test_http_get_example_fetches_json_and_bytes_from_the_peer(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "http_get.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["connecting to example.com ('10.0.0.1', 80)", "HTTP/1.1 200 OK"]
    assert "Content-Type: application/json" in lines and '  "server": "pystack",' in lines
    chunked = pystack_run(tmp_path, "http_get.py", "http://peer.sim/chunked/3000")
    assert "Transfer-Encoding: chunked" in chunked.stdout.splitlines()
    assert chunked.stdout.splitlines()[-1] == "3000 bytes of body"


def test_http_get_traced_shows_dns_the_handshake_the_data_and_the_close(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "run", "--trace", str(EXAMPLES / "http_get.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MICROPYPATH": ".frozen"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    trace = result.stderr
    steps = [
        "A? example.com.",
        "CLOSED -> SYN-SENT (active open)",
        "SYN-SENT -> ESTABLISHED",
        "> 10.0.0.1.80: Flags [P.]",
        "ESTABLISHED -> CLOSE-WAIT (FIN received)",
        "CLOSE-WAIT -> LAST-ACK (close)",
        "LAST-ACK -> CLOSED",
    ]
    positions = [trace.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), trace


def test_tls_client_example_verifies_the_peer_and_gets_its_lines_back(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "tls_client.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("connected to peer.sim ('10.0.0.1', 443) with ('TLS-ECDHE-")
    assert lines[-1] == "echoed 3 of 3 lines"


def test_asyncio_echo_server_example_serves_its_own_self_test_client(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "asyncio_echo_server.py", "7008", "1", "5", "--self-test")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "asyncio echo server on port 7008"
    assert re.fullmatch(r"client 1 from \('127\.0\.0\.1', \d+\)", lines[1])
    assert lines[2:] == [
        "self-test got b'line 0\\n'",
        "self-test got b'line 1\\n'",
        "self-test got b'line 2\\n'",
        "served 1 clients, echoed 21 bytes",
    ]


def test_asyncio_echo_server_example_alone_stops_when_idle(tmp_path: Path) -> None:
    result = pystack_run(tmp_path, "asyncio_echo_server.py", "7008", "1", "0.2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == ["idle for 200 ms", "served 0 clients, echoed 0 bytes"]
