"""The layering rule of ARCHITECTURE.md, checked on the source: imports point down only.

Every module under ``pystack/`` and ``usocket/`` is parsed (``ast``, nothing is imported) and its
imports are compared with the two tables below. To change the rule, edit the tables: each entry is
a package prefix (it covers the package and everything below it) and module prefixes.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_PACKAGES = ("pystack", "usocket")

# --------------------------------------------------------------------------------------------
# the rule
# --------------------------------------------------------------------------------------------

# Packages restricted to the standard library plus these (a package not listed may import anything
# not forbidden below). For a module, the longest matching package prefix decides.
ALLOWED_BEYOND_STDLIB: dict[str, tuple[str, ...]] = {
    "pystack.wire": ("pystack.wire",),
    "pystack.link": ("pystack.link", "pytun"),
}

_ABOVE_PROTOCOLS = ("pystack.runner", "pystack.cli", "pystack.stack", "usocket")
_NO_THREADS_OR_CLOCK = ("threading", "time")

# What a package must never import. Every matching package prefix applies (``pystack`` covers
# ``pystack.ip`` too). ``socket`` is left to ``pystack.link`` and ``pystack.netns`` (which no
# restricted entry covers): they talk to the kernel.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "pystack": ("scapy",),
    "usocket": ("scapy",),
    "pystack.ip": (*_ABOVE_PROTOCOLS, *_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.udp": (*_ABOVE_PROTOCOLS, *_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.tcp": (*_ABOVE_PROTOCOLS, *_NO_THREADS_OR_CLOCK, "socket"),
    "pystack.wire": (*_NO_THREADS_OR_CLOCK, "socket"),
    # Links are the I/O adapter: they may take a lock (MemoryLink ends are shared between
    # threads) and read wall time (pcap timestamps); they still know no protocol (table above).
    "pystack.link": (*_ABOVE_PROTOCOLS,),
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


MODULES = find_modules()
IMPORTS = {
    name: read_imports(name, path.read_text(), path.name == "__init__.py")
    for name, path in MODULES.items()
}


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------


def test_layering_sees_the_whole_tree():
    for expected in ("pystack.wire.tcp", "pystack.wire.checksum", "pystack.link", "usocket"):
        assert expected in MODULES
    assert all(isinstance(imports.imported, set) for imports in IMPORTS.values())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_what_its_layer_allows(module: str):
    assert disallowed_imports(IMPORTS[module]) == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_nothing_forbidden_for_its_layer(module: str):
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
    imports = read_imports("pystack.tcp.connection", "from pystack import stack\n")
    assert ("pystack.stack", "pystack.stack") in forbidden_imports(imports)
    inside = read_imports("pystack.udp.ports", "def f():\n    import usocket\n")
    assert ("usocket", "usocket") in forbidden_imports(inside)


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
