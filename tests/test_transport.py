"""The async clients' default transport: what it sends, and "was it sent?" on every failure.

Failures before the request was handed to the connection must read as never sent (dingpush
retries them freely); failures after as maybe delivered (an app send is then not retried unless
``retry_ambiguous``). The emulator's ``drop`` faults cover the clients end to end; the scripted
server (tests/_scripted.py) covers what the emulator cannot do: close a kept-alive connection
while it is idle, reset one, stall a TLS handshake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import gzip
import pathlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator

import httpx
import pytest

import dingpush
from _appdelivery import FAST, GROUP_PATH, async_app, register
from _appsupport import cid
from _scripted import OK, OK_BODY, Peer, ScriptedServer, keep_answering
from dingpush import AsyncRobot, RetryPolicy
from dingpush._transports import AsyncioTransport, default_async_transport
from dingpush._wire import http_options
from dingpush.testing import EmulatorServer, FakeClock

pytestmark = pytest.mark.anyio

DATA = pathlib.Path(__file__).parent / "data"
ONCE = RetryPolicy.never()


def server_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(DATA / "localhost.pem", DATA / "localhost-key.pem")
    return context


def trusting_tls() -> ssl.SSLContext:
    """A client context that trusts the test certificate (and nothing else)."""
    return ssl.create_default_context(cafile=str(DATA / "localhost.pem"))


def transport(**options: object) -> AsyncioTransport:
    return AsyncioTransport(**options)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestTheDefault:
    """Which transport a client sends through."""

    async def test_async_clients_use_it_unless_told_otherwise(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        dingtalk_emulator.add_robot("ops", rate_limit=1000)
        mock = httpx.MockTransport(lambda r: httpx.Response(200, json={"errcode": 0}))
        async with (
            AsyncRobot(dingtalk_emulator.webhook_url("ops")) as default,
            AsyncRobot("https://example.invalid/robot/send?access_token=t", transport=mock) as m,
            dingpush.AsyncApp("k", "s") as app,
        ):
            assert isinstance(default._http._transport, AsyncioTransport)
            assert isinstance(app._http._transport, AsyncioTransport)
            assert m._http._transport is mock
            assert (await default.send("hello")).errcode == 0
            assert (await m.send("hello")).errcode == 0
        assert len(dingtalk_emulator.emulator.messages()) == 1

    def test_a_proxy_falls_back_to_httpx(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert default_async_transport(http_options(None, "http://proxy:3128", True)) is None
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
        assert default_async_transport(http_options(None, None, True)) is None
        # Without trust_env the environment's proxy does not apply: the fast path stays.
        assert isinstance(
            default_async_transport(http_options(None, None, False)), AsyncioTransport
        )

    async def test_https_proxy_from_the_environment_is_still_used(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A proxy that answers CONNECT with 407: the request went to the proxy, as before.
        def proxy(peer: Peer, index: int) -> None:
            request = peer.read_request()
            assert request is not None and request.head.startswith(b"CONNECT ")
            peer.send(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")

        with ScriptedServer(proxy) as server:
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.port}")
            async with AsyncRobot("https://oapi.dingtalk.com/robot/send?access_token=t") as bot:
                with pytest.raises(dingpush.TransportError) as info:
                    await bot.send("hello", retry=ONCE)
        assert not info.value.maybe_delivered  # the proxy refused the tunnel: never sent
        assert server.requests[0].target == b"oapi.dingtalk.com:443"


class TestSendsAndAnswers:
    async def test_keeps_a_connection_alive_and_reuses_it(self) -> None:
        with ScriptedServer(keep_answering) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                for _ in range(3):
                    response = await client.post(server.url, content=b"{}")
                    assert response.json() == {"errcode": 0, "errmsg": "ok"}
        assert server.connections == 1 and len(server.requests) == 3

    async def test_a_robot_sends_the_bytes_httpx_would_past_its_client_layer(self) -> None:
        """AsyncRobot posts through the transport directly: same request line, headers, body."""
        with ScriptedServer(keep_answering) as server:
            async with AsyncRobot(server.url, retry=ONCE) as robot:
                assert robot._direct is not None
                await robot.send("hello")
            options = http_options(None, None, True)
            async with httpx.AsyncClient(transport=transport(), **options) as c:
                sent = server.requests[0]
                await c.post(server.url, content=sent.body, headers=dingpush._wire.JSON_HEADERS)
        direct, through_httpx = server.requests
        assert direct.head == through_httpx.head and direct.body == through_httpx.body
        assert b"User-Agent: dingpush/" in direct.head and b"Content-Length: " in direct.head

    async def test_a_robot_reads_a_gzip_answer_on_the_direct_path(self) -> None:
        packed = gzip.compress(OK_BODY)

        def gzipped(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%b"
                % (len(packed), packed)
            )

        with ScriptedServer(gzipped) as server:
            async with AsyncRobot(server.url, retry=ONCE) as robot:
                result = await robot.send("hello")
        assert (result.errcode, result.errmsg) == (0, "ok")

    async def test_chunked_gzip_answer(self) -> None:
        packed = gzip.compress(OK_BODY)

        def chunked(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x;ext=1\r\n%b\r\n" % (10, packed[:10])
                + b"%x\r\n%b\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(packed) - 10, packed[10:])
            )
            keep_answering(peer, index)

        with ScriptedServer(chunked) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                first = await client.post(server.url, content=b"{}")
                second = await client.post(server.url, content=b"{}")
        assert first.json() == second.json() == {"errcode": 0, "errmsg": "ok"}
        assert server.connections == 1  # the chunked answer left the connection reusable

    async def test_an_answer_read_until_the_close(self) -> None:
        def until_close(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(b"HTTP/1.1 200 OK\r\n\r\n" + OK_BODY)
            peer.close()

        with ScriptedServer(until_close) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                responses = [await client.post(server.url, content=b"{}") for _ in range(2)]
        assert [r.content for r in responses] == [OK_BODY, OK_BODY]
        assert server.connections == 2

    async def test_streamed_and_large_bodies_arrive_whole(self) -> None:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"part %d;" % i

        large = bytes(range(256)) * 1024  # 256 KiB: written apart from the head, drained
        with ScriptedServer(keep_answering) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                await client.post(server.url, content=parts())
                await client.post(server.url, content=large)
                head = await client.head(server.url)
        assert [r.body for r in server.requests[:2]] == [b"part 0;part 1;part 2;", large]
        assert b"transfer-encoding: chunked" in server.requests[0].head.lower()
        assert head.status_code == 200 and head.content == b""

    async def test_an_interim_answer_is_skipped(self) -> None:
        def interim(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)

        with ScriptedServer(interim) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                response = await client.post(server.url, content=b"{}")
        assert response.json()["errcode"] == 0

    async def test_over_tls_with_the_shared_context(self) -> None:
        with ScriptedServer(keep_answering, tls=server_tls()) as server:
            async with httpx.AsyncClient(transport=transport(verify=trusting_tls())) as client:
                for _ in range(2):
                    assert (await client.post(server.url, content=b"{}")).status_code == 200
        assert server.connections == 1

    def test_one_client_across_two_event_loops(self) -> None:
        # asyncio.run() twice with one client (scripts and notebooks do): connections of the
        # first loop are dropped, not reused from the second.
        with ScriptedServer(keep_answering) as server:
            client = httpx.AsyncClient(transport=transport())
            for _ in range(2):
                assert asyncio.run(client.post(server.url, content=b"{}")).status_code == 200
            asyncio.run(client.aclose())
            # The first loop's connection could not be closed once that loop was: asyncio says
            # so when it collects it.
            with pytest.warns(ResourceWarning, match="unclosed"):
                gc.collect()
        assert server.connections == 2

    async def test_the_pool_holds_its_limit(self) -> None:
        release = threading.Event()

        def slow(peer: Peer, index: int) -> None:
            peer.read_request()
            release.wait(5)
            peer.send(OK)

        limits = httpx.Limits(max_connections=1)
        with ScriptedServer(slow) as server:
            client = httpx.AsyncClient(transport=transport(limits=limits))
            first = asyncio.ensure_future(client.post(server.url, content=b"{}"))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await client.post(server.url, content=b"{}", timeout=httpx.Timeout(5, pool=0.05))
            release.set()
            assert (await first).status_code == 200
            await client.aclose()
        assert server.connections == 1 and len(server.requests) == 1


class TestNeverSent:
    """Failures before a byte of the request was written: dingpush may retry any of them."""

    async def test_connection_refused(self) -> None:
        async with AsyncRobot(f"http://127.0.0.1:{closed_port()}/robot/send?access_token=t") as r:
            with pytest.raises(dingpush.TransportError) as info:
                await r.send("hello", retry=ONCE)
        assert not info.value.maybe_delivered
        assert isinstance(info.value.__cause__, httpx.ConnectError)

    async def test_a_certificate_not_trusted(self) -> None:
        with ScriptedServer(keep_answering, tls=server_tls()) as server:
            async with AsyncRobot(server.url) as robot:  # the system's CAs: not ours
                with pytest.raises(dingpush.TransportError, match="CERTIFICATE_VERIFY") as info:
                    await robot.send("hello", retry=ONCE)
        assert not info.value.maybe_delivered and server.requests == []

    async def test_a_tls_handshake_that_never_ends(self) -> None:
        stalled = threading.Event()

        def silent(peer: Peer, index: int) -> None:
            stalled.wait(5)  # accepts the TCP connection, never answers the TLS hello

        with ScriptedServer(silent) as server:
            url = server.url.replace("http://127.0.0.1", "https://localhost")
            async with AsyncRobot(url, timeout=httpx.Timeout(5, connect=0.2)) as robot:
                with pytest.raises(dingpush.Timeout) as info:
                    await robot.send("hello", retry=ONCE)
            stalled.set()
        assert not info.value.maybe_delivered
        assert isinstance(info.value.__cause__, httpx.ConnectTimeout)

    async def test_a_line_break_in_a_header_is_refused_before_sending(self) -> None:
        with ScriptedServer(keep_answering) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                with pytest.raises(httpx.LocalProtocolError, match="line break"):
                    await client.post(server.url, headers={"X-Note": "a\r\nX-Evil: 1"})
        assert server.requests == []

    async def test_a_kept_alive_connection_closed_while_idle_is_replaced(self) -> None:
        # The server's keep-alive time-out closes the connection after the first answer; the
        # second request must go out once, on a new connection, and succeed.
        closed = threading.Event()

        def one_then_close(peer: Peer, index: int) -> None:
            if index == 0:
                peer.read_request()
                peer.send(OK)  # "keep-alive" by HTTP/1.1's default, then:
                time.sleep(0.05)
                peer.close()
                closed.set()
            else:
                keep_answering(peer, index)

        with ScriptedServer(one_then_close) as server:
            async with httpx.AsyncClient(transport=transport()) as client:
                await client.post(server.url, content=b"first")
                closed.wait(5)
                time.sleep(0.05)  # the end of file is in the socket; the loop has not run
                response = await client.post(server.url, content=b"second")
        assert response.status_code == 200
        assert [r.body for r in server.requests] == [b"first", b"second"]
        assert server.connections == 2

    async def test_the_idle_check_sees_a_close_the_event_loop_has_not(self) -> None:
        closed = threading.Event()

        def close_after_answer(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(OK)
            time.sleep(0.05)
            peer.close()
            closed.set()

        with ScriptedServer(close_after_answer) as server:
            pool = transport()
            async with httpx.AsyncClient(transport=pool) as client:
                await client.post(server.url, content=b"{}")
                (connection,) = next(iter(pool._idle.values()))
                closed.wait(5)
                time.sleep(0.05)
                # No await since the close: the protocol has not been told, the socket knows.
                assert not connection.closed
                assert connection.stale(time.monotonic(), None)


class TestMaybeSent:
    """Failures after the request was written: never retried by the transport itself."""

    @staticmethod
    async def one_failure(handler: object, *, timeout: float = 5) -> dingpush.TransportError:
        def first_ok_then(peer: Peer, index: int) -> None:
            peer.read_request()
            peer.send(OK)
            handler(peer)  # type: ignore[operator]

        with ScriptedServer(first_ok_then) as server:
            async with AsyncRobot(server.url, timeout=timeout, retry=ONCE) as robot:
                await robot.send("first")
                with pytest.raises(dingpush.TransportError) as info:
                    await robot.send("second")
        # The failed request went out once, on the kept-alive connection, and was not resent.
        assert len(server.requests) == 2 and server.connections == 1
        return info.value

    async def test_the_server_closes_after_reading_the_request(self) -> None:
        def close_after_reading(peer: Peer) -> None:
            peer.read_request()
            peer.close()

        error = await self.one_failure(close_after_reading)
        assert error.maybe_delivered and "without answering" in str(error)

    async def test_the_server_resets_after_reading_the_request(self) -> None:
        def reset_after_reading(peer: Peer) -> None:
            peer.read_request()
            peer.reset()

        error = await self.one_failure(reset_after_reading)
        assert error.maybe_delivered

    async def test_the_answer_is_cut_short(self) -> None:
        def half_an_answer(peer: Peer) -> None:
            peer.read_request()
            peer.send(OK[:-5])
            peer.close()

        error = await self.one_failure(half_an_answer)
        assert error.maybe_delivered and "in the middle of its answer" in str(error)

    async def test_a_read_timeout(self) -> None:
        def never_answer(peer: Peer) -> None:
            peer.read_request()
            time.sleep(0.5)

        error = await self.one_failure(never_answer, timeout=0.1)
        assert isinstance(error, dingpush.Timeout) and error.maybe_delivered

    async def test_an_answer_that_is_not_http(self) -> None:
        def garbage(peer: Peer) -> None:
            peer.read_request()
            peer.send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

        error = await self.one_failure(garbage)
        assert error.maybe_delivered and "status line" in str(error)


class TestEndToEnd:
    """The emulator's dropped connections, before and after it accepted the message."""

    @pytest.mark.parametrize("after_accept", [False, True], ids=["before", "after"])
    async def test_a_robot_send_is_retried_and_shown_once(
        self, dingtalk_emulator: EmulatorServer, after_accept: bool
    ) -> None:
        dingtalk_emulator.add_robot("ops")
        dingtalk_emulator.emulator.inject_fault("drop", after_accept=after_accept)
        async with AsyncRobot(dingtalk_emulator.webhook_url("ops"), retry=FAST) as robot:
            assert isinstance(robot._http._transport, AsyncioTransport)
            result = await robot.send("deploy finished")
        assert result.attempts == 2
        requests = dingtalk_emulator.emulator.requests()
        assert {r.msg_uuid for r in requests} == {result.msg_uuid} and len(requests) == 2
        assert len(dingtalk_emulator.emulator.messages()) == 1
        assert dingtalk_emulator.emulator.stats().robots["ops"].duplicates == int(after_accept)

    @pytest.mark.parametrize("after_accept", [False, True], ids=["before", "after"])
    async def test_an_app_send_is_not_retried_after_a_drop(
        self, dingtalk_emulator: EmulatorServer, after_accept: bool
    ) -> None:
        clock = FakeClock(dingtalk_emulator.emulator.clock.time())
        register(dingtalk_emulator, clock)
        dingtalk_emulator.emulator.inject_fault("drop", path=GROUP_PATH, after_accept=after_accept)
        async with async_app(dingtalk_emulator, clock, retry=FAST) as ops:
            assert isinstance(ops._http._transport, AsyncioTransport)
            with pytest.raises(dingpush.TransportError) as info:
                await ops.group(cid(dingtalk_emulator)).send("hello")
        assert info.value.maybe_delivered
        sends = [r for r in dingtalk_emulator.emulator.requests() if r.path == GROUP_PATH]
        assert len(sends) == 1
        assert len(dingtalk_emulator.emulator.messages()) == int(after_accept)

    async def test_an_app_send_is_retried_after_a_drop_with_retry_ambiguous(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        clock = FakeClock(dingtalk_emulator.emulator.clock.time())
        register(dingtalk_emulator, clock)
        dingtalk_emulator.emulator.inject_fault("drop", path=GROUP_PATH, after_accept=True)
        risky = dataclasses.replace(FAST, retry_ambiguous=True)
        async with async_app(dingtalk_emulator, clock, retry=risky) as ops:
            result = await ops.group(cid(dingtalk_emulator)).send("hello")
        assert result.attempts == 2
        assert len(dingtalk_emulator.emulator.messages()) == 2  # the duplicate: the risk taken


async def test_a_full_pool_makes_room_by_closing_an_idle_connection_elsewhere() -> None:
    # An app talks to two hosts (api. and oapi.): with every connection idle at the other,
    # a request must not wait for one to free.
    with ScriptedServer(keep_answering) as first, ScriptedServer(keep_answering) as second:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(transport=transport(limits=limits), timeout=2) as client:
            for url in (first.url, second.url, first.url):
                assert (await client.post(url, content=b"{}")).status_code == 200
    assert (first.connections, second.connections) == (2, 1)


class TestOnUvloop:
    """The relay's event loop is uvloop's when it is installed (uvicorn picks it)."""

    @pytest.fixture
    def anyio_backend(self) -> tuple[str, dict[str, bool]]:
        return ("asyncio", {"use_uvloop": True})

    async def test_sends_and_notices_an_idle_close(self) -> None:
        import uvloop

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await TestNeverSent().test_a_kept_alive_connection_closed_while_idle_is_replaced()
        await TestNeverSent().test_the_idle_check_sees_a_close_the_event_loop_has_not()

    async def test_over_tls(self) -> None:
        await TestSendsAndAnswers().test_over_tls_with_the_shared_context()
        await TestSendsAndAnswers().test_streamed_and_large_bodies_arrive_whole()

    async def test_failures_after_writing(self) -> None:
        cases = TestMaybeSent()
        await cases.test_the_server_closes_after_reading_the_request()
        await cases.test_the_server_resets_after_reading_the_request()
        await cases.test_the_answer_is_cut_short()
        await cases.test_a_read_timeout()
