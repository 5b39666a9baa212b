"""Each language bridge works for script code, and only for script code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.runtime.bridges import bytes_percent, conversions
from tests.runtime.scripts import ScriptRunner

ROOT = Path(__file__).resolve().parents[2]


def test_bytes_percent_formats_str_in_scripts(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        method, path, host = "GET", "index.html", "example.com"
        print(b"%s /%s HTTP/1.0\\r\\n" % (method, path))
        print(b"Host: %s" % host)
        print(b"%s %d %x" % ("x", 3, 255))
        print(b"%s|%s|%s" % (5, None, b"raw"))
        print(b"%(name)s=%(value)d" % {"name": "n", "value": 4})
        print(b"%5s|%-3s|%c" % ("ab", "c", "z"))
        print(b"%*d" % (4, 7), b"100%%" % ())
        print(b"%s" % "\\u00e9")
        """
    )
    assert outcome.out.splitlines() == [
        "b'GET /index.html HTTP/1.0\\r\\n'",
        "b'Host: example.com'",
        "b'x 3 ff'",
        "b'5|None|raw'",
        "b'n=4'",
        "b'   ab|c  |z'",
        "b'   7' b'100%'",
        "b'\\xc3\\xa9'",
    ], outcome.err


def test_bytes_percent_keeps_cpythons_errors(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        for attempt in (lambda: b"%s %s" % ("one",), lambda: b"%d" % "x"):
            try:
                attempt()
            except TypeError as error:
                print("TypeError")
        """
    )
    assert outcome.out == "TypeError\nTypeError\n", outcome.err


def test_bytes_percent_is_unchanged_outside_the_script_world(script: ScriptRunner) -> None:
    template, text = b"%s", "text"
    with pytest.raises(TypeError):
        template % text
    outcome = script.run("import json\nprint(b'%s' % 'x')\n")
    assert outcome.out == "b'x'\n"
    with pytest.raises(TypeError):
        template % text
    with pytest.raises(AttributeError):
        getattr(b"{}", "format")  # noqa: B009


def test_stdlib_called_by_the_script_keeps_cpythons_semantics(script: ScriptRunner) -> None:
    script.cpython_modules()  # operator is CPython's
    script.write("cpython_side.py", "")  # the script world's modules are bridged...
    outcome = script.run(
        """
        import operator
        print(b"%s" % "bridged")
        try:
            operator.mod(b"%s", "not bridged")  # ...but CPython code keeps raising
        except TypeError:
            print("TypeError")
        """
    )
    assert outcome.out == "b'bridged'\nTypeError\n", outcome.err


def test_bytes_format_method(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        print(b"{}:{}".format("user", "secret"))
        print(b"{name}={0}".format(1, name="n"), b"{}".format(b"x"))
        """
    )
    assert outcome.out == "b'user:secret'\nb'n=1' b\"b'x'\"\n", outcome.err


def test_const_needs_no_import(script: ScriptRunner) -> None:
    script.write("driver.py", "_REGISTER = const(0x10)\nPUBLIC = const(2)\n")
    outcome = script.run("import driver\nprint(driver._REGISTER, driver.PUBLIC)\n")
    assert outcome.out == "16 2\n", outcome.err
    outcome = script.run("x = 1 + const(2)\n")
    assert "NameError: name 'const' is not defined" in outcome.err  # as in MicroPython


def test_await_takes_generators_and_iterables(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        class Ready:
            def __iter__(self):
                yield "tick"
                return "ready"
        def plain_generator():
            value = yield "tock"
            return value * 2
        async def step():
            return 1
        async def main():
            first = await Ready()
            second = await plain_generator()
            third = await step()
            return first, second, third
        coroutine = main()
        print(coroutine.send(None), coroutine.send(None))
        try:
            coroutine.send(21)
        except StopIteration as stop:
            print(stop.value)
        """
    )
    assert outcome.out == "tick tock\n('ready', 42, 1)\n", outcome.err


def test_await_of_a_non_iterable_keeps_cpythons_error(script: ScriptRunner) -> None:
    outcome = script.run(
        "async def main():\n    await 5\ntry:\n    main().send(None)\n"
        "except TypeError as error:\n    print(error)\n"
    )
    assert outcome.out == "object int can't be used in 'await' expression\n", outcome.err


def test_conversions_are_parsed_once_at_compile_time() -> None:
    assert conversions(b"%s and %d") == ((None, "s"), (None, "d"))
    assert conversions(b"%(a)s %(b)5.2f %%") == (("a", "s"), ("b", "f"))
    assert conversions(b"%*.*f") == ((None, "*"), (None, "*"), (None, "f"))
    assert conversions(b"plain") == ()
    assert conversions(b"100%") is None
    assert conversions(b"%y") is None


@given(st.lists(st.one_of(st.integers(), st.binary()), max_size=4))
def test_bytes_percent_agrees_with_cpython_where_cpython_already_works(
    values: list[int | bytes],
) -> None:
    template = b" ".join(b"%d" if isinstance(v, int) else b"%s" for v in values)
    specs = conversions(template)
    assert specs is not None
    assert bytes_percent(template, tuple(values), specs) == template % tuple(values)


def test_str_is_a_read_only_buffer(script: ScriptRunner) -> None:
    # MicroPython's str has the buffer protocol (py/objstr.c: mp_obj_str_get_buffer), so
    # memoryview, struct, binascii and hashlib take it; on MicroPython this script prints:
    outcome = script.run(
        """
        import struct, binascii, hashlib
        m = memoryview("héllo")
        print(len(m), bytes(m), m[0], isinstance(m, memoryview))
        try:
            m[0] = 72
        except TypeError:
            print("read-only")
        print(struct.pack("2s", "ab"), binascii.hexlify("ab"))
        print(hashlib.sha256("abc").digest() == hashlib.sha256(b"abc").digest())
        print(memoryview(b"xy")[1], memoryview(bytearray(b"z"))[0])
        """
    )
    assert outcome.out == (
        "6 b'h\\xc3\\xa9llo' 104 True\nread-only\nb'ab' b'6162'\nTrue\n121 122\n"
    ), outcome.err


def test_str_written_to_a_socket_stream(tmp_path: Path) -> None:
    # extmod/modlwip.c (lwip_socket_send) and py/stream.c (mp_stream_write) take any read-only
    # buffer (mp_get_buffer_raise), a str included: the simulated peer's echo returns its bytes
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import socket
            s = socket.socket()
            s.connect(socket.getaddrinfo("peer.sim", 7)[0][-1])
            print(s.send("ping "), s.write("pöng"))
            got = b""
            while len(got) < 10:
                got += s.recv(16)
            print(got)
            s.close()
            """
        )
    )
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "MICROPYPATH": ".frozen", "HOME": "/"}
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "5 5\nb'ping p\\xc3\\xb6ng'\n"


def test_bytearray_resized_under_a_live_memoryview(script: ScriptRunner) -> None:
    # MicroPython's memoryview keeps a pointer, an offset and a length and does not stop its
    # bytearray from being resized (py/objarray.c: "we don't handle the case where the
    # original buffer might change size"; array_extend, array_subscr's slice assignment); its
    # length stays, and a shrink clears the freed tail (mp_seq_clear), read as zeros.
    # MicroPython v1.24 prints the lines asserted below.
    outcome = script.run(
        """
        ba = bytearray(b"hello")
        mv = memoryview(ba)
        ba.extend(b" world")
        ba += b"!"
        ba[len(ba):] = b"?"
        print(len(ba), len(mv), bytes(mv), isinstance(mv, memoryview), mv)
        print(mv[1:3] == b"el", bytes(mv[-2:]), mv[0], mv.hex(), list(mv[:2]))
        mv[0:2] = b"HE"
        mv[4] = 0x14F
        print(ba)
        ba[:] = b"ab"
        print(bytes(mv), bytearray(mv), str(mv[:2], "utf-8"), mv[4])
        for bad in (lambda: mv[::2], lambda: mv.__setitem__(slice(0, 2), b"x")):
            try:
                bad()
            except (NotImplementedError, ValueError) as error:
                print(type(error).__name__, error)
        grown = bytearray(b"<")
        same = grown
        for _ in range(12):
            grown += mv[:1]  # grows in place, as bytearray.extend
        print(grown is same, grown, b"x" + mv[:2], bytearray(b"y") + mv[:2] is same)
        """
    )
    assert outcome.out.splitlines() == [
        "13 5 b'hello' True <memoryview>",
        "True b'lo' 104 68656c6c6f [104, 101]",
        "bytearray(b'HEllO world!?')",
        "b'ab\\x00\\x00\\x00' bytearray(b'ab\\x00\\x00\\x00') ab 0",
        "NotImplementedError only slices with step=1 (aka None) are supported",
        "ValueError lhs and rhs should be compatible",
        "True bytearray(b'<aaaaaaaaaaaa') b'xab' False",
    ], outcome.err


def test_views_of_bytearrays_in_struct_binascii_and_hashlib(script: ScriptRunner) -> None:
    # py/modstruct.c struct_pack_into writes through any writable buffer ("buffer too small"
    # past its end); unpack_from, hexlify and sha256 read any buffer
    outcome = script.run(
        """
        import struct, binascii, hashlib
        buf = bytearray(8)
        view = memoryview(buf)
        struct.pack_into("!HI", view, 1, 258, 7)
        struct.pack_into("B", view[6:], -1, 9)
        print(buf, struct.unpack_from("!HI", view, 1), struct.unpack("!H", view[1:3]))
        try:
            struct.pack_into("!I", view, 6, 1)
        except ValueError as error:
            print("ValueError", error)
        buf.extend(b"more")  # allowed with the views alive
        digest = hashlib.sha256(view).digest()
        print(binascii.hexlify(view[:3]), digest == hashlib.sha256(bytes(8)).digest())
        """
    )
    assert outcome.out.splitlines() == [
        "bytearray(b'\\x00\\x01\\x02\\x00\\x00\\x00\\x07\\t') (258, 7) (258,)",
        "ValueError buffer too small",
        "b'000102' False",
    ], outcome.err


def test_views_of_bytearrays_with_sockets_and_asyncio_streams(tmp_path: Path) -> None:
    # extmod/modlwip.c and py/stream.c take any buffer: send/write read it, readinto writes
    # into it (mp_get_buffer_raise with MP_BUFFER_WRITE); the bytearray may grow meanwhile.
    # The simulated peer's echo service (port 7) returns what it gets.
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, socket
            s = socket.socket()
            s.connect(socket.getaddrinfo("peer.sim", 7)[0][-1])
            out = bytearray(b"0123456789")
            print(s.send(memoryview(out)[:4]), s.write(memoryview(out)[4:]))
            into = bytearray(10)
            view = memoryview(into)
            got = 0
            while got < 10:
                got += s.readinto(view[got:])
                into.extend(b"+")  # grows under the live view
            print(got, into[:10], len(view), bytes(view))
            s.close()

            async def main():
                reader, writer = await asyncio.open_connection("peer.sim", 7)
                data = bytearray(b"stream-data")
                writer.write(memoryview(data)[:6])
                await writer.drain()
                await writer.awrite(memoryview(data), 6, 5)
                buf = bytearray(11)
                got = 0
                while got < 11:
                    got += await reader.readinto(memoryview(buf)[got:])
                print(buf)
                writer.close()
                await writer.wait_closed()

            asyncio.run(main())
            """
        )
    )
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "MICROPYPATH": ".frozen", "HOME": "/"}
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "4 6",
        "10 bytearray(b'0123456789') 10 b'0123456789'",
        "bytearray(b'stream-data')",
    ]
