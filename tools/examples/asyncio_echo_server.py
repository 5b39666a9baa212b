# A MicroPython asyncio TCP echo server: asyncio.start_server, one task per client, each line
# sent back as it arrives. It stops after CLIENTS clients (0: never) or IDLE seconds without one.
#
#   asyncio_echo_server.py [PORT [CLIENTS [IDLE]]]   defaults: 7008, forever, 30 s
#
# On the simulator it also runs a client of its own (over the stack's loopback) so something
# happens; on a TUN device it waits for the kernel's clients:
#   pystack run tools/examples/asyncio_echo_server.py 7008 1 5 --self-test
#   pystack run --link tun --netns NS tools/examples/asyncio_echo_server.py 7008 3
# then from the kernel side:  ip netns exec NS nc 10.0.0.2 7008
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 7008
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 0
IDLE_MS = int(float(sys.argv[3]) * 1000) if len(sys.argv) > 3 else 30000
SELF_TEST = "--self-test" in sys.argv

served = 0
echoed = 0
finished = asyncio.Event()


async def serve(reader, writer):
    global served, echoed
    peer = writer.get_extra_info("peername")
    print("client", served + 1, "from", peer)
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
        echoed += len(line)
    writer.close()
    await writer.wait_closed()
    served += 1
    if CLIENTS and served >= CLIENTS:
        finished.set()


async def self_test():
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    for number in range(3):
        writer.write(b"line %d\n" % number)
        await writer.drain()
        print("self-test got", await reader.readline())
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(serve, "0.0.0.0", PORT)
    print("asyncio echo server on port", PORT)
    if SELF_TEST:
        asyncio.create_task(self_test())
    while not finished.is_set():
        before = served
        try:
            await asyncio.wait_for_ms(finished.wait(), IDLE_MS)
        except asyncio.TimeoutError:
            if served == before:
                print("idle for", IDLE_MS, "ms")
                break
    server.close()
    await server.wait_closed()
    print("served", served, "clients, echoed", echoed, "bytes")


asyncio.run(main())
