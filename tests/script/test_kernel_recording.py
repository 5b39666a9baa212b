"""The kernel target's lines for the fuzzers: ``ignore outbound``, ``serve echo``, ``read upto``.

``ignore outbound`` records the kernel's packets instead of matching them (and still learns its
ISN, so ``<`` lines count from it); ``serve echo PORT`` runs the echo server of
``kernel_service.py`` inside the namespace; ``read upto N`` never waits. Kernel tests: the
``kernel`` fixture skips them without root and fails them under PYSTACK_REQUIRE_KERNEL=1.
"""

from __future__ import annotations

import textwrap

from pystack.script.kernel import KernelSandbox, KernelScriptRunner
from pystack.script.notation import parse_script

ECHO_CASE = """
    ignore outbound
    serve echo 7
    ports 20001 7
    0 < S 0:0(0) win 65535 <mss 1460>
    +0.05 < . 1:1(0) ack 1 win 65535
    +0.01 < P. 1:11(10) ack 1 win 65535
    +0.1 < . 11:11(0) ack 11 win 65535
    +0.05 < R 11:11(0) win 0
"""


def _run(text: str) -> tuple[list[str], KernelScriptRunner]:
    lines = parse_script(textwrap.dedent(text))
    with KernelSandbox() as sandbox:
        runner = KernelScriptRunner(lines, sandbox, tolerance=0.5)
        try:
            runner.run()
        finally:
            runner.stop_services()
        return [runner._show(frame) for _, frame in runner.outbound], runner


def test_ignore_outbound_records_and_serve_echo_answers_inside_the_namespace(
    kernel: None,
) -> None:
    sent, _ = _run(ECHO_CASE)
    assert sent[0].startswith("> S. 0:0(0) ack 1 ")  # numbered from the kernel's own ISN
    echoed = [packet for packet in sent if "1:11(10)" in packet]
    assert echoed, sent  # the echo server sent the 10 bytes back
    assert "ack 11" in echoed[0]


def test_read_upto_takes_what_is_there_without_waiting(kernel: None) -> None:
    sent, runner = _run("""
        ignore outbound
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0.05 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0.05 read upto 100
        +0.05 < P. 1:4(3) ack 1 win 65535
        +0.05 read upto 100
        +0 read upto 100
    """)
    assert sent[0].startswith("> S. 0:0(0) ack 1")
    assert runner.application.read_position == 4  # 0 bytes, then the 3 there, then 0
    assert not any("waits" in entry.note for entry in runner.events)  # none waited for 100
