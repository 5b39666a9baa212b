"""The script corpus (scripts/): every ``.pkt`` file passes on pystack, has its header, and the
corpus keeps its size and its topics.

Each script runs in-process on virtual time through ``run_script``, with the stack's default
settings unless its ``set`` lines change them, so the whole corpus takes a few seconds. The
protocols and their topics are ``TOPICS`` (tcp, udp, icmp), each topic with at least
``MINIMUM_PER_TOPIC`` scripts. The test id of a script is its path under
scripts/ (``tcp/handshake/passive_open.pkt``): ``pytest tests/script/test_corpus.py -k
passive_open`` runs one. scripts/README.md describes the layout and the header.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pystack.script import ScriptFailure, parse_script, run_script

CORPUS = Path(__file__).resolve().parents[2] / "scripts"
SCRIPTS = sorted(CORPUS.rglob("*.pkt"))
TCP_TOPICS = ("handshake", "data", "loss", "close", "rfc5961", "options", "icmp", "malformed")
UDP_TOPICS = ("exchange", "unreachable", "ports")
ICMP_TOPICS = ("echo", "errors")
TOPICS = {"tcp": TCP_TOPICS, "udp": UDP_TOPICS, "icmp": ICMP_TOPICS}
MINIMUM_SCRIPTS = 180
MINIMUM_PER_TOPIC = 4
# Line 2 of a header: where the behaviour is required (rfc) or why pystack chose it (policy).
_SOURCE = re.compile(r"# (rfc|policy): \S")
_RFC_NUMBER = re.compile(r"\bRFC \d+")


def script_id(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def header_problem(text: str) -> str | None:
    """What is wrong with a script's header, or None: line 1 is ``# <purpose>``, line 2
    ``# rfc: <RFC and section>`` or ``# policy: <what and why>``."""
    lines = text.splitlines()
    if len(lines) < 2:
        return "a script starts with two header lines"
    purpose, source = lines[0], lines[1]
    if not purpose.startswith("# ") or not purpose[2:].strip():
        return "line 1 must be '# <one-line purpose>'"
    if _SOURCE.match(purpose):
        return "line 1 is the purpose; the rfc: or policy: line comes second"
    match = _SOURCE.match(source)
    if not match:
        return "line 2 must be '# rfc: <RFC and section>' or '# policy: <what and why>'"
    if match.group(1) == "rfc" and not _RFC_NUMBER.search(source):
        return "an rfc: line names the RFC by number, e.g. 'RFC 9293 3.10.7.4'"
    return None


@pytest.mark.parametrize("path", SCRIPTS, ids=script_id)
def test_corpus_script_passes_on_pystack(path: Path) -> None:
    # The file as it is: the parser itself skips the header and every other comment.
    run_script(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SCRIPTS, ids=script_id)
def test_corpus_script_has_the_header(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert header_problem(text) is None, f"{script_id(path)}: {header_problem(text)}"
    assert parse_script(text), f"{script_id(path)} has no event lines"


def test_corpus_has_enough_scripts_in_every_topic() -> None:
    assert len(SCRIPTS) >= MINIMUM_SCRIPTS
    by_topic: dict[str, int] = {}
    for path in SCRIPTS:
        parts = path.relative_to(CORPUS).parts
        if parts[0] == "examples":
            continue  # scripts/examples/: docs/script-format.md's examples, outside the topics
        # scripts/<protocol>/<topic>/<name>.pkt and nothing else
        assert len(parts) == 3, f"{script_id(path)} is not scripts/PROTOCOL/TOPIC/NAME.pkt"
        assert parts[0] in TOPICS, f"{script_id(path)}: unknown protocol {parts[0]!r}"
        assert parts[1] in TOPICS[parts[0]], f"{script_id(path)}: unknown topic {parts[1]!r}"
        by_topic[f"{parts[0]}/{parts[1]}"] = by_topic.get(f"{parts[0]}/{parts[1]}", 0) + 1
    for protocol, topics in TOPICS.items():
        for topic in topics:
            count = by_topic.get(f"{protocol}/{topic}", 0)
            assert count >= MINIMUM_PER_TOPIC, f"{protocol}/{topic} has {count} scripts"


def test_header_check_names_each_problem() -> None:
    good = "# The purpose\n# rfc: RFC 9293 3.5\n0 listen 8080\n"
    assert header_problem(good) is None
    assert header_problem("# purpose\n# policy: why\n") is None
    assert header_problem("0 listen 8080\n+0 accept ?\n") == "line 1 must be '# <one-line purpose>'"
    assert header_problem("#\n# rfc: RFC 793\n") == "line 1 must be '# <one-line purpose>'"
    assert header_problem("# rfc: RFC 793\n# purpose\n") is not None
    assert header_problem("# purpose\n# see RFC 793\n") is not None
    assert header_problem("# purpose\n# rfc:\n") is not None
    assert header_problem("# purpose\n# rfc: the TCP spec\n") is not None
    assert header_problem("# purpose only") is not None


def test_a_corpus_script_with_a_wrong_expectation_fails() -> None:
    # The parametrized test above can fail: one changed number in a passing script is caught.
    text = (CORPUS / "tcp" / "handshake" / "passive_open.pkt").read_text(encoding="utf-8")
    wrong = text.replace("+0 > S. 0:0(0) ack 1 <mss 1460>", "+0 > S. 0:0(0) ack 2 <mss 1460>")
    assert wrong != text
    with pytest.raises(ScriptFailure, match="ack: expected 2, got 1"):
        run_script(wrong)


def test_a_udp_script_with_a_wrong_expectation_fails() -> None:
    # UDP lines are checked too: the ECONNREFUSED is reported once, so a second one is wrong.
    path = CORPUS / "udp" / "unreachable" / "connected_refused_once.pkt"
    text = path.read_text(encoding="utf-8")
    wrong = text.replace("+0     udp send 5\n", "+0     udp send 5 = ECONNREFUSED\n", 1)
    assert wrong != text
    with pytest.raises(ScriptFailure, match="ECONNREFUSED"):
        run_script(wrong)


def test_an_icmp_echo_script_with_a_wrong_reply_fails() -> None:
    path = CORPUS / "icmp" / "echo" / "reply_same_id_seq_data.pkt"
    text = path.read_text(encoding="utf-8")
    wrong = text.replace("echo-reply id 4660 seq 2 (56)", "echo-reply id 4660 seq 3 (56)")
    assert wrong != text
    with pytest.raises(ScriptFailure, match="seq"):
        run_script(wrong)


@pytest.mark.parametrize(
    "name",
    ["tcp/options/sack_off_not_offered.pkt", "tcp/loss/cubic_fast_retransmit_keeps_70_percent.pkt"],
)
def test_a_settings_script_fails_without_its_set_line(name: str) -> None:
    # The set lines are what the script is about: under the default settings it fails.
    text = (CORPUS / name).read_text(encoding="utf-8")
    without = "\n".join(line for line in text.splitlines() if not line.startswith("set "))
    assert without != text.rstrip("\n")
    with pytest.raises(ScriptFailure):
        run_script(without)
