"""The layering rule, checked on the source: imports point down only, and nothing imports in a
circle.

Every module under ``pystack/`` and ``usocket/`` is parsed (``ast``, nothing is imported) and
every import it holds is read: at module level, inside functions and under ``TYPE_CHECKING``
alike (a type-only import is still a dependency of the design). Three things are checked:

1. **The order of the packages** (``LAYERS``, lowest first). A module belongs to the unit of
   the longest entry covering it (``pystack.tcp`` covers ``pystack.tcp.layer``); a unit may
   import itself and units of lower layers only, never one of its own layer or above. A module
   no entry covers fails: a new package gets its place here when it is written. Top-level
   modules of ``pystack`` not listed (``pystack.tlsrecords``, say) fall under ``"pystack.*"``, a
   layer just above the base: each is its own unit there, and may import the base only.
2. **No cycle** in the package-level import graph (``usocket``, ``pystack`` and each
   ``pystack.<name>``), built from the imports alone, independently of the table: a cycle fails
   even if the table is edited to let it through.
3. **Narrower rules per package**: what beyond the standard library ``wire`` and ``link`` may use
   (``ALLOWED_BEYOND_STDLIB``), what protocol code must never touch (``FORBIDDEN``: threads, the
   clock, sockets) and the global ``random`` functions (``NO_GLOBAL_RANDOM``).

To change the rule, edit the tables, and say why next to the entry.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGES = ("pystack", "usocket")
TOP_LEVEL = "pystack.*"  # every top-level module of pystack that no other entry names
ONLY_ITSELF = frozenset({"pystack"})  # entries for a package's __init__, not what is below it

# --------------------------------------------------------------------------------------------
# the rule
# --------------------------------------------------------------------------------------------

# The order, lowest first. Within a layer the units are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    # base: the clock and the counters (standard library only), and the package itself
    ("pystack", "pystack.clock", "pystack.stats"),
    (TOP_LEVEL,),  # other top-level helper modules: over the base only
    ("pystack.wire", "pystack.link"),  # codecs; frames in and out (neither knows the other)
    ("pystack.ip",),  # IPv4, ARP, ICMP, IGMP, fragments, over a link's kind and MTU
    ("pystack.udp", "pystack.tcp"),
    # every counter name, some generated from TCP states and wire tables; the trace's formatting
    ("pystack.counters", "pystack.tracing"),
    ("pystack.stack",),  # one host's protocols driven by poll; it knows no application
    # Applications on a stack import ``pystack.stack`` (the ``Stack`` they run on); the stack
    # imports none of them: the code that builds a host attaches them (``pystack.host``).
    ("pystack.dhcp", "pystack.statsview"),  # statsview: --stats tables of a stack
    ("pystack.dns",),  # the resolver follows the DHCP lease's servers
    ("pystack.services",),  # the DNS service answers with ``pystack.dns.server``
    ("pystack.runner", "pystack.netns"),  # the stack thread; network namespaces
    # the scripted TCP tests (a stack and a script); above netns: the kernel target
    # (pystack.script.kernel) runs the same scripts against Linux in a namespace
    ("pystack.script",),
    ("pystack.host",),  # building a host: ``build_stack``, ``KernelHost`` (up --link tun|tap)
    ("pystack.sim",),  # the simulated network: hosts built like the real ones
    # ``pystack fuzz``: --self (cases fed through the script runner to a host with services),
    # --differential and --target kernel (the kernel target of pystack.script)
    ("pystack.fuzz",),
    ("usocket",),  # MicroPython's socket surface over a StackThread; no pystack.runtime
    ("pystack.runtime",),  # ``pystack run``: the script's world, its modules over usocket
    # ``pystack show``: recordings (written by ``run``/``up --record``) and captures drawn
    ("pystack.show",),
    # ``pystack bench``: pystack beside the kernel and the raw-TUN ceiling, in namespaces it makes
    ("pystack.bench",),
    ("pystack.demo",),
    ("pystack.cli",),
    ("pystack.__main__",),
)

# Packages restricted to the standard library plus these (a package not listed may import anything
# its layer allows). For a module, the longest matching package prefix decides.
ALLOWED_BEYOND_STDLIB: dict[str, tuple[str, ...]] = {
    "pystack.wire": ("pystack.wire",),
    "pystack.link": ("pystack.link", "pytun"),
    "pystack.clock": (),
    "pystack.stats": (),
}

_NO_THREADS_OR_CLOCK = ("threading", "time")

# What a package must never import. Every matching package prefix applies (``pystack`` covers
# ``pystack.ip`` too). ``socket`` is left to ``pystack.link`` and ``pystack.netns`` (which no
# restricted entry covers): they talk to the kernel. (Upward imports are ``LAYERS``' business.)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pystack": ("scapy",),
    "usocket": ("scapy",),
    "pystack.ip": (*_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.udp": (*_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.tcp": (*_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.wire": (*_NO_THREADS_OR_CLOCK, "socket"),
    # Links are the I/O adapter: they may take a lock (MemoryLink ends are shared between
    # threads) and read wall time (pcap timestamps); they still know no protocol (table above).
}

# Packages that may use ``random`` only through an injected ``random.Random`` (replayable runs):
# no ``random.randint(...)``-style calls on the global generator, no ``from random import choice``.
NO_GLOBAL_RANDOM = ("pystack.ip", "pystack.udp", "pystack.tcp", "pystack.wire", "pystack.link")
RANDOM_NAMES_ALLOWED = frozenset({"Random"})

# Violations present in code owned by others, kept visible instead of silently allowed: each is an
# xfail(strict=True) test, so fixing the code (or moving the import into the tables above) makes
# it XPASS and fail until the entry is removed here.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


# --------------------------------------------------------------------------------------------
# reading imports from the source
# --------------------------------------------------------------------------------------------


@dataclass
class ModuleImports:
    name: str
    imported: set[str] = field(default_factory=set)  # absolute dotted names
    global_random: list[str] = field(default_factory=list)  # "line N: random.randint"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in TOP_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name behind ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def read_imports(module: str, source: str, is_package: bool = False) -> ModuleImports:
    result = ModuleImports(module)
    random_aliases: set[str] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                result.imported.add(alias.name)
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            result.imported.add(base)
            for alias in node.names:
                # ``from pystack import stack`` imports the module pystack.stack.
                result.imported.add(f"{base}.{alias.name}")
                if base == "random" and alias.name not in RANDOM_NAMES_ALLOWED:
                    result.global_random.append(
                        f"line {node.lineno}: from random import {alias.name}"
                    )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in random_aliases
            and node.func.attr not in RANDOM_NAMES_ALLOWED
        ):
            result.global_random.append(f"line {node.lineno}: random.{node.func.attr}(...)")
    return result


def _covers(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def disallowed_imports(imports: ModuleImports) -> set[str]:
    """Imports beyond the standard library and the module's allowed list."""
    owners = [p for p in ALLOWED_BEYOND_STDLIB if _covers(p, imports.name)]
    if not owners:
        return set()
    allowed = ALLOWED_BEYOND_STDLIB[max(owners, key=len)]
    return {
        name
        for name in imports.imported
        if not is_stdlib(name) and not any(_covers(a, name) for a in allowed)
    }


def forbidden_imports(imports: ModuleImports) -> set[tuple[str, str]]:
    """(imported name, forbidden prefix) pairs."""
    found: set[tuple[str, str]] = set()
    for package, forbidden in FORBIDDEN.items():
        if not _covers(package, imports.name):
            continue
        for name in imports.imported:
            for prefix in forbidden:
                if _covers(prefix, name):
                    found.add((name, prefix))
    return found


# --------------------------------------------------------------------------------------------
# the order of the packages, and cycles
# --------------------------------------------------------------------------------------------


def unit_of(module: str, layers: Sequence[Sequence[str]] = LAYERS) -> str | None:
    """The table entry ``module`` belongs to (itself for a ``TOP_LEVEL`` module); None if none."""
    entries = [entry for layer in layers for entry in layer]
    named = [
        e
        for e in entries
        if e != TOP_LEVEL and (module == e if e in ONLY_ITSELF else _covers(e, module))
    ]
    if named:
        return max(named, key=len)
    if TOP_LEVEL in entries and module.count(".") == 1 and module.startswith("pystack."):
        return module
    return None


def layer_of(unit: str, layers: Sequence[Sequence[str]] = LAYERS) -> int:
    for number, layer in enumerate(layers):
        if unit in layer:
            return number
    for number, layer in enumerate(layers):
        if TOP_LEVEL in layer:
            return number
    raise KeyError(unit)


def imported_modules(imported: Iterable[str], modules: Collection[str]) -> set[str]:
    """The project modules behind imported names: ``pystack.stack.Stack`` is ``pystack.stack``.
    Names outside the project (the standard library, pytun) are left out."""
    found: set[str] = set()
    for name in imported:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in modules:
                found.add(candidate)
                break
    return found


def upward_imports(
    graph: Mapping[str, Iterable[str]], layers: Sequence[Sequence[str]] = LAYERS
) -> set[tuple[str, str]]:
    """(module, imported module) pairs whose units break the order: the imported unit sits in
    the importer's layer or above (a different unit: inside a unit anything goes). ``graph`` maps
    each module to the project modules it imports."""
    found: set[tuple[str, str]] = set()
    for module, targets in graph.items():
        unit = unit_of(module, layers)
        if unit is None:
            continue  # reported by uncovered_modules
        for target in targets:
            target_unit = unit_of(target, layers)
            if target_unit is None or target_unit == unit:
                continue
            if layer_of(target_unit, layers) >= layer_of(unit, layers):
                found.add((module, target))
    return found


def uncovered_modules(modules: Iterable[str], layers: Sequence[Sequence[str]] = LAYERS) -> set[str]:
    return {module for module in modules if unit_of(module, layers) is None}


def package_of(module: str, split: Collection[str] = ("pystack",)) -> str:
    """The node of the package-level graph: ``usocket`` (one package), and within a package of
    ``split`` each subpackage or module below it (``pystack.tcp``, ``pystack.stack``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in split else parts[0]


def package_graph(
    graph: Mapping[str, Iterable[str]], split: Collection[str] = ("pystack",)
) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the modules (of the importer) that import it."""
    packages: dict[str, dict[str, set[str]]] = {}
    for module, targets in graph.items():
        source = package_of(module, split)
        edges = packages.setdefault(source, {})
        for target in targets:
            destination = package_of(target, split)
            if destination != source:
                edges.setdefault(destination, set()).add(module)
    return packages


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycle(packages: Mapping[str, Mapping[str, set[str]]], members: list[str]) -> str:
    edges = [
        f"{source} -> {target} ({', '.join(sorted(packages[source][target]))})"
        for source in members
        for target in sorted(packages.get(source, {}))
        if target in members
    ]
    return "; ".join(edges)


MODULES = find_modules()
IMPORTS = {
    name: read_imports(name, path.read_text(), path.name == "__init__.py")
    for name, path in MODULES.items()
}
GRAPH = {name: imported_modules(IMPORTS[name].imported, MODULES) for name in MODULES}


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------


def test_layering_sees_the_whole_tree():
    for expected in ("pystack.wire.tcp", "pystack.wire.checksum", "pystack.link", "usocket"):
        assert expected in MODULES
    assert all(isinstance(imports.imported, set) for imports in IMPORTS.values())
    # imports inside functions and under TYPE_CHECKING count too
    assert "pystack.services.tls" in GRAPH["pystack.services.session"]  # in make_stream
    assert "pystack.stack" in GRAPH["pystack.services.naming"]  # under TYPE_CHECKING


def test_every_module_has_a_place_in_the_order():
    assert uncovered_modules(MODULES) == set()


def test_every_entry_of_the_order_is_used_once():
    entries = [entry for layer in LAYERS for entry in layer]
    assert len(entries) == len(set(entries))
    used = {unit_of(module) for module in MODULES}
    assert [e for e in entries if e != TOP_LEVEL and e not in used] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_below_its_layer(module: str):
    upward = upward_imports({module: GRAPH[module]})
    assert {
        f"{target} ({unit_of(target)}, layer {layer_of(unit_of(target) or '')})"
        for _module, target in upward
    } == set(), f"{module} is in {unit_of(module)}, layer {layer_of(unit_of(module) or '')}"


def test_the_package_import_graph_has_no_cycle():
    packages = package_graph(GRAPH)
    found = cycles({source: set(targets) for source, targets in packages.items()})
    assert [describe_cycle(packages, members) for members in found] == []


def test_usocket_does_not_reach_pystack_runtime():
    """usocket sits below the runtime: nothing it imports, directly or not, is the runtime."""
    seen: set[str] = set()
    todo = [m for m in MODULES if package_of(m) == "usocket"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(GRAPH[module])
    assert sorted(m for m in seen if package_of(m) == "pystack.runtime") == []


def test_stack_imports_no_application():
    reached = {package_of(m) for m in GRAPH["pystack.stack"]}
    assert reached.isdisjoint({"pystack.dhcp", "pystack.dns", "pystack.services"})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_uses_only_the_libraries_its_package_may(module: str):
    assert disallowed_imports(IMPORTS[module]) == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_nothing_forbidden_for_its_package(module: str):
    found = {prefix for _name, prefix in forbidden_imports(IMPORTS[module])} - {
        imported for (owner, imported) in KNOWN_VIOLATIONS if owner == module
    }
    assert found == set()


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if any(_covers(p, m) for p in NO_GLOBAL_RANDOM))
)
def test_sans_io_module_uses_no_global_random_functions(module: str):
    assert IMPORTS[module].global_random == []


def test_no_layering_violation_is_tolerated():
    # A violation that must stay for a while goes in KNOWN_VIOLATIONS with its reason; none does.
    assert KNOWN_VIOLATIONS == {}


# --------------------------------------------------------------------------------------------
# the checker itself, on small sources
# --------------------------------------------------------------------------------------------


def test_checker_resolves_relative_imports():
    imports = read_imports("pystack.ip.arp", "from . import routes\nfrom ..wire import ipv4\n")
    assert {
        "pystack.ip",
        "pystack.ip.routes",
        "pystack.wire",
        "pystack.wire.ipv4",
    } <= imports.imported
    package = read_imports("pystack.ip", "from .arp import ARPCache\n", is_package=True)
    assert "pystack.ip.arp" in package.imported


def test_checker_catches_an_upward_import_written_as_from_package():
    modules = {"pystack", "pystack.stack", "pystack.tcp", "pystack.tcp.connection", "usocket"}
    imports = read_imports("pystack.tcp.connection", "from pystack import stack\n")
    graph = {"pystack.tcp.connection": imported_modules(imports.imported, modules)}
    assert graph["pystack.tcp.connection"] == {"pystack", "pystack.stack"}
    assert upward_imports(graph) == {("pystack.tcp.connection", "pystack.stack")}
    inside = read_imports("pystack.udp.ports", "def f():\n    import usocket\n")
    graph = {"pystack.udp.ports": imported_modules(inside.imported, modules)}
    assert upward_imports(graph) == {("pystack.udp.ports", "usocket")}


# A small made-up project for the order and cycle checks: low < mid < (left, right) < high.
TOY = ("toy",)
TOY_LAYERS = (("toy.low",), ("toy.mid",), ("toy.left", "toy.right"), ("toy.high",))
TOY_GRAPH: dict[str, set[str]] = {
    "toy.low.a": set(),
    "toy.low.b": {"toy.low.a"},  # inside a unit: anything goes
    "toy.mid": {"toy.low.a"},
    "toy.left.x": {"toy.mid", "toy.low.b"},
    "toy.right.y": {"toy.mid"},
    "toy.high.z": {"toy.left.x", "toy.right.y", "toy.low.a"},
}


def test_checker_accepts_a_graph_that_keeps_the_order() -> None:
    assert upward_imports(TOY_GRAPH, TOY_LAYERS) == set()
    assert uncovered_modules(TOY_GRAPH, TOY_LAYERS) == set()
    assert cycles(package_graph(TOY_GRAPH, TOY)) == []


def test_checker_fails_a_planted_upward_import() -> None:
    graph = {**TOY_GRAPH, "toy.mid": {"toy.low.a", "toy.high.z"}}
    assert upward_imports(graph, TOY_LAYERS) == {("toy.mid", "toy.high.z")}


def test_checker_fails_an_import_within_a_layer() -> None:
    graph = {**TOY_GRAPH, "toy.right.y": {"toy.mid", "toy.left.x"}}
    assert upward_imports(graph, TOY_LAYERS) == {("toy.right.y", "toy.left.x")}


def test_checker_fails_a_planted_cycle_even_where_the_table_allows_it() -> None:
    # mid <-> high through a function-level import; a table putting them in one layer and one
    # unit would let the order pass, the cycle check does not.
    source = "def later():\n    from toy.high import z\n"
    planted = imported_modules(read_imports("toy.mid", source).imported, set(TOY_GRAPH))
    graph = {**TOY_GRAPH, "toy.mid": {"toy.low.a", *planted}}
    assert cycles(package_graph(graph, TOY)) == [["toy.high", "toy.left", "toy.mid", "toy.right"]]
    packages = package_graph(graph, TOY)
    assert "toy.mid -> toy.high (toy.mid)" in describe_cycle(packages, cycles(packages)[0])
    # a longer one: low -> mid -> right -> low
    graph = {**TOY_GRAPH, "toy.low.a": {"toy.right.y"}}
    assert cycles(package_graph(graph, TOY)) == [["toy.low", "toy.mid", "toy.right"]]


def test_checker_fails_a_module_no_entry_covers() -> None:
    graph = {**TOY_GRAPH, "toy.new.thing": {"toy.low.a"}}
    assert uncovered_modules(graph, TOY_LAYERS) == {"toy.new.thing"}
    # in the real table: a new subpackage fails, a new top-level module gets the default place
    assert unit_of("pystack.newpackage.module") is None
    assert unit_of("usocket.anything") == "usocket"
    assert unit_of("pystack.tlsrecords") == "pystack.tlsrecords"
    assert layer_of("pystack.tlsrecords") == layer_of(TOP_LEVEL) == 1
    graph = {
        "pystack.tlsrecords": {"pystack.stats"},
        "pystack.services.tls": {"pystack.tlsrecords"},
    }
    assert upward_imports(graph) == set()
    assert upward_imports({"pystack.tlsrecords": {"pystack.wire.tcp"}}) == {
        ("pystack.tlsrecords", "pystack.wire.tcp")
    }


def test_checker_catches_third_party_and_clock_imports():
    wire = read_imports("pystack.wire.dns", "import scapy.all\nimport time\nimport struct\n")
    assert disallowed_imports(wire) == {"scapy.all"}
    assert {prefix for _n, prefix in forbidden_imports(wire)} == {"scapy", "time"}
    link = read_imports("pystack.link.tuntap", "import pytun\nimport socket\nimport numpy\n")
    assert disallowed_imports(link) == {"numpy"}
    assert forbidden_imports(link) == set()


def test_checker_catches_global_random_use():
    source = (
        "import random\nimport random as r\nfrom random import Random, choice\n"
        "rng = random.Random(7)\nx = random.randint(1, 2)\ny = r.random()\nrng.random()\n"
    )
    found = read_imports("pystack.tcp.table", source).global_random
    assert found == [
        "line 3: from random import choice",
        "line 5: random.randint(...)",
        "line 6: random.random(...)",
    ]


def test_stdlib_table_knows_the_names_used_here():
    for name in ("socket", "threading", "time", "random", "struct", "__future__", "typing"):
        assert is_stdlib(name)
    for name in ("pytun", "scapy", "pystack", "usocket", "hypothesis"):
        assert not is_stdlib(name)
