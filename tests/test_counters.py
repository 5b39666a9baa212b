"""Counter names and malformed-packet reasons are declared (pystack/counters.py) and checked.

An undeclared name is refused when counted and when read, so a misspelt name fails instead of
reading 0. The source scan below finds every literal name the code counts or reads (in pystack/,
usocket/, tools/ and the tests), so an undeclared one fails the suite even on a path no test runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack.counters import COUNTER_GROUPS, COUNTERS, DECLARED, MALFORMED_REASONS, SESSION_SERVICES
from pystack.stats import Statistics
from pystack.tcp.state import TCPState

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("pystack", "usocket", "tools", "tests")
NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


# -- the tables refuse undeclared names --------------------------------------------------------
def test_an_undeclared_counter_is_refused_when_counted() -> None:
    statistics = Statistics(DECLARED)
    with pytest.raises(KeyError, match=r"unknown counter 'tcp\.retransmit'"):
        statistics.count("tcp.retransmit")
    with pytest.raises(KeyError, match=r"declare it in pystack/counters\.py"):
        statistics.counters["tcp.retransmit"] += 1
    assert statistics.snapshot()["counters"] == {}


def test_an_undeclared_counter_is_refused_when_read() -> None:
    statistics = Statistics(DECLARED)
    statistics.count("tcp.retransmits")
    counters = statistics.counters
    for table in (counters, statistics.snapshot()["counters"]):
        with pytest.raises(KeyError, match=r"unknown counter 'tcp\.retransmit'"):
            table["tcp.retransmit"]
        with pytest.raises(KeyError, match="unknown counter"):
            table.get("tcp.retransmit", 0)
        with pytest.raises(KeyError, match="unknown counter"):
            "tcp.retransmit" in table  # noqa: B015
        assert table["tcp.retransmits"] == 1
        assert table.get("tcp.retransmits") == 1
        assert "tcp.retransmits" in table


def test_a_declared_counter_reads_zero_until_counted_and_stays_out_of_the_snapshot() -> None:
    statistics = Statistics(DECLARED)
    assert statistics.counters["tcp.timeouts"] == 0
    assert statistics.counters.get("tcp.timeouts", 0) == 0
    assert "tcp.timeouts" not in statistics.counters
    snapshot = statistics.snapshot()["counters"]
    assert snapshot == {}
    # The snapshot is a plain dict's equal: an absent name is a KeyError, as before.
    with pytest.raises(KeyError):
        snapshot["tcp.timeouts"]
    assert snapshot.get("tcp.timeouts") is None


def test_the_snapshot_lists_counted_names_sorted() -> None:
    statistics = Statistics(DECLARED)
    statistics.count("udp.sent", 3)
    statistics.count("arp.received")
    statistics.count("tcp.state.established")
    statistics.count("http.requests", 0)
    snapshot = statistics.snapshot()
    assert list(snapshot["counters"].items()) == [
        ("arp.received", 1),
        ("http.requests", 0),
        ("tcp.state.established", 1),
        ("udp.sent", 3),
    ]
    assert snapshot["counters"] == dict(snapshot["counters"])
    assert repr(snapshot["counters"]) == repr(dict(snapshot["counters"]))


def test_malformed_reasons_are_checked_too() -> None:
    statistics = Statistics(DECLARED)
    statistics.drop_malformed("ipv4.bad_checksum")
    with pytest.raises(KeyError, match=r"unknown malformed-packet reason 'ipv4\.bad_checksun'"):
        statistics.drop_malformed("ipv4.bad_checksun")
    for table in (statistics.malformed, statistics.snapshot()["malformed"]):
        assert table["ipv4.bad_checksum"] == 1
        with pytest.raises(KeyError, match="unknown malformed-packet reason"):
            table.get("tcp.bad_checksun", 0)
    assert statistics.snapshot()["malformed"] == {"ipv4.bad_checksum": 1}


def test_dynamic_names_are_generated_from_their_tables() -> None:
    for state in TCPState:
        assert f"tcp.state.{state.name.lower()}" in COUNTERS
    assert "icmp.received.type0" in COUNTERS and "icmp.received.type255" in COUNTERS
    assert "icmp.errors_sent.type3" in COUNTERS and "icmp.errors_sent.type11" in COUNTERS
    assert "dhcp.discover_sent" in COUNTERS and "dhcp.server.offer_sent" in COUNTERS
    assert "dns.server.rcode_1" in COUNTERS and "dns.server.rcode_0" not in COUNTERS
    for service in SESSION_SERVICES:
        assert f"{service}.refused" in COUNTERS


# -- every declared name has a meaning ---------------------------------------------------------
@pytest.mark.parametrize("table", [COUNTERS, MALFORMED_REASONS], ids=["counters", "malformed"])
def test_every_declared_name_has_a_one_line_meaning(table: dict[str, str]) -> None:
    for name, meaning in table.items():
        assert NAME.fullmatch(name), f"{name!r} is not a lower-case dotted name"
        assert meaning.strip() == meaning and meaning, f"{name}: meaning {meaning!r}"
        assert "\n" not in meaning and len(meaning) <= 100, f"{name}: one short line"


def test_counters_are_grouped_by_their_layer() -> None:
    for group, names in COUNTER_GROUPS.items():
        if group == "services":
            assert all(name.split(".")[0] in SESSION_SERVICES for name in names)
        else:
            assert all(name.startswith(group + ".") for name in names), group


# -- every name the source uses is declared ----------------------------------------------------
def _python_files() -> Iterator[Path]:
    for top in SCANNED:
        yield from sorted((ROOT / top).rglob("*.py"))


def _is_counter_table(node: ast.expr) -> bool:
    """``x.counters``, ``counters``, ``x["counters"]``, or ``x.statistics``: a stack's counters."""
    if isinstance(node, ast.Attribute):
        return node.attr == "counters"
    if isinstance(node, ast.Name):
        return node.id == "counters"
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value == "counters"
    return False


def _counts_on(node: ast.expr) -> bool:
    """The receiver of a ``.count(name)`` that counts into a stack's counters."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("statistics", "counters")
    return isinstance(node, ast.Name) and node.id in ("statistics", "counters")


def _strings(node: ast.expr) -> list[str] | None:
    """The names a literal, or a conditional between literals, can be; None if computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body), _strings(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def _pattern(node: ast.JoinedStr) -> re.Pattern[str]:
    parts = [
        re.escape(part.value) if isinstance(part, ast.Constant) else ".+" for part in node.values
    ]
    return re.compile("".join(parts))


SERVICE_EVENTS = {name.split(".", 1)[1] for name in COUNTER_GROUPS["services"]}
# Receivers of a session service's ``count(event)`` (counted as "<service name>.<event>").
SERVICE_RECEIVERS = {"self", "self.service", "self.broker"}
# Names passed through a variable: a service's ``event`` parameter (checked where it gets its
# value, below), ``Statistics.count``'s own ``name``, and a script's ``expect counter NAME``
# (checked by the last test here, and refused at run time).
PASSED_THROUGH = {"name", "event", "expectation.name"}


class _Scan(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.relative = path.relative_to(ROOT).as_posix()
        self.service = self.relative.startswith("pystack/services/")
        self.problems: list[str] = []
        self.used: set[str] = set()

    def problem(self, node: ast.AST, text: str) -> None:
        self.problems.append(f"{self.relative}:{getattr(node, 'lineno', 0)}: {text}")

    def check_name(self, node: ast.AST, names: list[str], declared: dict[str, str]) -> None:
        for name in names:
            self.used.add(name)
            if name not in declared:
                self.problem(node, f"{name!r} is not declared in pystack/counters.py")

    def check_argument(self, node: ast.Call, argument: ast.expr) -> None:
        names = _strings(argument)
        if names is not None:
            self.check_name(node, names, COUNTERS)
        elif isinstance(argument, ast.JoinedStr):
            pattern = _pattern(argument)
            if not any(pattern.fullmatch(name) for name in COUNTERS):
                self.problem(node, f"no declared name matches {ast.unparse(argument)}")
        elif ast.unparse(argument) not in PASSED_THROUGH:
            self.problem(node, f"computed counter name {ast.unparse(argument)}: declare its names")

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        if isinstance(function, ast.Attribute) and node.args:
            argument = node.args[0]
            receiver = function.value
            if (function.attr == "count" and _counts_on(receiver)) or (
                function.attr == "get" and _is_counter_table(receiver)
            ):
                self.check_argument(node, argument)
            elif (
                function.attr == "count"
                and self.service
                and ast.unparse(receiver) in SERVICE_RECEIVERS
            ):
                events = _strings(argument)
                if events is not None:
                    self.check_name(node, events, dict.fromkeys(SERVICE_EVENTS, ""))
                elif ast.unparse(argument) not in PASSED_THROUGH:
                    self.problem(node, f"computed service event {ast.unparse(argument)}")
            elif function.attr in ("drop_malformed", "_drop_malformed"):
                reasons = _strings(argument)
                if reasons is not None:
                    self.check_name(node, reasons, MALFORMED_REASONS)
        if isinstance(function, ast.Name) and function.id == "MalformedPacket" and node.args:
            reasons = _strings(node.args[0])
            if reasons is None:
                self.problem(node, "MalformedPacket with a computed reason")
            else:
                self.check_name(node, reasons, MALFORMED_REASONS)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        names = _strings(node.slice)
        if names is not None and _is_counter_table(node.value):
            self.check_name(node, names, COUNTERS)
        if names is not None and isinstance(node.value, ast.Attribute):
            if node.value.attr == "malformed":
                self.check_name(node, names, MALFORMED_REASONS)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        names = _strings(node.left)
        for operator, right in zip(node.ops, node.comparators, strict=True):
            if names is not None and isinstance(operator, ast.In | ast.NotIn):
                if _is_counter_table(right):
                    self.check_name(node, names, COUNTERS)
        self.generic_visit(node)


def _event_parameters(tree: ast.Module) -> dict[str, tuple[int, str | None]]:
    """Functions taking an ``event`` parameter: its position (after self) and default."""
    found: dict[str, tuple[int, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            arguments = [a.arg for a in node.args.args]
            if "event" in arguments:
                index = arguments.index("event")
                defaults = node.args.defaults
                offset = index - (len(arguments) - len(defaults))
                default = _strings(defaults[offset]) if offset >= 0 else None
                found[node.name] = (index - (arguments[0] == "self"), (default or [None])[0])
    return found


def _service_events_passed(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    """The literal events given to a service function's ``event`` parameter, and defaults."""
    parameters = _event_parameters(tree)
    for _, default in parameters.values():
        if default is not None:
            yield tree, default
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else None
            if called not in parameters:
                continue
            index, _ = parameters[called]
            values = [k.value for k in node.keywords if k.arg == "event"]
            if index < len(node.args):
                values.append(node.args[index])
            for value in values:
                for event in _strings(value) or []:
                    yield node, event


def test_every_name_counted_or_read_in_the_source_is_declared() -> None:
    problems: list[str] = []
    used: set[str] = set()
    for path in _python_files():
        if path.name == "test_counters.py":
            continue  # this file spells wrong names on purpose
        tree = ast.parse(path.read_text(), str(path))
        scan = _Scan(path)
        scan.visit(tree)
        if scan.service:
            for node, event in _service_events_passed(tree):
                scan.check_name(node, [event], dict.fromkeys(SERVICE_EVENTS, ""))
        problems += scan.problems
        used |= scan.used
    assert not problems, "\n".join(problems)
    # The scan works: it saw the names the stack counts most.
    assert {"tcp.segments_sent", "ipv4.received", "tcp.bad_checksum", "requests"} <= used


# tests/script/test_runner.py checks that a script naming it fails.
DELIBERATELY_UNDECLARED = {"tcp.no_such_counter"}


def test_every_counter_a_tcp_script_expects_is_declared() -> None:
    # Scripts (pystack/script notation) live in test modules and .pkt files.
    expectation = re.compile(r"\bexpect\s+counter\s+(\S+)")
    problems = []
    seen = 0
    for path in sorted((ROOT / "tests").rglob("*")):
        if path.suffix not in (".py", ".pkt") or path.name == "test_counters.py":
            continue
        for name in expectation.findall(path.read_text()):
            if NAME.fullmatch(name) and name not in DELIBERATELY_UNDECLARED:
                seen += 1
                if name not in COUNTERS:
                    problems.append(f"{path.relative_to(ROOT)}: {name!r} is not declared")
    assert not problems, "\n".join(problems)
    assert seen
