"""``pystack run`` and ``pystack up`` against the Linux kernel, inside a namespace each test creates.

The kernel side is a small Python program (or dnsmasq) started in the namespace first; pystack
then runs as a person would run it, as a subprocess with ``--netns NAME`` (an existing namespace:
pystack adds its device, gives the kernel side 10.0.0.1 and removes the device afterwards). The
scripts are the MicroPython examples in tools/examples. Afterwards every test checks that no
pystack process, no device and (through the ``netns`` fixture) no namespace is left, also when
it failed. Without root these tests skip; with ``PYSTACK_REQUIRE_KERNEL=1`` a skip is a failure.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess

import pytest

from pystack.wire.addresses import ip_from_str
from pystack.wire.dns import RCODE_NXDOMAIN, TYPE_A, DNSMessage
from tests.helpers.kernel_bench import ROOT, WAIT, Bench, stop, wait_for

EXAMPLES = ROOT / "tools" / "examples"
PYSTACK = "10.0.0.2"
KERNEL = "10.0.0.1"

# The kernel's side: plain CPython socket programs run inside the namespace.
KERNEL_ECHO = """
    import socket, sys
    port, count, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.settimeout(timeout)
    print("ready", flush=True)
    served = 0
    while served < count:
        try:
            data, source = s.recvfrom(65535)
        except socket.timeout:
            break
        s.sendto(data, source)
        served += 1
        print("echoed", len(data), "to", source[0], flush=True)
    print("served", served, flush=True)
"""
KERNEL_CLIENT = """
    import socket, sys
    host, port, sizes = sys.argv[1], int(sys.argv[2]), [int(n) for n in sys.argv[3].split(",")]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for number, size in enumerate(sizes):
        data = bytes((number * 7 + k) % 256 for k in range(size))
        s.sendto(data, (host, port))
        reply, source = s.recvfrom(65535)
        if reply != data or source != (host, port):
            sys.exit(f"bad reply to {size} bytes from {source}: {len(reply)} bytes")
        print("ok", size, flush=True)
"""
KERNEL_REFUSED = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.settimeout(5)
    s.send(b"anyone there?")
    try:
        s.recv(100)
    except ConnectionRefusedError as error:
        print("refused", error.errno, flush=True)
    else:
        print("answered", flush=True)
"""
KERNEL_DNS_QUERY = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for query in sys.argv[3:]:
        s.sendto(bytes.fromhex(query), (sys.argv[1], int(sys.argv[2])))
        print(s.recvfrom(4096)[0].hex(), flush=True)
"""
# Used when dnsmasq is not installed: pystack's DNS server core on a kernel UDP socket.
KERNEL_DNS_SERVER = """
    import socket, sys
    from pystack.dns.server import DNSServer
    from pystack.wire.addresses import ip_from_str
    server = DNSServer({"kernel.test": ip_from_str(sys.argv[1])})
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 53))
    s.settimeout(float(sys.argv[2]))
    print("ready", flush=True)
    for _ in range(100):
        try:
            query, source = s.recvfrom(4096)
        except socket.timeout:
            break
        reply = server.answer(query)
        if reply is not None:
            s.sendto(reply, source)
"""


def _arp_lines(trace: str) -> set[str]:
    """Which ARP exchanges a ``--trace`` shows, as 'pystack asks', 'kernel answers' and so on."""
    seen = set()
    if re.search(rf"> ARP, Request who-has {KERNEL} tell {PYSTACK}", trace):
        seen.add("pystack asks")
    if re.search(rf"< ARP, Reply {KERNEL} is-at ", trace):
        seen.add("kernel answers")
    if re.search(rf"< ARP, Request who-has {PYSTACK} tell {KERNEL}", trace):
        seen.add("kernel asks")
    if re.search(rf"> ARP, Reply {PYSTACK} is-at ", trace):
        seen.add("pystack answers")
    return seen


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_script_is_a_client_of_a_kernel_echo_server(bench: Bench, link: str) -> None:
    echo, echo_output = bench.kernel("kernel-echo", KERNEL_ECHO, "7", "6", str(WAIT))
    wait_for(echo_output, "^ready", echo)
    run = ("--link", link, "--netns", bench.namespace.name, "--trace")
    short = bench.pystack_run(*run, str(EXAMPLES / "udp_echo_client.py"), KERNEL, "7", "3")
    assert short.returncode == 0, short.stdout + short.stderr
    assert [re.sub(r" in \d+ ms$", "", line) for line in short.stdout.splitlines()] == [
        f"echo from ('{KERNEL}', 7) b'hello 0'",
        f"echo from ('{KERNEL}', 7) b'hello 1'",
        f"echo from ('{KERNEL}', 7) b'hello 2'",
        "sent 3 received 3 lost 0 corrupt 0",
    ]
    large = bench.pystack_run(*run, str(EXAMPLES / "udp_echo_client.py"), KERNEL, "7", "3", "20000")
    assert large.returncode == 0, large.stdout + large.stderr
    assert large.stdout.splitlines()[-1] == "sent 3 received 3 lost 0 corrupt 0"
    assert large.stdout.count("20000 bytes in") == 3
    # 20,000 bytes do not fit a 1500-byte MTU: fragments went out and came back.
    assert re.search(rf"> IP {PYSTACK}.* > {KERNEL}.*\bfrag", large.stderr), large.stderr[:2000]
    assert re.search(rf"< IP {KERNEL}.* > {PYSTACK}.*\bfrag", large.stderr), large.stderr[:2000]
    assert echo.wait(timeout=WAIT) == 0
    assert echo_output.read_text().splitlines()[-1] == "served 6"
    if link == "tap":
        assert {"pystack asks", "kernel answers"} <= _arp_lines(short.stderr), short.stderr
    else:
        assert "ARP" not in short.stderr + large.stderr


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_kernel_is_a_client_of_the_scripts_echo_server(bench: Bench, link: str) -> None:
    server, out, err = bench.pystack(
        "run", "--link", link, "--netns", bench.namespace.name, "--trace",
        str(EXAMPLES / "udp_echo_server.py"), "7000", "3", str(WAIT),
    )  # fmt: skip
    wait_for(out, "^listening on port 7000", server)
    client = bench.kernel_run(KERNEL_CLIENT, PYSTACK, "7000", "5,1000,20000")
    assert client.returncode == 0, client.stdout + client.stderr
    assert client.stdout.splitlines() == ["ok 5", "ok 1000", "ok 20000"]
    assert server.wait(timeout=WAIT) == 0, err.read_text()
    lines = out.read_text().splitlines()
    assert lines[1:4] == [
        f"served 1 from ('{KERNEL}', {_port(lines[1])}) b'\\x00\\x01\\x02\\x03\\x04'",
        f"served 2 from ('{KERNEL}', {_port(lines[1])}) 1000 bytes",
        f"served 3 from ('{KERNEL}', {_port(lines[1])}) 20000 bytes",
    ]
    assert re.fullmatch(r"served 3 datagrams, 21005 bytes in \d+ ms", lines[4])
    if link == "tap":
        assert {"kernel asks", "pystack answers"} <= _arp_lines(err.read_text()), err.read_text()


def _port(line: str) -> int:
    match = re.search(r"', (\d+)\)", line)
    assert match, line
    return int(match.group(1))


def test_port_unreachable_reaches_a_connected_kernel_socket_as_econnrefused(
    bench: Bench,
) -> None:
    server, out, _ = bench.pystack(
        "run", "--link", "tun", "--netns", bench.namespace.name,
        str(EXAMPLES / "udp_echo_server.py"), "7000", "1", "3",
    )  # fmt: skip
    wait_for(out, "^listening on port 7000", server)
    result = bench.kernel_run(KERNEL_REFUSED, PYSTACK, "7001")
    assert result.stdout == "refused 111\n", result.stdout + result.stderr
    stop(server)


def test_kernel_resolves_names_through_pystack_up_serve_dns(bench: Bench) -> None:
    hosts = bench.tmp_path / "hosts"
    hosts.write_text("10.0.0.77 printer.test\n")
    up, _, err = bench.pystack(
        "up", "--link", "tun", "--netns", bench.namespace.name, "--serve", "dns",
        "--hosts", str(hosts), "--duration", str(WAIT * 2),
    )  # fmt: skip
    text = wait_for(err, r"is up", up)
    assert "serving dns/53" in text
    queries = [
        DNSMessage.query(0x1001, "pystack.test"),
        DNSMessage.query(0x1002, "PRINTER.test"),
        DNSMessage.query(0x1003, "nobody.test"),
    ]
    result = bench.kernel_run(KERNEL_DNS_QUERY, PYSTACK, "53", *(q.build().hex() for q in queries))
    assert result.returncode == 0, result.stdout + result.stderr
    replies = [DNSMessage.parse(bytes.fromhex(line)) for line in result.stdout.split()]
    assert [reply.id for reply in replies] == [0x1001, 0x1002, 0x1003]
    assert [[(r.rtype, r.data) for r in reply.answers] for reply in replies[:2]] == [
        [(TYPE_A, ip_from_str(PYSTACK))],
        [(TYPE_A, ip_from_str("10.0.0.77"))],
    ]
    assert all(reply.qr and reply.aa for reply in replies)
    assert replies[2].rcode == RCODE_NXDOMAIN and not replies[2].answers
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=WAIT) == 128 + signal.SIGTERM  # the conventional status
    assert "stopping" in err.read_text()


@pytest.mark.parametrize("server", ["dnsmasq", "python"])
def test_script_resolves_a_name_through_a_kernel_side_dns_server(bench: Bench, server: str) -> None:
    if server == "dnsmasq":
        if shutil.which("dnsmasq") is None:
            pytest.skip("dnsmasq is not installed (the python responder covers this)")
        # dnsmasq starts before pystack's device exists, so it cannot bind to it
        # (--bind-interfaces fails on an unknown interface): it listens on the wildcard address
        # and answers only queries arriving on a pst* device.
        path = bench._output("dnsmasq")
        process = bench.namespace.popen(
            [
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--pid-file=", "--user=root",
                "--no-resolv", "--no-hosts", f"--address=/kernel.test/{KERNEL}",
                "--interface=pst*", "--except-interface=lo",
            ],
            stdout=bench._open(path),
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        wait_for(path, r"dnsmasq: started", process)
    else:
        process, path = bench.kernel("dns-server", KERNEL_DNS_SERVER, KERNEL, str(WAIT))
        wait_for(path, "^ready", process)
    result = bench.pystack_run(
        "--link", "tun", "--netns", bench.namespace.name, "--dns", KERNEL, "--trace",
        str(EXAMPLES / "dns_lookup.py"), "kernel.test",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, f"kernel.test {KERNEL}\n"), result.stderr
    assert re.search(
        rf"> IP {PYSTACK}\.\d+ > {KERNEL}\.53: DNS \d+\+ A\? kernel\.test\.", result.stderr
    )
    assert process.poll() is None, path.read_text()  # still serving: stopped by the fixture


KERNEL_MULTICAST_SENDER = """
    import socket, sys
    group, port, interface = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    for number in range(int(sys.argv[4])):
        s.sendto(b"to the group %d" % number, (group, port))
"""


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_broadcast_beacons_reach_a_kernel_echo_server(bench: Bench, link: str) -> None:
    echo, echo_output = bench.kernel("kernel-echo", KERNEL_ECHO, "7", "2", str(WAIT))
    wait_for(echo_output, "^ready", echo)
    result = bench.pystack_run(
        "--link", link, "--netns", bench.namespace.name,
        str(EXAMPLES / "broadcast_beacon.py"), "7", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sent b'beacon 0 to 10.0.0.255'",
        f"reply from ('{KERNEL}', 7) b'beacon 0 to 10.0.0.255'",
        "sent b'beacon 0 to 255.255.255.255'",
        f"reply from ('{KERNEL}', 7) b'beacon 0 to 255.255.255.255'",
        "sent 2 beacons, heard 2 replies",
    ]
    assert echo.wait(timeout=WAIT) == 0


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_multicast_listener_hears_the_kernel_send_to_its_group(bench: Bench, link: str) -> None:
    listener, out, err = bench.pystack(
        "run", "--link", link, "--netns", bench.namespace.name, "--trace",
        str(EXAMPLES / "multicast_listener.py"), "239.1.2.3", "5007", str(WAIT), "3",
    )  # fmt: skip
    wait_for(out, "^joined 239.1.2.3", listener)
    sender = bench.kernel_run(KERNEL_MULTICAST_SENDER, "239.1.2.3", "5007", KERNEL, "3")
    assert sender.returncode == 0, sender.stderr
    assert listener.wait(timeout=WAIT) == 0, err.read_text()
    lines = out.read_text().splitlines()
    assert [re.sub(r"\('10\.0\.0\.1', \d+\)", "KERNEL", line) for line in lines] == [
        "joined 239.1.2.3 port 5007",
        "from KERNEL b'to the group 0'",
        "from KERNEL b'to the group 1'",
        "from KERNEL b'to the group 2'",
        "left 239.1.2.3 after 3 datagrams",
    ]
    trace = err.read_text()
    assert "IGMP v2 report 239.1.2.3" in trace and "IGMP leave 239.1.2.3" in trace


# A kernel-side reader: accept one connection, read to the end, say how it ended.
KERNEL_READER = """
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", int(sys.argv[1])))
    server.listen(1)
    server.settimeout(float(sys.argv[2]))
    print("ready", flush=True)
    connection, _ = server.accept()
    connection.settimeout(float(sys.argv[2]))
    total = 0
    try:
        while data := connection.recv(65536):
            if total == 0:
                print("first bytes", flush=True)
            total += len(data)
    except ConnectionResetError as error:
        print("reset", error.errno, "after", total, flush=True)
    else:
        print("eof after", total, flush=True)
"""
SEND_AND_RETURN = """
import socket, sys
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
s.write(bytes(range(256)) * 4096)  # 1 MiB, then the script ends without close()
print("handed over", flush=True)
"""
SEND_AND_WAIT = """
import socket, sys, time
s = socket.socket()
s.connect((sys.argv[1], int(sys.argv[2])))
s.write(b"hello")
print("connected", flush=True)
time.sleep(60)
"""


def test_a_script_that_returns_at_once_still_delivers_a_megabyte_then_fin(bench: Bench) -> None:
    """Issue 11: the exit closes as close() would: every byte over 5% loss, then the FIN."""
    reader, reader_output = bench.kernel("kernel-reader", KERNEL_READER, "7100", str(WAIT))
    wait_for(reader_output, "^ready", reader)
    script = bench.tmp_path / "send_and_return.py"
    script.write_text(SEND_AND_RETURN)
    result = bench.pystack_run(
        "--link", "tun", "--netns", bench.namespace.name, "--impair", "loss=5%,seed=11",
        "--seed", "11", str(script), KERNEL, "7100",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "handed over\n", "")
    assert reader.wait(timeout=WAIT) == 0
    assert reader_output.read_text().splitlines()[-1] == f"eof after {1 << 20}"


def test_ctrl_c_resets_the_scripts_connections(bench: Bench) -> None:
    """Issue 11: a script killed by Ctrl-C resets its connections; the kernel sees ECONNRESET."""
    reader, reader_output = bench.kernel("kernel-reader", KERNEL_READER, "7101", str(WAIT))
    wait_for(reader_output, "^ready", reader)
    script = bench.tmp_path / "send_and_wait.py"
    script.write_text(SEND_AND_WAIT)
    process, out, err = bench.pystack(
        "run", "--link", "tun", "--netns", bench.namespace.name, str(script), KERNEL, "7101"
    )
    wait_for(out, "^connected", process)
    wait_for(reader_output, "^first bytes", reader)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=WAIT) == 130
    assert reader.wait(timeout=WAIT) == 0
    assert reader_output.read_text().splitlines()[-1] == "reset 104 after 5"
    note = err.read_text().splitlines()[-1]
    assert re.fullmatch(
        rf"pystack: exit: reset 1 connection \(the script ended abruptly\): "
        rf"{PYSTACK}:\d+ -> {KERNEL}:7101 \(0 bytes not delivered\)",
        note,
    ), err.read_text()
