"""What happens to a script's TCP connections when it ends (``ScriptNetwork.finish``), on the
simulated network, in-process so that the peer's services can be read afterwards.

At the end every connection is closed as ``close()`` closes it (data delivered, then FIN),
while the stack keeps running; what cannot finish within ``--linger`` is reset and named on
stderr; Ctrl-C and ``machine.reset()`` reset at once.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pystack.cli import build_parser
from pystack.runtime import build_runtime
from pystack.runtime.network import ScriptNetwork
from pystack.runtime.script import run_script
from pystack.services.stream import DiscardService
from pystack.sim.world import SimulatedNetwork
from pystack.tcp.state import TCPState
from usocket.context import NetworkContext
from usocket.modules import socket_module


class Run:
    """One ``pystack run`` in-process: start, run the script (``finish`` at its end), inspect."""

    def __init__(self, tmp_path: Path, source: str, *options: str) -> None:
        self.script = tmp_path / "main.py"
        self.script.write_text(textwrap.dedent(source))
        self.arguments = build_parser().parse_args(["run", *options, str(self.script)])
        self.network = ScriptNetwork(self.arguments)
        self.providers = build_runtime(self.arguments)
        self.network.register(self.providers, self.network.start())
        simulation = self.network.simulation
        assert simulation is not None
        self.simulation: SimulatedNetwork = simulation
        self.peer_socket: Any = socket_module(NetworkContext(simulation.thread, simulation.peer))

    def run(self) -> int:
        return run_script(str(self.script), [], self.providers, on_exit=self.network.finish)

    def peer(self, read: Callable[[SimulatedNetwork], Any]) -> Any:
        return self.simulation.thread.call(lambda: read(self.simulation))

    def close(self) -> None:
        self.network.close()


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Run]]:
    monkeypatch.setenv("MICROPYPATH", ".frozen")
    monkeypatch.setenv("HOME", str(tmp_path))
    made: list[Run] = []
    yield made
    for run in made:
        run.close()


def _discard(simulation: SimulatedNetwork) -> DiscardService:
    return next(s for s in simulation.services if isinstance(s, DiscardService))


def test_an_upload_over_a_lossy_link_is_delivered_before_exit(
    runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: 50 KB with 10% loss, then the script ends without close()."""
    run = Run(
        tmp_path,
        """
        import socket
        s = socket.socket()
        s.connect(socket.getaddrinfo("peer.sim", 9)[0][-1])
        s.write(bytes(range(250)) * 200)
        print("handed over")
        """,
        "--impair",
        "loss=10%,seed=5",
        "--seed",
        "5",
    )
    runs.append(run)
    assert run.run() == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("handed over\n", "")
    # the peer got every byte and the FIN (the discard service closes once the FIN is read)
    assert run.peer(lambda sim: _discard(sim).bytes_in) == 50_000
    states = run.peer(lambda sim: [c.state for c in sim.peer.tcp.connections.values()])
    assert all(s in (TCPState.LAST_ACK, TCPState.CLOSED, TCPState.TIME_WAIT) for s in states)
    assert run.simulation.host.statistics()["counters"]["tcp.bytes_acked"] >= 50_000


def test_a_connection_the_peer_does_not_read_is_cut_after_the_linger(
    runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(
        tmp_path,
        """
        import socket
        s = socket.socket()
        s.connect(("10.0.0.1", 5000))
        s.write(b"x" * 400_000)
        print("handed over")
        """,
        "--linger",
        "0.05",
    )
    runs.append(run)
    silent = run.peer_socket.socket()  # listens and never accepts, so never reads
    silent.bind(("0.0.0.0", 5000))
    silent.listen(1)
    assert run.run() == 0
    out, err = capsys.readouterr()
    assert out == "handed over\n"
    match = re.fullmatch(
        r"pystack: exit: reset 1 connection \(could not finish\): "
        r"10\.0\.0\.2:\d+ -> 10\.0\.0\.1:5000 \((\d+) bytes not delivered, "
        r"no progress for 0\.05 s\)\n",
        err,
    )
    assert match, err
    received = run.peer(
        lambda sim: sum(len(c.receive_buffer) for c in sim.peer.tcp.connections.values())
    )
    assert int(match.group(1)) == 400_000 - received > 0
    silent.close()


def test_a_listening_socket_and_an_idle_connection_close_cleanly(
    runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(
        tmp_path,
        """
        import socket
        server = socket.socket()
        server.bind(("0.0.0.0", 8000))
        server.listen(2)
        c = socket.socket()
        c.connect(("10.0.0.1", 9))
        c.write(b"bye")
        """,
    )
    runs.append(run)
    assert run.run() == 0
    assert capsys.readouterr() == ("", "")
    host = run.simulation.host
    assert run.peer(lambda sim: list(host.tcp.listeners)) == []
    assert run.peer(lambda sim: _discard(sim).bytes_in) == 3
    assert run.peer(
        lambda sim: (
            {c.state for c in host.tcp.connections.values()}
            <= {TCPState.FIN_WAIT_2, TCPState.TIME_WAIT, TCPState.CLOSED}
        )
    )


def test_a_board_reset_resets_the_connections(
    runs: list[Run], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(
        tmp_path,
        """
        import socket, machine
        c = socket.socket()
        c.connect(("10.0.0.1", 9))
        c.write(b"x" * 10)
        machine.reset()
        """,
    )
    runs.append(run)
    assert run.run() == 0
    _out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == "pystack: machine.reset(): the board resets; the script ends"
    assert re.fullmatch(
        r"pystack: exit: reset 1 connection \(the script ended abruptly\): "
        r"10\.0\.0\.2:\d+ -> 10\.0\.0\.1:9 \(\d+ bytes not delivered\)",
        lines[1],
    ), err
    assert run.simulation.thread.wait_for(
        lambda: (
            not run.simulation.peer.tcp.connections
            or all(c.state is TCPState.CLOSED for c in run.simulation.peer.tcp.connections.values())
        ),
        5.0,
    )
