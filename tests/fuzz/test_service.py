"""``pystack fuzz --target kernel`` (pystack/fuzz/service.py): a kernel service, perturbed.

Without a kernel: the mutation hooks do what their table says, plans become scripts that parse,
and the campaign is reproducible from its seed. With the kernel (``kernel`` fixture): a short
run against the built-in echo server finds nothing and leaves no namespace; a planted broken
server (it stops accepting after two connections, ``broken_echo_server.py``) is reported and
the case is saved as a script; the command line reports a campaign and its exit status.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pystack.fuzz.service import (
    HOOKS,
    Planned,
    ServiceCampaign,
    ServiceSettings,
    base_plan,
    case_lines,
    hook_ordering,
    hook_rst_fin,
    hook_segmentation,
)
from pystack.netns import NAME_PREFIX, list_namespaces
from pystack.script.notation import parse_script

BROKEN_SERVER = Path(__file__).with_name("broken_echo_server.py")


def _covered(plan: list[Planned]) -> set[int]:
    return {seq for s in plan if s.length for seq in range(s.seq, s.seq + s.length)}


def test_the_base_plan_is_a_whole_exchange_and_every_hooked_case_parses() -> None:
    rng = random.Random(1)
    plan = base_plan(rng, "echo")
    assert plan[0].flags == "S" and plan[1].flags == "." and plan[-2].flags == "F."
    size = sum(s.length for s in plan)
    assert plan[-3].ack == 1 + size  # the echo is ACKed
    campaign = ServiceCampaign(ServiceSettings())
    for _ in range(200):
        planned, _ = campaign.plan(rng)
        parse_script("\n".join(case_lines(planned, 7, 20000)))


def test_segmentation_keeps_the_bytes_and_ordering_keeps_the_segments() -> None:
    rng = random.Random(2)
    plan = base_plan(random.Random(5), "echo")
    while sum(s.length for s in plan) < 100:
        plan = base_plan(rng, "echo")
    for _ in range(20):
        cut = hook_segmentation(rng, plan)
        assert _covered(cut) == _covered(plan) and len(cut) > len(plan)
        swapped = hook_ordering(rng, plan)
        assert sorted(map(repr, swapped)) != [] and {(s.seq, s.flags) for s in swapped} == {
            (s.seq, s.flags) for s in plan
        }
        injected = hook_rst_fin(rng, plan)
        assert len(injected) == len(plan) + 1
        assert any(s.flags in ("R", "F.") for s in injected[2:])


def test_the_same_seed_plans_the_same_cases_and_unknown_hooks_are_refused() -> None:
    def plans(seed: int) -> list[list[Planned]]:
        rng, campaign = random.Random(seed), ServiceCampaign(ServiceSettings())
        return [campaign.plan(rng)[0] for _ in range(30)]

    assert plans(9) == plans(9) and plans(9) != plans(10)
    with pytest.raises(ValueError, match="unknown hook 'nope'"):
        ServiceCampaign(ServiceSettings(), hooks=["nope"])
    assert set(HOOKS) == {
        "fields", "options", "segmentation", "ordering", "timing", "window", "rst_fin",
    }  # fmt: skip


def test_bad_options_are_one_line_and_exit_2() -> None:
    for arguments, message in (
        (["--target", "kernel", "--hooks", "nope"], "--hooks: unknown nope"),
        (["--target", "kernel", "--port", "0"], "--port must be"),
        (["--differential", "--target", "kernel"], "say what to fuzz: --self, --differential"),
        (["--target", "kernel", "--replay", "x.pkt"], "--replay goes with --differential"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pystack", "fuzz", *arguments],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


# the kernel -------------------------------------------------------------------------------------
def _my_namespaces() -> list[str]:
    mine = f"{NAME_PREFIX}{os.getpid()}-"
    return [name for name in list_namespaces() if name.startswith(mine)]


def test_a_short_run_against_the_built_in_echo_finds_nothing(kernel: None, tmp_path: Path) -> None:
    settings = ServiceSettings(port=7, seconds=60.0, seed=3, cases=12, out=str(tmp_path))
    result = ServiceCampaign(settings).run()
    assert result.cases == 12 and result.packets > 12 * 4
    assert not result.findings, result.summary()
    assert result.namespace and result.namespace not in list_namespaces()
    assert not _my_namespaces()
    for saved in tmp_path.iterdir():  # interesting cases only, each a script that parses
        text = saved.read_text()
        assert saved.name.startswith("kernel-interesting-") and "serve echo 7" in text
        parse_script(text)


def test_a_planted_broken_server_is_reported_and_its_case_saved(
    kernel: None, tmp_path: Path
) -> None:
    settings = ServiceSettings(
        port=7070,
        seconds=60.0,
        seed=1,
        cases=10,
        service="command",
        command=f"{sys.executable} {BROKEN_SERVER} 7070 2",
        out=str(tmp_path),
    )
    result = ServiceCampaign(settings).run()
    unhealthy = [finding for finding in result.findings if finding.kind == "unhealthy"]
    assert unhealthy, result.summary()
    assert "a fresh connection to port 7070 failed" in unhealthy[0].what
    assert result.cases < 10  # the campaign stops at a service that is down
    saved = [path for path in tmp_path.iterdir() if "unhealthy" in path.name]
    assert len(saved) == 1
    text = saved[0].read_text()
    assert "# start the service first, in the namespace:" in text
    parse_script(text)
    assert not _my_namespaces()


def test_the_command_line_runs_a_campaign_and_says_what_it_did(kernel: None) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pystack", "fuzz", "--target", "kernel", "--seconds", "20",
         "--cases", "3", "--seed", "4", "--serve", "discard", "--port", "9"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fuzz --target kernel, port 9 (discard), seed 4: 3 cases" in done.stdout


def test_a_custom_hook_through_the_python_api(kernel: None, tmp_path: Path) -> None:
    """The docs/fuzzing.md example's shape: a hook of one's own beside a built-in one."""
    seen: list[int] = []

    def urgent_everywhere(rng: random.Random, plan: list[Planned]) -> list[Planned]:
        seen.append(len(plan))
        return [replace(s, flags="U" + s.flags) if s.length else s for s in plan]

    settings = ServiceSettings(port=7, seconds=60.0, seed=2, cases=4, mutations=1)
    campaign = ServiceCampaign(settings, hooks=[urgent_everywhere, HOOKS["segmentation"]])
    assert [name for name, _ in campaign.hooks] == ["urgent_everywhere", "segmentation"]
    result = campaign.run()
    assert result.cases == 4 and not result.findings, result.summary()
    assert seen  # the custom hook ran on some of the cases (seed 2 picks it)


def test_sigterm_stops_the_campaign_and_removes_its_namespace(kernel: None) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pystack", "fuzz", "--target", "kernel", "--seconds", "60",
         "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    prefix = f"{NAME_PREFIX}{process.pid}-"
    try:
        deadline = time.monotonic() + 30
        while not any(name.startswith(prefix) for name in list_namespaces()):
            assert time.monotonic() < deadline and process.poll() is None, "never started"
            time.sleep(0.05)  # polling for the namespace to appear, bounded by the deadline
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "(interrupted)" in out
    assert not [name for name in list_namespaces() if name.startswith(prefix)]
