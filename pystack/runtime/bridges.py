"""Language bridges: the few places where MicroPython code relies on MicroPython's language.

Script-world modules are compiled from an AST that ``BridgeTransformer`` rewrites; nothing else
in the process is affected (pystack's own code and the stdlib keep CPython's rules, so
``b"%s" % "x"`` still raises TypeError there). The rewrites call helpers that live in the
script world's builtins under ``__pystack_*__`` names (``HELPERS``). The list, kept short on
purpose; each is something real MicroPython code does:

1. ``bytes % args`` formats ``str`` arguments (``b"%s /%s HTTP/1.1" % (method, path)``, as in
   micropython-lib's ``requests``). MicroPython formats ``%s`` with ``str()``, so a ``str`` goes
   in as UTF-8 and an int as its digits; CPython raises TypeError. ``%(key)s`` looks ``key`` up
   as a str, as MicroPython does (CPython wants bytes keys; those still work). Rewritten only when the left
   operand is a bytes literal (the idiom; a bytes value held in a variable is left alone, which
   keeps ``%`` on numbers free). Conversions are parsed once, at compile time. A bytes argument
   keeps CPython's result (``b"x"``), not MicroPython's ``b"b'x'"``.
2. ``bytes.format``: MicroPython bytes have ``format`` (``b"{}:{}".format(user, password)``,
   the basic-auth line of ``requests``); CPython bytes have none. Rewritten for bytes literals;
   the arguments are formatted as ``str.format`` does and the result encoded as UTF-8, which is
   what MicroPython produces.
3. ``NAME = const(value)`` needs no import: MicroPython's parser recognises ``const`` by name
   (``py/parse.c``, ``fold_constants``), so libraries often skip ``from micropython import
   const``. Rewritten to ``NAME = value``.
4. ``await`` takes any iterator: MicroPython compiles ``await x`` as ``yield from x``
   (``py/compile.c:compile_atom_expr_await``), so plain generators and objects with only
   ``__iter__`` are awaitable (MicroPython's own asyncio streams are generators). CPython needs
   ``__await__``; the rewrite wraps such objects. Coroutines pass through unchanged.

5. ``str`` is a read-only buffer: ``memoryview("abc")`` is the view of its UTF-8 bytes (the
   script world's ``memoryview`` builtin is ``ScriptMemoryview``; ``isinstance(x, memoryview)``
   still answers for CPython's views). The modules that take buffers take ``str`` too:
   ``struct``, ``binascii``, ``hashlib`` (shaped_modules.py), and socket and stream
   ``write``/``send``/``sendto`` (usocket's ``streamio.buffer_bytes``).
6. A ``bytearray`` can be resized while a ``memoryview`` of it lives (MicroPython's view keeps
   a pointer, an offset and a length, ``py/objarray.c``; CPython raises ``BufferError``):
   ``memoryview(bytearray)`` in a script is a ``pystack.bufferview.BytearrayView``, which
   exports no buffer, keeps its length, and sees the bytearray's current contents (zeros past
   its end). ``isinstance(view, memoryview)`` is true. pystack's consumers take it: socket and
   stream ``send``/``write``/``readinto`` (usocket), the asyncio streams, ``struct``
   (``pack_into`` writes through it), ``binascii``, ``hashlib``; ``bytes(view)``,
   ``bytearray(view)``, comparisons, iteration and ``hex()`` work. ``str(view, "utf-8")`` is
   rewritten (the only call of a CPython builtin that needs the buffer protocol and that
   MicroPython code makes on a view): ``str(x, ...)`` with an encoding calls a helper that
   gives ``str`` the view's bytes.

Not bridged, because MicroPython rejects them too or no code relies on them: ``str + bytes``,
``bytes`` from ``str`` without an encoding, ``async for`` over ``__anext__`` generators, code
compiled at run time with ``exec``/``compile``; views of ``array.array`` (CPython's, so the
array cannot grow under one), and a bytearray's view handed to a file's ``readinto``/``write``
or to CPython functions other than those named in 6 (pass ``bytes(view)``).

Entry points: ``compile_script``, ``BridgeTransformer``, ``HELPERS``.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Generator, Iterable, Mapping
from types import CodeType, CoroutineType, MappingProxyType
from typing import Any

from pystack.bufferview import BytearrayView

BYTES_PERCENT = "__pystack_bytes_percent__"
BYTES_FORMAT = "__pystack_bytes_format__"
AWAITABLE = "__pystack_awaitable__"
STR_DECODE = "__pystack_str__"

# One printf-style conversion: %[(key)][flags][width][.precision][length]type
_CONVERSION = re.compile(
    rb"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?"
    rb"[hlL]?(?P<type>[diouxXeEfFgGcrsab%])"
)

Spec = tuple[str | None, str]  # (mapping key or None, conversion letter; "*" for a star argument)


def conversions(template: bytes) -> tuple[Spec, ...] | None:
    """The argument-consuming conversions of a bytes template, or None if it is malformed."""
    specs: list[Spec] = []
    position = 0
    for match in _CONVERSION.finditer(template):
        if b"%" in template[position : match.start()]:
            return None  # a '%' that does not start a valid conversion
        position = match.end()
        kind = match["type"].decode()
        if kind == "%":
            continue
        raw_key = match["key"]
        key = raw_key.decode("utf-8", "surrogateescape") if raw_key is not None else None
        specs.extend((None, "*") for star in (match["width"], match["precision"]) if star == b"*")
        specs.append((key, kind))
    if b"%" in template[position:]:
        return None
    return tuple(specs)


def _as_bytes_argument(value: object, kind: str) -> object:
    """What MicroPython would format for ``value`` under ``%s`` / ``%c``, as CPython accepts it."""
    if isinstance(value, str):
        return value.encode() if kind == "s" or (kind == "c" and len(value) == 1) else value
    if kind != "s" or isinstance(value, bytes | bytearray) or hasattr(type(value), "__bytes__"):
        return value
    try:
        memoryview(value)  # type: ignore[arg-type]
    except TypeError:
        return str(value).encode()
    return value


def bytes_percent(template: bytes, values: object, specs: tuple[Spec, ...]) -> bytes:
    """``template % values`` with MicroPython's treatment of ``%s`` (bridge 1)."""
    keyed = [(key, kind) for key, kind in specs if key is not None]
    if keyed and isinstance(values, Mapping):
        # CPython looks bytes keys up in the mapping; MicroPython looks up str keys
        kinds: dict[str, set[str]] = {}
        for key, kind in keyed:
            kinds.setdefault(key, set()).add(kind)
        mapping: dict[bytes, object] = {}
        for key, used in kinds.items():
            raw = key.encode("utf-8", "surrogateescape")
            if key in values:
                value = values[key]
            elif raw in values:
                value = values[raw]
            else:
                raise KeyError(key)
            mapping[raw] = _as_bytes_argument(value, next(iter(used))) if len(used) == 1 else value
        return template % mapping
    arguments = values if isinstance(values, tuple) else (values,)
    if keyed or len(arguments) != len(specs):
        return template % values  # let CPython report the mismatch in its own words
    converted = tuple(
        _as_bytes_argument(value, kind) for value, (_, kind) in zip(arguments, specs, strict=True)
    )
    return template % converted


def bytes_format(template: bytes, *args: object, **kwargs: object) -> bytes:
    """``template.format(...)`` for bytes, as MicroPython does it (bridge 2)."""
    text = template.decode("utf-8", "surrogateescape")
    return text.format(*args, **kwargs).encode("utf-8", "surrogateescape")


class _IteratorAwaitable:
    """Makes an iterator awaitable: ``await`` then delegates to it like ``yield from``."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable

    def __await__(self) -> Generator[Any, Any, Any]:
        iterator: Generator[Any, Any, Any] = iter(self._iterable)  # type: ignore[arg-type]
        return iterator  # any iterator: await delegates to it as yield from would


def awaitable(value: object) -> object:
    """``value`` itself if CPython can await it, else a wrapper that iterates it (bridge 4)."""
    kind = type(value)
    if kind is CoroutineType or hasattr(kind, "__await__") or not hasattr(kind, "__iter__"):
        return value  # an unawaitable non-iterable keeps CPython's TypeError
    if inspect.isawaitable(value):
        return value  # a generator marked with types.coroutine: CPython awaits it directly
    return _IteratorAwaitable(value)  # type: ignore[arg-type]


_VIEWS = (memoryview, BytearrayView)


class _MemoryviewType(type):
    """``isinstance``/``issubclass`` against the script's ``memoryview`` answer for CPython's
    views and for ``BytearrayView``."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _VIEWS)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _VIEWS)


class ScriptMemoryview(metaclass=_MemoryviewType):
    """The script's ``memoryview``: a ``str`` gives a read-only view of its UTF-8 bytes, as
    MicroPython's str has the buffer protocol (bridge 5: ``py/objstr.c``,
    ``mp_obj_str_get_buffer``; ``memoryview("abc")`` works on a board); a ``bytearray`` (or a
    view of one) gives a ``BytearrayView``, which leaves the bytearray resizable (bridge 6);
    anything else CPython's view."""

    def __new__(cls, source: object) -> memoryview | BytearrayView:  # type: ignore[misc]
        if isinstance(source, bytearray):
            return BytearrayView(source)
        if isinstance(source, BytearrayView):
            view: BytearrayView = source[:]  # the same bytes of the same bytearray
            return view
        if isinstance(source, str):
            return memoryview(source.encode("utf-8", "surrogatepass")).toreadonly()
        return memoryview(source)  # type: ignore[arg-type]


def str_decode(function: Any, source: object, *args: Any, **kwargs: Any) -> Any:
    """``str(source, encoding...)`` in a script: a ``BytearrayView`` is decoded as its bytes
    (bridge 6). ``function`` is what the name ``str`` meant where the call was written."""
    if function is str and isinstance(source, BytearrayView):
        source = source.tobytes()
    return function(source, *args, **kwargs)


HELPERS: Mapping[str, object] = MappingProxyType(
    {
        BYTES_PERCENT: bytes_percent,
        BYTES_FORMAT: bytes_format,
        AWAITABLE: awaitable,
        STR_DECODE: str_decode,
        "memoryview": ScriptMemoryview,
    }
)


def _is_bytes_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, bytes)


def _helper_call(
    name: str, node: ast.AST, args: list[ast.expr], keywords: list[ast.keyword] | None = None
) -> ast.Call:
    call = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=keywords or [])
    return ast.copy_location(call, node)


class BridgeTransformer(ast.NodeTransformer):
    """Rewrites the constructs (1-4, and ``str(x, encoding)`` for 6) listed in the module
    docstring; leaves all else alone."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if not (isinstance(node.op, ast.Mod) and _is_bytes_literal(node.left)):
            return node
        assert isinstance(node.left, ast.Constant) and isinstance(node.left.value, bytes)
        specs = conversions(node.left.value)
        if specs is None:
            return node
        specs_value: Any = specs  # a tuple of constants is a valid Constant value
        spec_constant = ast.copy_location(ast.Constant(value=specs_value), node)
        return _helper_call(BYTES_PERCENT, node, [node.left, node.right, spec_constant])

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        function = node.func
        if (
            isinstance(function, ast.Attribute)
            and function.attr == "format"
            and _is_bytes_literal(function.value)
        ):
            return _helper_call(BYTES_FORMAT, node, [function.value, *node.args], node.keywords)
        if (
            isinstance(function, ast.Name)
            and function.id == "str"
            and (len(node.args) >= 2 or (node.args and node.keywords))
            and not any(isinstance(arg, ast.Starred) for arg in node.args)
        ):
            return _helper_call(STR_DECODE, node, [function, *node.args], node.keywords)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        self.generic_visit(node)
        value = node.value
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "const"
            and len(value.args) == 1
            and not value.keywords
        ):
            node.value = value.args[0]
        return node

    def visit_Await(self, node: ast.Await) -> ast.expr:
        self.generic_visit(node)
        node.value = _helper_call(AWAITABLE, node.value, [node.value])
        return node


def compile_script(source: bytes, filename: str, optimize: int = 0) -> CodeType:
    """Compile script-world source with the bridges applied.

    ``optimize`` follows ``micropython.opt_level``: level 1 and up drop ``assert`` statements and
    make ``__debug__`` false, as MicroPython's compiler does.
    """
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as error:
        raise error.with_traceback(None) from None  # report the script's error, not ours
    tree = BridgeTransformer().visit(tree)
    ast.fix_missing_locations(tree)
    code: CodeType = compile(
        tree, filename, "exec", dont_inherit=True, optimize=1 if optimize > 0 else 0
    )
    return code
