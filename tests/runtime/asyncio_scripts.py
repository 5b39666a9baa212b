"""Helpers for the asyncio tests: run a MicroPython script with pystack's asyncio in-process.

``AsyncioScripts`` starts the network ``pystack run`` starts by default (``ScriptNetwork`` on
the simulated network: script host 10.0.0.2 with its loopback 127.0.0.1; the peer 10.0.0.1 with
echo 7, discard 9, daytime 13, chargen 19, TLS echo 443...) and runs each script in a fresh
``ScriptWorld`` with the modules ``pystack run`` registers, plus ``asyncio``/``uasyncio`` from
``pystack.runtime.masyncio`` registered the way ``pystack run`` will (``register_asyncio``).

``run(source)`` runs the script on **virtual time** by default: the world's clock is a
``ManualClock`` that the event loop moves itself (masyncio/ticks.py), so orders that depend on
several steps falling within one millisecond are deterministic, and sleeps with no I/O pending
take no real time. ``run(source, real_time=True)`` uses the real clock, as ``pystack run
--real-time`` does. The network is always on real time (``--real-time``): the ``ManualClock`` is
the loop's own, and the virtual time of ``pystack run``'s default is tested through the command
(tests/runtime/test_virtual_time.py).
``ticks_offset`` starts ``time.ticks_ms()`` there (to cross the ticks wrap-around).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from pystack.cli import build_parser
from pystack.clock import Clock, ManualClock
from pystack.runtime import build_runtime
from pystack.runtime.masyncio import asyncio_module
from pystack.runtime.micropython_module import make_time_module
from pystack.runtime.network import ScriptNetwork
from pystack.runtime.providers import ModuleKind, ModuleProviders
from pystack.runtime.script import run_script
from pystack.runtime.world import ScriptWorld


@dataclass(frozen=True)
class Outcome:
    status: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def register_asyncio(providers: ModuleProviders) -> None:
    """What ``pystack run`` registers: asyncio as a frozen module, uasyncio its alias."""
    providers.register("asyncio", asyncio_module, ModuleKind.FROZEN, ("uasyncio",))


class AsyncioScripts:
    def __init__(self, directory: Path, capture: pytest.CaptureFixture[str]) -> None:
        self.directory = directory
        self.capture = capture
        self.arguments = build_parser().parse_args(["run", "--seed", "7", "--real-time", "main.py"])
        self.network = ScriptNetwork(self.arguments)
        self.context = self.network.start()
        self.environ = {"MICROPYPATH": ".frozen", "HOME": str(directory / "home")}

    def providers(self, ticks_offset: int = 0) -> ModuleProviders:
        providers = build_runtime(self.arguments)
        self.network.register(providers, self.context)
        register_asyncio(providers)
        if ticks_offset:

            def time_factory(world: ScriptWorld) -> ModuleType:
                return make_time_module(world, ticks_offset=ticks_offset)

            providers.register("time", time_factory, ModuleKind.EXTENSIBLE)
        return providers

    def run(
        self,
        source: str,
        *arguments: str,
        real_time: bool = False,
        ticks_offset: int = 0,
        name: str = "main.py",
    ) -> Outcome:
        script = self.directory / name
        script.write_text(textwrap.dedent(source))
        clock: Clock | None = None if real_time else ManualClock(0.0)
        self.capture.readouterr()
        status = run_script(
            str(script),
            list(arguments),
            self.providers(ticks_offset),
            environ=self.environ,
            clock=clock,
        )
        captured = self.capture.readouterr()
        return Outcome(status, captured.out, captured.err)

    def close(self) -> None:
        self.network.close()
