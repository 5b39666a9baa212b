"""The ``pystack`` command's edges (issue 15 item 6): every bad option is one line and status 2,
checked before anything starts (so none of these needs root or creates anything); ``--version``;
``run``'s usage. The signal and privilege cases are kernel tests (tests/kernel/test_kernel_cli.py).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from pystack.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
NS = ["--netns", "pystack-never-created"]  # refused before the namespace would be made

BAD_OPTIONS = [
    # (command line, what the one line must name)
    (["up", *NS, "--pcap", "/nonexistent/dir/x.pcap"], "--pcap: /nonexistent/dir: no such"),
    (["up", *NS, "--pcap", "/"], "--pcap: / is a directory"),
    (["up", *NS, "--pcap", ""], "--pcap: the file name is empty"),
    (["up", *NS, "--hosts", "/nonexistent/hosts"], "--hosts: /nonexistent/hosts: no such file"),
    (["up", *NS, "--impair", ""], "--impair: the spec is empty"),
    (["up", *NS, "--impair", " , "], "--impair: the spec is empty"),
    (["up", *NS, "--impair", "loss=101%"], "--impair"),
    (["up", *NS, "--impair", "delay=99999999s"], "time must be 0..3600 seconds"),
    (["up", *NS, "--impair", "jitter=2h"], "--impair"),
    (["up", *NS, "--impair", "rate=1bit"], "must be 100..1e+12 bits per second"),
    (["up", *NS, "--impair", "rate=5000gbit"], "bits per second"),
    (["up", *NS, "--impair", "mtu=10"], "mtu=10: must be 68..65535"),
    (["up", *NS, "--impair", "mtu=70000"], "must be 68..65535"),
    (["up", *NS, "--impair", "queue=99999999"], "must be 1..1000000"),
    (["up", *NS, "--impair", "delay=out:tcp:1:7200s"], "must be 0..3600 seconds"),
    (["up", *NS, "--impair", "drop=out:tcp:9999999999"], "packet number"),
    (["up", *NS, "--addr", "10.0.0.2"], "--addr: give the prefix length too"),
    (["up", *NS, "--addr", "10.0.0.2/33"], "--addr: bad prefix length"),
    (["up", *NS, "--addr", "10.0.0.2/32"], "--addr: a /32 subnet has no room for the peer"),
    (["up", *NS, "--addr", "10.0.0.0/24"], "--addr: 10.0.0.0 is the network address"),
    (["up", *NS, "--addr", "224.0.0.1/24"], "--addr: 224.0.0.1 is not a host address"),
    (["up", *NS, "--peer", "10.0.0.255"], "--peer: 10.0.0.255 is the broadcast address"),
    (["up", *NS, "--peer", "10.0.0.0"], "--peer: 10.0.0.0 is the network address"),
    (["up", *NS, "--peer", "255.255.255.255"], "--peer: 255.255.255.255 is not in"),
    (["up", *NS, "--peer", "10.9.0.1"], "--peer: 10.9.0.1 is not in --addr's subnet 10.0.0.0/24"),
    (["up", *NS, "--peer", "10.0.0.2"], "--peer: must differ from --addr"),
    (["up", *NS, "--peer", "nonsense"], "--peer: 'nonsense' is not an IPv4 address"),
    (["up", *NS, "--addr", "192.168.1.2/24"], "(the default: give --peer too)"),
    (["up", *NS, "--duration", "-1"], "--duration: must be more than 0"),
    (["up", *NS, "--duration", "0"], "--duration: must be more than 0"),
    (["up", *NS, "--duration", "nan"], "--duration: must be more than 0"),
    (["up", *NS, "--duration", "inf"], "--duration: must be more than 0"),
    (["up", *NS, "--duration", "soon"], "--duration: 'soon' is not a number of seconds"),
    (["up", *NS, "--mtu", "40"], "--mtu: must be 68..65535, not 40"),
    (["up"], "up: give --netns NAME"),
    (["run"], "run: give the SCRIPT to run"),
    (["run", "--impair", "", "x.py"], "--impair: the spec is empty"),
    (["run", "--addr", "10.0.0.2", "x.py"], "--addr: give the prefix length too"),
    (["run", "--peer", "10.0.0.255", "x.py"], "--peer: 10.0.0.255 is the broadcast address"),
    (["run", "--peer", "10.1.0.1", "x.py"], "--peer: 10.1.0.1 is not in --addr's subnet"),
    (["run", "--pcap", "/nonexistent/dir/x.pcap", "x.py"], "--pcap: /nonexistent/dir: no such"),
    (
        ["run", "--record", "/nonexistent/dir/r.jsonl", "x.py"],
        "--record: /nonexistent/dir: no such",
    ),
    (["up", *NS, "--record", "/nonexistent/dir/r.jsonl"], "--record: /nonexistent/dir: no such"),
    (["demo", "--record", "/nonexistent/dir/r.jsonl"], "--record: /nonexistent/dir: no such"),
    (["run", "--dns", "10.0.0.300", "x.py"], "--dns: '10.0.0.300' is not an IPv4 address"),
    (["run", "--link", "tun", *NS, "--addr", "10.0.0.2", "x.py"], "--addr"),
    (["run", "--link", "tap", "x.py"], "--link tap needs --netns NAME"),
]


@pytest.mark.parametrize(
    ("argv", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_a_bad_option_is_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pystack: "), captured.err
    assert message in lines[0], lines[0]


def test_good_addresses_pass_the_checks() -> None:
    """The checks refuse only what cannot work: a /31 pair, DHCP, another subnet with its peer."""
    from pystack.cli import check_options

    for argv in (
        ["up", *NS, "--addr", "10.0.0.2/31", "--peer", "10.0.0.3"],
        ["up", *NS, "--addr", "dhcp"],
        ["up", *NS, "--addr", "192.168.7.20/24", "--peer", "192.168.7.1", "--duration", "0.5"],
        ["run", "--addr", "172.16.0.9/16", "--peer", "172.16.200.1", "x.py", "--addr", "junk"],
        ["run", "x.py"],
        ["demo", "--quiet"],
    ):
        assert check_options(build_parser().parse_args(argv)) is None, argv


def test_a_bad_option_from_the_command_line_has_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "up", *NS, "--pcap", "/nonexistent/dir/x.pcap"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr == "pystack: --pcap: /nonexistent/dir: no such directory\n"


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    expected = importlib.metadata.version("pystack-net")
    assert capsys.readouterr().out == f"pystack {expected}\n"


def test_run_usage_shows_args_as_optional() -> None:
    parser = build_parser()
    run = next(
        action.choices["run"]
        for action in parser._actions
        if isinstance(action.choices, dict) and "run" in action.choices
    )
    usage = " ".join(run.format_usage().split())
    assert usage.endswith("SCRIPT [ARGS ...]"), usage
    arguments = parser.parse_args(["run", "s.py"])
    assert (arguments.script, arguments.arguments) == ("s.py", [])
    arguments = parser.parse_args(["run", "--trace", "s.py", "--trace", "-x"])
    assert (arguments.script, arguments.arguments) == ("s.py", ["--trace", "-x"])


def test_readme_names_every_subcommand() -> None:
    parser = build_parser()
    commands = next(
        action.choices
        for action in parser._actions
        if isinstance(action.choices, dict) and "run" in action.choices
    )
    readme = (ROOT / "README.md").read_text()
    for name in commands:
        assert f"pystack {name}" in readme, name
