"""Run a scripted-peer test from a test function: ``run(script_text, **options)``.

The text may be indented like the test's own code (it is dedented). Options are those of
``pystack.script.run_script``: ``config_overrides``, ``seed``, ``peer_isn_offset``,
``tcp_settings``. A failing script raises ``ScriptFailure`` (an ``AssertionError``) whose
message shows the line, what was expected, what pystack sent and the last events.
"""

from __future__ import annotations

import textwrap
from typing import Any

from pystack.script import ScriptResult, run_script


def run(script_text: str, **options: Any) -> ScriptResult:
    return run_script(textwrap.dedent(script_text), **options)
