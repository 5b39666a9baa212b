"""Streams on pystack's TCP sockets (docs/asyncio.md 3, 5.3): the loopback walk-through, the
peer's echo/daytime/discard services, servers on the host's own loopback, errors that wait for
the first read, and drain against a full send path. All on the in-process simulated network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack.services import certs
from tests.runtime.asyncio_scripts import AsyncioScripts


@pytest.fixture
def scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AsyncioScripts]:
    runner = AsyncioScripts(tmp_path, capsys)
    yield runner
    runner.close()


LOOPBACK = """
import asyncio

async def client(host, port):
    print("client open_connection to {}:{}".format(host, port))
    reader, writer = await asyncio.open_connection(host, port)
    data_out = b"x" * 100
    print("client writing")
    writer.write(data_out)
    await writer.drain()
    await asyncio.sleep(0.1)
    print("client reading")
    data = await reader.readexactly(100)
    print("client got", len(data), "bytes")
    assert data == data_out
    print("client closing")
    writer.close()
    await writer.wait_closed()
    print("client closed")

async def echo_handler(reader, writer):
    print("handler reading")
    await asyncio.sleep(0.1)
    data = await reader.readexactly(100)
    print("handler got", len(data), "bytes")
    print("handler writing")
    writer.write(data)
    await writer.drain()
    print("handler closing")
    writer.close()
    await writer.wait_closed()
    print("handler closed")

async def test(host, port):
    print("create server on {}:{}".format(host, port))
    server = await asyncio.start_server(echo_handler, host, port)
    async with server:
        print("server started")
        await client("127.0.0.1", port)
    print("server closed")

asyncio.run(test("0.0.0.0", 8080))
"""

LOOPBACK_EXPECTED = [
    "create server on 0.0.0.0:8080",
    "server started",
    "client open_connection to 127.0.0.1:8080",
    "client writing",
    "handler reading",
    "client reading",
    "handler got 100 bytes",
    "handler writing",
    "handler closing",
    "handler closed",
    "client got 100 bytes",
    "client closing",
    "client closed",
    "server closed",
]

# Section 5.3 rows 7-9: when the two sleep(0.1) calls fall on either side of a millisecond
# boundary the handler's key is the earlier one and it reads, answers and closes before the
# client reads. MicroPython does the same (verified there with a 2 ms busy-wait).
LOOPBACK_FLIPPED = [
    *LOOPBACK_EXPECTED[:5],
    *LOOPBACK_EXPECTED[6:10],
    "client reading",
    *LOOPBACK_EXPECTED[10:],
]


def test_5_3_loopback_walkthrough(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(LOOPBACK)
    assert (outcome.status, outcome.err) == (0, "")
    assert outcome.lines == LOOPBACK_EXPECTED


def test_5_3_loopback_on_real_time_gives_the_exp_or_micropythons_boundary_flip(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(LOOPBACK, real_time=True)
    assert outcome.status == 0, outcome.err
    assert outcome.lines in (LOOPBACK_EXPECTED, LOOPBACK_FLIPPED)


def test_a_client_of_the_peers_echo_service(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def main():
            reader, writer = await asyncio.open_connection("10.0.0.1", 7)
            print(reader is writer)
            writer.write(b"hello\\nworld\\n")
            await writer.drain()
            print(await reader.readline(), await reader.readline())
            await writer.awrite(b"-0123456789-", 1, 10)
            print(await reader.readexactly(10))
            writer.write(b"x" * 3000)
            await writer.drain()
            print(len(await reader.readexactly(3000)))
            try:
                writer.get_extra_info("peername")
            except KeyError:
                print("client streams have no peername")
            try:
                await asyncio.wait_for(reader.read(10), 0.05)
            except asyncio.TimeoutError:
                print("nothing to read")
            writer.write(b"still works\\n")     # the cancelled read left the socket usable
            print(await reader.readline())
            writer.close()                       # does nothing
            await writer.wait_closed()           # closes the socket
            try:
                writer.write(b"late")
            except OSError as error:
                print("OSError", error.errno)
        asyncio.run(main())
        """
    )
    assert (outcome.status, outcome.err) == (0, "")
    assert outcome.lines == [
        "True",
        "b'hello\\n' b'world\\n'",
        "b'0123456789'",
        "3000",
        "client streams have no peername",
        "nothing to read",
        "b'still works\\n'",
        "OSError 9",
    ]


def test_reading_to_eof_and_readexactly_past_eof(scripts: AsyncioScripts) -> None:
    # The daytime service (port 13) sends one line and closes.
    outcome = scripts.run(
        """
        import asyncio
        async def main():
            reader, writer = await asyncio.open_connection("10.0.0.1", 13)
            text = await reader.read()
            print(len(text) > 10, text.endswith(b"\\n"), await reader.read(), await reader.read(5))
            await writer.wait_closed()
            reader, writer = await asyncio.open_connection("10.0.0.1", 13)
            try:
                await reader.readexactly(1000)
            except EOFError:
                print("EOFError")
            await writer.wait_closed()
            reader, writer = await asyncio.open_connection("10.0.0.1", 13)
            line = await reader.readline()
            print(line == text, await reader.readline())
            await writer.wait_closed()
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["True True b'' b''", "EOFError", "True b''"]


def test_server_streams_know_the_peer_and_handlers_outlive_the_closed_server(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        started = asyncio.Event()
        done = asyncio.Event()
        async def handler(reader, writer):
            host, port = writer.get_extra_info("peername")
            print("handler for", host, port > 1023)
            started.set()
            await asyncio.sleep_ms(20)          # the server closes meanwhile
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            await writer.wait_closed()
            done.set()
        async def main():
            server = await asyncio.start_server(handler, "0.0.0.0", 8001)
            reader, writer = await asyncio.open_connection("127.0.0.1", 8001)
            writer.write(b"shout\\n")
            await started.wait()
            server.close()
            await server.wait_closed()
            print("server closed", server.task.done())
            print(await reader.readline())
            await done.wait()
            await writer.wait_closed()
        asyncio.run(main())
        """
    )
    assert (outcome.status, outcome.err) == (0, "")
    assert outcome.lines == ["handler for 127.0.0.1 True", "server closed True", "b'SHOUT\\n'"]


def test_bind_errors_come_from_start_server_before_it_suspends(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def handler(reader, writer):
            pass
        async def bystander():
            print("bystander")
        async def main():
            server = await asyncio.start_server(handler, "0.0.0.0", 8002)
            asyncio.create_task(bystander())
            try:
                await asyncio.start_server(handler, "0.0.0.0", 8002)
            except OSError as error:
                print("OSError", error.errno)
            async with server:
                pass
            print("closed")
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["OSError 98", "bystander", "closed"]


def test_a_cancel_forwarded_to_the_accept_loop_is_raised_not_swallowed(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def handler(reader, writer):
            pass
        async def waits_for_server(server):
            try:
                await server.wait_closed()
            except asyncio.CancelledError:
                print("waiter cancelled")
                raise
        async def main():
            server = await asyncio.start_server(handler, "0.0.0.0", 8003)
            waiter = asyncio.create_task(waits_for_server(server))
            await asyncio.sleep(0)
            waiter.cancel()             # forwarded along the await link to the accept loop
            try:
                await waiter
            except asyncio.CancelledError:
                print("CancelledError", server.task.done())
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["waiter cancelled", "CancelledError True"]


def test_connect_errors_wait_for_the_first_read_and_name_errors_come_at_once(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def main():
            reader, writer = await asyncio.open_connection("10.0.0.1", 4444)  # nobody listens
            print("open_connection returned")
            try:
                await reader.read(10)
            except OSError as error:
                print("OSError", error.errno)
            await writer.wait_closed()
            try:
                await asyncio.open_connection("no.such.name", 80)
            except OSError as error:
                print("OSError", error.errno)
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["open_connection returned", "OSError 104", "OSError -2"]


def test_drain_waits_for_room_while_the_other_side_does_not_read(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        SIZE = 1000000
        go = asyncio.Event()
        done = asyncio.Event()
        async def slow_reader(reader, writer):
            await go.wait()
            data = await reader.readexactly(SIZE)
            print("handler read", len(data), data == b"z" * SIZE)
            await writer.wait_closed()
            done.set()
        async def main():
            server = await asyncio.start_server(slow_reader, "127.0.0.1", 8004)
            reader, writer = await asyncio.open_connection("127.0.0.1", 8004)
            writer.write(b"z" * SIZE)           # more than both buffers hold
            print("buffered", 0 < len(writer.out_buf) < SIZE)
            drain = asyncio.create_task(writer.drain())
            await asyncio.sleep_ms(20)
            print("drain waits", not drain.done())
            go.set()
            await drain
            left = writer.out_buf
            await done.wait()    # the last bytes and the handler's read race: print after both
            print("drained", left)
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        asyncio.run(main())
        """
    )
    assert (outcome.status, outcome.err) == (0, "")
    assert outcome.lines == [
        "buffered True",
        "drain waits True",
        "handler read 1000000 True",
        "drained b''",
    ]


def test_one_reader_and_one_writer_task_share_a_stream(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def writer_task(stream):
            for i in range(5):
                stream.write(b"line %d\\n" % i)
                await stream.drain()
                await asyncio.sleep_ms(1)
        async def reader_task(stream):
            lines = []
            while len(lines) < 5:
                lines.append(await stream.readline())
            return lines
        async def main():
            reader, writer = await asyncio.open_connection("10.0.0.1", 7)
            results = await asyncio.gather(reader_task(reader), writer_task(writer))
            print(results[0])
            await writer.wait_closed()
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "[b'line 0\\n', b'line 1\\n', b'line 2\\n', b'line 3\\n', b'line 4\\n']"
    ]


def test_tls_client_and_server_streams(scripts: AsyncioScripts) -> None:
    # ssl=True: a default client context (no verification, as ssl.py's); the peer's TLS echo
    # service on 443, then a TLS server of the script's own on its loopback.
    certificates = Path(certs.__file__).parent
    outcome = scripts.run(
        """
        import asyncio, ssl, sys
        CERTS = sys.argv[1]
        done = asyncio.Event()
        async def handler(reader, writer):
            line = await reader.readline()
            writer.write(b"server got " + line)
            await writer.drain()
            await writer.wait_closed()
            done.set()
        async def main():
            reader, writer = await asyncio.open_connection("10.0.0.1", 443, ssl=True)
            writer.write(b"over tls\\n")
            await writer.drain()
            print(await reader.readline())
            await writer.wait_closed()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(CERTS + "/server.pem", CERTS + "/server.key")
            server = await asyncio.start_server(handler, "0.0.0.0", 8443, ssl=context)
            reader, writer = await asyncio.open_connection("127.0.0.1", 8443, ssl=True)
            writer.write(b"hello\\n")
            await writer.drain()
            print(await reader.readline())
            await done.wait()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()
        asyncio.run(main())
        """,
        str(certificates),
    )
    assert (outcome.status, outcome.err) == (0, "")
    assert outcome.lines == ["b'over tls\\n'", "b'server got hello\\n'"]
