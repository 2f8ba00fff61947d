"""streams.sender against real servers on 127.0.0.1 (SPEC §9.2, §11a).

The address check happens when the socket is made, so every refused case below is refused
before a single packet leaves: the non-loopback forms (NAT64, 6to4) are never connected to.
Resolvers are fakes that answer what a test says, as a DNS-rebinding name would.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp.abc import AbstractResolver

from api.hosts import is_public_host
from streams.sender import Sender, TargetRefused, public_socket
from tables.request import OutgoingRequest
from tests.flare_process import poll
from tests.receiver import Receiver

PUBLIC = "93.184.216.34"  # only ever classified, never connected to


class ChangingResolver(AbstractResolver):
    """Answers each look-up with the next of ``answers`` (the last one repeats)."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked = 0

    def next(self) -> str:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        address = self.next()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": family,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    def getaddrinfo(self, host: str, *args, **kwargs):
        """The shape ``socket.getaddrinfo`` has, for the API's create-time check."""
        address = self.next()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, 0))]

    async def close(self) -> None:
        pass


@pytest.fixture
def receiver():
    r = Receiver().up()
    yield r
    r.down()


def request(url: str) -> OutgoingRequest:
    return OutgoingRequest("POST", url, [("Content-Type", "application/json")], b"{}")


async def send(sender: Sender, url: str):
    try:
        return await sender.send(request(url), list(request(url).headers))
    finally:
        await sender.close()


async def test_a_private_target_is_refused_at_connect(receiver):
    sent = await send(Sender(5), f"{receiver.url}/x")
    assert sent.status is None
    assert sent.error.startswith("TargetRefused: 127.0.0.1 is not a public address")
    assert receiver.received() == []


def test_a_private_target_is_refused_at_connect_under_uvloop(receiver):
    # flare start runs on uvloop (app/server.py): its sockets come from the same factory.
    import uvloop

    sent = uvloop.run(send(Sender(5), f"{receiver.url}/x"))
    assert sent.error.startswith("TargetRefused: 127.0.0.1 is not a public address")
    assert receiver.received() == []


async def test_an_allowed_private_target_still_works(receiver):
    sent = await send(Sender(5, allow_private=True), f"{receiver.url}/x")
    assert sent.status == 200
    assert len(receiver.received("/x")) == 1


async def test_dns_rebinding_is_refused_at_connect(receiver):
    # Public when the subscription is created, 127.0.0.1 when the request is made.
    resolver = ChangingResolver(PUBLIC, "127.0.0.1")
    assert is_public_host("rebind.test", resolve=resolver.getaddrinfo)
    sent = await send(Sender(5, resolver=resolver), f"http://rebind.test:{receiver.port}/x")
    assert sent.status is None and sent.error.startswith("TargetRefused: 127.0.0.1")
    assert receiver.received() == []
    # The same name, allowed: the request reaches the receiver.
    allowed = ChangingResolver("127.0.0.1")
    sent = await send(Sender(5, allow_private=True, resolver=allowed),
                      f"http://rebind.test:{receiver.port}/x")
    assert sent.status == 200


@pytest.mark.parametrize("host", [
    "[::1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]",
    "[2002:7f00:1::]", "[2002:a00:1::1]", "0.0.0.0", "169.254.169.254", "10.1.2.3",
])
async def test_non_public_literals_are_refused_before_connecting(host):
    sent = await send(Sender(5), f"http://{host}:9/x")
    assert sent.status is None and sent.error.startswith("TargetRefused"), sent


@pytest.mark.parametrize("answer", ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"])
async def test_names_resolving_to_mapped_forms_are_refused(answer):
    sent = await send(Sender(5, resolver=ChangingResolver(answer)), "http://mapped.test:9/x")
    assert sent.status is None and sent.error.startswith("TargetRefused"), sent


def test_socket_factory_refuses_before_making_a_socket():
    with pytest.raises(TargetRefused):
        public_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))


async def _serve(handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_attempt_has_a_total_deadline():
    # A slow-loris receiver: headers, then a byte whenever 0.3 s pass without the sender
    # hanging up, for as long as it stays (each byte resets a per-read timeout).
    hung_up = asyncio.Event()

    async def slow(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        try:
            while True:
                try:  # the sender closing its end (EOF or reset) ends the drip
                    if not await asyncio.wait_for(reader.read(1), timeout=0.3):
                        break
                except TimeoutError:
                    writer.write(b"x")
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            hung_up.set()

    server, port = await _serve(slow)
    async with server:
        started = time.monotonic()
        sent = await send(Sender(1.0, allow_private=True), f"http://127.0.0.1:{port}/x")
        elapsed = time.monotonic() - started
        # The attempt's connection is closed, not left dripping in the pool.
        await asyncio.wait_for(hung_up.wait(), timeout=5)
    assert sent.status is None and sent.error == "Timeout"
    assert elapsed < 2.5


async def test_only_a_bounded_part_of_the_answer_is_read():
    written = 0
    closed = asyncio.Event()

    async def huge(reader, writer):
        nonlocal written
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n")
        chunk = b"x" * 65536
        try:
            while written < 1_000_000_000:
                writer.write(chunk)
                await writer.drain()
                written += len(chunk)
        except ConnectionError:
            pass
        finally:
            closed.set()

    server, port = await _serve(huge)
    async with server:
        sent = await send(Sender(5, allow_private=True, max_response_bytes=64 * 1024),
                          f"http://127.0.0.1:{port}/x")
        await asyncio.wait_for(closed.wait(), 5)
    assert sent.status == 200
    # The sender stopped reading and closed the connection long before the end.
    assert written < 50_000_000


# -- what the kernel still holds of a request when the sender lets go of it -----------------
# A graceful close hands unsent bytes to the kernel, which goes on sending them after the
# attempt was counted as failed, and after the process died (SIGKILL): test_crash saw such
# requests reach subscribers up to 15 s later, after the next attempt or a newer revision.
# The receivers below accept only once the sender has let go, and read everything that
# comes; a request must not arrive whole.

BODY = 1_000_000  # fits in the kernel's buffers of a loopback connection at once


def _stalled_listener() -> socket.socket:
    """Listens, with a receive buffer so small that nearly all of a request stays queued
    in the sender's kernel until it is read; accepts nothing by itself."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def _queued_towards(port: int) -> int:
    """Bytes waiting in this machine's send queues of established connections to
    127.0.0.1:``port`` (/proc/net/tcp: remote address, state 01, tx_queue)."""
    queued = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote, state, queues = fields[2], fields[3], fields[4]
            if int(remote.split(":")[1], 16) == port and state == "01":
                queued += int(queues.split(":")[0], 16)
    return queued


def _read_all(listener: socket.socket) -> tuple[int, str]:
    """Accept one connection and read until its end: (body bytes read, how it ended)."""
    listener.settimeout(5)
    conn, _ = listener.accept()
    conn.settimeout(10)
    data = b""
    try:
        while chunk := conn.recv(1 << 20):
            data += chunk
        ended = "EOF"
    except OSError as exc:
        ended = repr(exc)
    finally:
        conn.close()
        listener.close()
    return len(data.partition(b"\r\n\r\n")[2]), ended


async def test_a_request_given_up_on_is_not_delivered_afterwards():
    listener = _stalled_listener()
    port = listener.getsockname()[1]
    sender = Sender(0.3, allow_private=True)
    big = OutgoingRequest("POST", f"http://127.0.0.1:{port}/x", [], b"x" * BODY)
    try:
        sent = await sender.send(big, [])
    finally:
        await sender.close()
    assert sent.status is None and sent.error == "Timeout"
    read, ended = await asyncio.to_thread(_read_all, listener)
    assert read < BODY, f"the whole request arrived after the attempt failed ({ended})"


KILLED_SENDER = """
import asyncio, sys
from streams.sender import Sender
from tables.request import OutgoingRequest

async def main():
    sender = Sender(60, allow_private=True)
    request = OutgoingRequest("POST", f"http://127.0.0.1:{sys.argv[2]}/x", [], b"x" * {body})
    await sender.send(request, [])

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_request_in_flight_when_the_process_is_killed_is_not_delivered_afterwards(loop):
    import subprocess
    import sys

    listener = _stalled_listener()
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SENDER.replace("{body}", str(BODY)), loop, str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # In flight: the child's connection holds bytes of the request in its kernel.
        poll(lambda: _queued_towards(port) > 0 or child.poll() is not None, timeout=10,
             interval=0.02, message="the request queued in the sender's kernel")
        assert child.poll() is None, child.stdout.read()
    finally:
        child.kill()  # SIGKILL, as test_crash does
        child.wait()
    read, ended = _read_all(listener)
    assert read < BODY, f"the whole request arrived after the sender was killed ({ended})"
