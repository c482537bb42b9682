"""The relay's HTTP API: answers, bad input, idempotency, auth, views, and no secret leaks."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sqlite3
import typing

import httpx
import pytest

from dingpush.relay import Relay, RelayServer, RobotTarget, TargetOptions
from dingpush.relay.stores import MemoryStore, SQLiteStore, StoreUnavailable
from dingpush.testing import EmulatorServer, FakeClock

from ._disks import fill, immutable, small_filesystem
from ._support import eventually, fast_settings, serving, text

pytestmark = pytest.mark.anyio

TOKEN = "relay-api-token-0123456789"
ROBOT_TOKEN = "robot-token-abcdef0123456789"
ROBOT_SECRET = "SEC-robot-signing-secret-987654"
INGRESS = "ingress-token-for-ops"
JSON = {"Content-Type": "application/json"}


def _relay(emulator: EmulatorServer, **settings: typing.Any) -> Relay:
    emulator.add_robot("ops", ROBOT_TOKEN, secret=ROBOT_SECRET)
    target = RobotTarget(
        "ops",
        emulator.webhook_url("ops"),
        secret=ROBOT_SECRET,
        options=TargetOptions(ingress_token=INGRESS),
    )
    return Relay([target], settings=fast_settings(**settings))


@pytest.fixture
async def api(dingtalk_emulator: EmulatorServer) -> typing.AsyncIterator[httpx.AsyncClient]:
    async with serving(_relay(dingtalk_emulator)) as http:
        yield http


async def test_a_message_is_accepted_then_delivered_with_its_id_as_msg_uuid(
    api: httpx.AsyncClient, dingtalk_emulator: EmulatorServer
) -> None:
    reply = await api.post("/v1/messages", json={"target": "ops", "message": text("disk full")})
    assert reply.status_code == 202
    message_id = reply.json()["id"]

    async def delivered() -> bool:
        return bool((await api.get(f"/v1/messages/{message_id}")).json()["status"] == "delivered")

    await eventually(delivered, what="the delivery")
    (sent,) = dingtalk_emulator.emulator.messages(robot="ops")
    assert sent.msg_uuid == message_id
    detail = (await api.get(f"/v1/messages/{message_id}")).json()
    assert detail["attempt_history"][0]["outcome"] == "delivered"
    assert detail["payload"] == text("disk full")
    assert detail["reply"]["errcode"] == 0


async def test_a_repeated_idempotency_key_returns_the_first_id(api: httpx.AsyncClient) -> None:
    body = {"target": "ops", "message": text("once")}
    first = await api.post("/v1/messages", json=body, headers={"Idempotency-Key": "alert-1"})
    again = await api.post("/v1/messages", json=body, headers={"Idempotency-Key": "alert-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == {
        "id": first.json()["id"],
        "status": "queued",
        "duplicate": True,
        "warnings": [],
    }


async def test_a_batch_is_stored_all_or_none(api: httpx.AsyncClient) -> None:
    good = {"target": "ops", "message": text("fine")}
    bad = {"target": "ops", "message": {"msgtype": "text", "text": {"content": ""}}}
    refused = await api.post("/v1/messages:batch", json={"messages": [good, bad]})
    assert refused.status_code == 422
    assert refused.json()["pointer"] == "/messages/1/message/text/content"
    assert (await api.get("/v1/messages")).json()["items"] == []
    accepted = await api.post(
        "/v1/messages:batch",
        json={
            "messages": [good, {**good, "idempotency_key": "k"}, {**good, "idempotency_key": "k"}]
        },
    )
    assert accepted.status_code == 202
    ids = accepted.json()["ids"]
    assert len(ids) == 3 and ids[1] == ids[2]
    assert accepted.json()["duplicates"] == [False, False, True]


BAD_INPUT = [
    # (body bytes, status, pointer, field, rule)
    (b'{"target": "ops", "message": {"text": {"content": "a}}', 400, "/message/text/content", None),
    (b"[1, 2", 400, "/1", None),
    (b'"just a string"', 400, "", None),
    (b'{"target": "ops"}', 400, "/message", None),
    (b'{"target": 7, "message": {}}', 400, "/target", None),
    (b'{"target": "ops", "message": []}', 400, "/message", None),
    (b'{"target": "nope", "message": {}}', 404, "/target", None),
    (b'{"target": "ops", "message": {"msgtype": "sms"}}', 422, "/message/msgtype", "msgtype"),
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": " "}}}',
        422,
        "/message/text/content",
        "text.content",
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "link", "link": {"title": "t", "text": "x",'
        b' "messageUrl": "not a url"}}}',
        422,
        "/message/link/messageUrl",
        "link.messageUrl",
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "image", "image": {"picURL": "https://e.x/i"}}}',
        422,
        "/message/msgtype",
        "msgtype",
    ),
    (b"\xff\xfe", 400, None, None),
    # Strict types (issue 11, item 1): nothing is read by truthiness.
    *(
        (
            b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "no ping"},'
            b' "at": {"isAtAll": ' + value + b"}}}",
            422,
            "/message/at/isAtAll",
            "at.isAtAll",
        )
        for value in (b'"false"', b'"no"', b'"0"', b'""', b"1e400", b"1")
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "x"},'
        b' "at": {"atMobiles": "123"}}}',
        422,
        "/message/at/atMobiles",
        "at.atMobiles",
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "actionCard", "actionCard": {"title": "t",'
        b' "text": "x", "singleTitle": "Go", "singleURL": "https://e.x", "btnOrientation": {}}}}',
        422,
        "/message/actionCard/btnOrientation",
        "actionCard.btnOrientation",
    ),
    # Lone surrogates and deep nesting (issue 11, item 4) were 500s.
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "a\\ud800b"}}}',
        400,
        "/message/text/content",
        "message.text.content",
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "markdown", "markdown": {"title": "\\udfff",'
        b' "text": "x"}}}',
        400,
        "/message/markdown/title",
        "message.markdown.title",
    ),
    (
        b'{"target": "ops\\udc00", "message": {"msgtype": "text", "text": {"content": "x"}}}',
        400,
        "/target",
        "target",
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "x"},'
        b' "\\ud83d": 1}}',
        400,
        "/message/\\ud83d",
        "message.\\ud83d",
    ),
    (b"[" * 100_000 + b"]" * 100_000, 400, "/0" * 32, None),
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "x"}, "at": '
        + b"[" * 3000
        + b"]" * 3000
        + b"}}",
        400,
        "/message/at" + "/0" * 30,
        None,
    ),
    (
        b'{"target": "ops", "message": {"msgtype": "text", "text": {"content": "x"}, "n": '
        + b"7" * 5000
        + b"}}",
        400,
        None,
        None,
    ),
]


@pytest.mark.parametrize(("body", "status", "pointer", "field"), BAD_INPUT)
async def test_bad_input_is_refused_with_where_and_why(
    api: httpx.AsyncClient, body: bytes, status: int, pointer: str | None, field: str | None
) -> None:
    reply = await api.post("/v1/messages", content=body, headers=JSON)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == status and problem["detail"]
    assert problem.get("pointer") == pointer
    assert problem.get("field") == field
    if status == 422:
        assert problem["rule"]


async def test_unknown_fields_are_accepted_with_warnings_naming_them(
    api: httpx.AsyncClient,
) -> None:
    typo = {**text("no ping"), "at": {"isAtALL": True}}
    reply = await api.post("/v1/messages", json={"target": "ops", "message": typo, "prio": 1})
    assert reply.status_code == 202
    warnings = reply.json()["warnings"]
    assert [w["pointer"] for w in warnings] == ["/message/at/isAtALL", "/prio"]
    assert "did you mean isAtAll?" in warnings[0]["detail"]
    detail = (await api.get(f"/v1/messages/{reply.json()['id']}")).json()
    assert detail["payload"] == text("no ping")  # stored as understood: no @all
    clean = await api.post("/v1/messages", json={"target": "ops", "message": text("fine")})
    assert clean.json()["warnings"] == []
    batch = await api.post(
        "/v1/messages:batch",
        json={
            "messages": [
                {"target": "ops", "message": text("a")},
                {"target": "ops", "message": {**text("b"), "msgUuid": "mine"}},
            ]
        },
    )
    assert batch.status_code == 202
    (warning,) = batch.json()["warnings"]
    assert warning["pointer"] == "/messages/1/message/msgUuid"
    assert "Idempotency-Key" in warning["detail"] or "idempotency_key" in warning["detail"]
    spec = (await api.get("/openapi.json")).json()["components"]["schemas"]
    assert "warnings" in spec["Accepted"]["required"]
    assert "warnings" in spec["BatchAccepted"]["required"]


async def test_lone_surrogates_anywhere_are_a_400_naming_the_field(api: httpx.AsyncClient) -> None:
    item = '{"target": "ops", "message": {"msgtype": "text", "text": {"content": "x"}}'
    body = f'{{"messages": [{item}}}, {item}, "idempotency_key": "k\\ud800"}}]}}'
    batch = await api.post("/v1/messages:batch", content=body.encode(), headers=JSON)
    assert batch.status_code == 400
    assert batch.json()["pointer"] == "/messages/1/idempotency_key"
    assert "lone surrogate" in batch.json()["detail"]
    ingress = await api.post(
        f"/robot/send?access_token={INGRESS}",
        content=b'{"msgtype": "text", "text": {"content": "a\\ud800"}}',
        headers=JSON,
    )
    assert ingress.status_code == 200
    assert ingress.json()["errcode"] == 40035 and "text.content" in ingress.json()["errmsg"]
    kind = await api.post(  # found by the fuzzing: a broken msgtype is no unknown msgtype
        f"/robot/send?access_token={INGRESS}",
        content=b'{"msgtype": "\\ud800text", "text": {"content": "x"}}',
        headers=JSON,
    )
    assert kind.json()["errcode"] == 40035
    deep = await api.post(
        f"/robot/send?access_token={INGRESS}", content=b"[" * 100_000, headers=JSON
    )
    assert deep.json()["errcode"] == 40035 and "levels" in deep.json()["errmsg"]
    assert (await api.get("/v1/messages")).json()["items"] == []


async def test_a_body_over_max_body_is_413(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator, max_body=1000)) as api:
        reply = await api.post("/v1/messages", json={"target": "ops", "message": text("x" * 2000)})
        assert reply.status_code == 413
        assert "max_body" in reply.json()["detail"]


async def test_a_store_that_cannot_commit_answers_503_never_4xx(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    relay = _relay(dingtalk_emulator)
    relay.store = SQLiteStore(tmp_path / "tiny.sqlite", max_size=128 * 1024)  # 19 pages empty
    relay.dispatcher.store = relay.store
    async with serving(relay) as api:
        body = {"target": "ops", "message": text("告警 " * 6000)}
        statuses = {(await api.post("/v1/messages", json=body)).status_code for _ in range(8)}
        assert 503 in statuses and not any(400 <= s < 500 for s in statuses)
        reply = await api.post("/v1/messages", json=body)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        ingress = await api.post(f"/robot/send?access_token={INGRESS}", json=body["message"])
        assert ingress.status_code == 503 and ingress.json()["errcode"] == -1
        assert ingress.headers["retry-after"] == "1"  # as the API's 503 says (issue 11, item 6)


async def test_readyz_answers_503_saying_why_while_the_outbox_is_locked_or_closed(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    relay = _relay(dingtalk_emulator)
    relay.store = SQLiteStore(tmp_path / "outbox.sqlite", lock_timeout=0.05)
    relay.dispatcher.store = relay.store
    relay.probe_interval = 0.0  # every call probes: the test changes the file between them
    async with serving(relay) as api:
        assert (await api.get("/readyz")).json() == {"status": "ready"}
        outside = sqlite3.connect(tmp_path / "outbox.sqlite", isolation_level=None)
        try:
            outside.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            locked = await api.get("/readyz")
            outside.execute("COMMIT")
        finally:
            outside.close()
        assert locked.status_code == 503
        assert locked.headers["content-type"] == "application/problem+json"
        assert locked.headers["retry-after"] == "1"
        detail = locked.json()["detail"]
        assert detail.startswith("not ready: the outbox cannot take writes")
        assert "locked by another process" in detail and "outbox.sqlite" in detail
        assert "nothing was stored" not in detail  # a probe stores nothing
        assert (await api.get("/readyz")).status_code == 200  # ready again once released
        await relay.store.aclose()  # the outbox closed under a running relay
        closed = await api.get("/readyz")
        assert closed.status_code == 503
        assert closed.json()["detail"].startswith("not ready: the outbox cannot take writes")
        assert "outbox.sqlite' is not open" in closed.json()["detail"]
        await relay.dispatcher.stop()  # shutting down: no longer delivering
        stopped = await api.get("/readyz")
        assert stopped.status_code == 503
        assert stopped.json()["detail"] == "not ready: the relay is starting or stopping"


async def _fill_up(api: httpx.AsyncClient) -> None:
    # With max_size (no tmpfs to fill): enqueue until the file refuses.
    for _ in range(200):
        body = {"target": "ops", "message": text("告警 " * 2000)}
        if (await api.post("/v1/messages", json=body)).status_code == 503:
            return
    raise AssertionError("the outbox never filled up")


async def test_readyz_is_503_naming_the_cause_while_the_disk_is_full(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    with small_filesystem() as disk:
        relay = _relay(dingtalk_emulator)
        path = (disk or tmp_path) / "outbox.sqlite"
        relay.store = SQLiteStore(path, max_size=None if disk else 96 * 1024)
        relay.dispatcher.store = relay.store
        relay.probe_interval = 0.0
        async with serving(relay) as api:
            assert (await api.get("/readyz")).status_code == 200
            filler = fill(disk) if disk else None
            if filler is None:
                await _fill_up(api)
            body = {"target": "ops", "message": text("告警 " * 2000)}
            assert (await api.post("/v1/messages", json=body)).status_code == 503
            ready = await api.get("/readyz")
            assert ready.status_code == 503, ready.text
            detail = ready.json()["detail"]
            assert detail.startswith("not ready: the outbox cannot take writes: ")
            assert "is full" in detail and "outbox.sqlite" in detail
            if filler is not None:
                filler.unlink()
                assert (await api.get("/readyz")).status_code == 200
                assert (await api.post("/v1/messages", json=body)).status_code == 202


async def test_readyz_is_503_while_the_outbox_file_cannot_be_written(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    relay = _relay(dingtalk_emulator)
    path = tmp_path / "outbox.sqlite"
    relay.store = SQLiteStore(path, lock_timeout=0.05)
    relay.dispatcher.store = relay.store
    relay.probe_interval = 0.0
    async with serving(relay) as api:
        assert (await api.get("/readyz")).status_code == 200
        with immutable(path.with_name("outbox.sqlite-wal")) as frozen:
            if not frozen:  # not root: a lock stands in for the file that cannot be written
                outside = sqlite3.connect(path, isolation_level=None)
                outside.execute("BEGIN IMMEDIATE")
            body = {"target": "ops", "message": text("x")}
            assert (await api.post("/v1/messages", json=body)).status_code == 503
            ready = await api.get("/readyz")
            if not frozen:
                outside.execute("COMMIT")
                outside.close()
        assert ready.status_code == 503
        assert ("immutable" if frozen else "locked") in ready.json()["detail"]
        assert (await api.get("/readyz")).status_code == 200


async def test_readyz_probes_the_outbox_at_most_once_a_probe_interval(
    dingtalk_emulator: EmulatorServer,
) -> None:
    class Counting(MemoryStore):
        probes = 0

        async def probe(self) -> None:
            type(self).probes += 1
            await super().probe()

    clock = FakeClock()
    relay = _relay(dingtalk_emulator)
    relay.clock = clock
    relay.store = Counting(clock=clock)
    relay.dispatcher.store = relay.store
    async with serving(relay) as api:
        assert Counting.probes == 1  # start-up proved the outbox takes writes
        for _ in range(20):
            assert (await api.get("/readyz")).status_code == 200
        assert Counting.probes == 1  # that proof stands for probe_interval
        clock.advance(relay.probe_interval)
        for _ in range(20):
            assert (await api.get("/readyz")).status_code == 200
        assert Counting.probes == 2


async def test_concurrent_readyz_share_one_probe(dingtalk_emulator: EmulatorServer) -> None:
    # A probe against a locked outbox waits up to lock_timeout: a burst of /readyz (several
    # orchestrators, a dashboard) must not queue one such wait each.
    class Slow(MemoryStore):
        probes = 0
        gate = asyncio.Event()

        async def probe(self) -> None:
            type(self).probes += 1
            if type(self).probes > 1:  # start-up's probe passes at once
                await type(self).gate.wait()
            await super().probe()

    relay = _relay(dingtalk_emulator)
    relay.store = Slow()
    relay.dispatcher.store = relay.store
    relay.probe_interval = 0.0  # every call would probe on its own
    async with serving(relay) as api:
        calls = [asyncio.ensure_future(api.get("/readyz")) for _ in range(10)]
        while Slow.probes < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the other nine arrive while the probe waits
        Slow.gate.set()
        answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 10
    assert Slow.probes == 2  # start-up's, then one for the ten


async def test_a_locked_outbox_stops_start_up(
    dingtalk_emulator: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "outbox.sqlite"
    async with SQLiteStore(path):
        pass  # the file exists, at the current schema: opening it needs no write
    relay = _relay(dingtalk_emulator)
    relay.store = SQLiteStore(path, lock_timeout=0.05)
    relay.dispatcher.store = relay.store
    outside = sqlite3.connect(path, isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")  # another relay on the same file
        with pytest.raises(StoreUnavailable, match="cannot start") as caught:
            await relay.start()
        assert "locked by another process" in str(caught.value)
        assert not relay.started
        with pytest.raises(StoreUnavailable, match="not open"):
            await relay.store.ping()  # closed again, nothing left running
        relay.settings = fast_settings(port=0)
        with pytest.raises(RuntimeError, match="did not start") as served:
            await asyncio.to_thread(RelayServer(relay).start)  # what dingpush serve runs
        assert isinstance(served.value.__cause__, StoreUnavailable)
    finally:
        outside.execute("ROLLBACK")
        outside.close()
    await relay.start()  # once the other process lets go
    await relay.aclose()


async def test_tokens_are_required_when_configured(dingtalk_emulator: EmulatorServer) -> None:
    async with serving(_relay(dingtalk_emulator, api_tokens=(TOKEN,))) as api:
        body = {"target": "ops", "message": text("hi")}
        assert (await api.post("/v1/messages", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert (await api.post("/v1/messages", json=body, headers=wrong)).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert (await api.post("/v1/messages", json=body, headers=right)).status_code == 202
        assert (await api.get("/v1/targets", headers=right)).status_code == 200
        # Probes, metrics and the description stay open; the ingress has its own tokens.
        # What they show without a token is what docs/relay.md says ("Who may call what").
        content = "deploy 4711 finished on web-01"
        body = {"target": "ops", "message": text(content)}
        assert (await api.post("/v1/messages", json=body, headers=right)).status_code == 202
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            answer = await api.get(path)
            assert answer.status_code == 200, path
            for hidden in (TOKEN, ROBOT_TOKEN, ROBOT_SECRET, INGRESS, content):
                assert hidden not in answer.text, (path, hidden)
        assert 'dingpush_relay_accepted_total{target="ops"} 2' in (await api.get("/metrics")).text
        spec = (await api.get("/openapi.json")).json()
        assert spec["security"] == [{"bearer": []}]


async def test_listing_filters_and_pages(api: httpx.AsyncClient) -> None:
    for i in range(5):
        await api.post("/v1/messages", json={"target": "ops", "message": text(f"m{i}")})
    first = (await api.get("/v1/messages?limit=2&target=ops")).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (await api.get(f"/v1/messages?limit=2&cursor={first['next_cursor']}")).json()
    assert {m["id"] for m in first["items"]}.isdisjoint(m["id"] for m in second["items"])
    assert (await api.get("/v1/messages?status=bogus")).status_code == 400
    assert (await api.get("/v1/messages?target=nope")).status_code == 404
    assert (await api.get("/v1/messages?cursor=garbage")).status_code == 400
    assert (await api.get("/v1/messages?limit=0")).status_code == 400
    assert (await api.get("/v1/messages/no-such-id")).status_code == 404
    assert (await api.get("/no/such/path")).status_code == 404
    assert (await api.delete("/v1/messages")).status_code == 405


async def test_retry_is_for_failed_messages_only(
    api: httpx.AsyncClient, dingtalk_emulator: EmulatorServer
) -> None:
    message_id = (
        await api.post("/v1/messages", json={"target": "ops", "message": text("x")})
    ).json()["id"]
    await eventually(
        lambda: len(dingtalk_emulator.emulator.messages()) == 1, what="the first delivery"
    )
    reply = await api.post(f"/v1/messages/{message_id}/retry")
    assert reply.status_code == 409
    assert (await api.post("/v1/messages/none/retry")).status_code == 404


async def test_targets_and_metrics_show_figures_and_no_secret(
    api: httpx.AsyncClient, dingtalk_emulator: EmulatorServer
) -> None:
    await api.post("/v1/messages", json={"target": "ops", "message": text("a")})
    await eventually(lambda: len(dingtalk_emulator.emulator.messages()) == 1, what="delivery")
    (target,) = (await api.get("/v1/targets")).json()["targets"]
    assert target["name"] == "ops" and target["kind"] == "robot"
    assert target["sent_recently"] == 1 and target["backlog"] == 0
    assert target["ingress"] is True
    metrics = (await api.get("/metrics")).text
    assert 'dingpush_relay_accepted_total{target="ops"} 1' in metrics
    assert 'dingpush_relay_delivered_total{target="ops"} 1' in metrics
    assert 'dingpush_relay_queue_depth{target="ops"} 0' in metrics
    assert "dingpush_relay_delivery_latency_seconds_bucket" in metrics
    for text_ in (json.dumps(target), metrics, (await api.get("/openapi.json")).text):
        for secret in (ROBOT_TOKEN, ROBOT_SECRET, INGRESS):
            assert secret not in text_


async def test_the_docs_page_is_self_contained(api: httpx.AsyncClient) -> None:
    page = (await api.get("/docs")).text
    assert "openapi.json" in page
    assert "http://" not in page and "https://" not in page  # no CDN: works offline
    spec = (await api.get("/openapi.json")).json()
    assert {"/v1/messages", "/v1/messages:batch", "/v1/messages/{id}", "/robot/send"} <= set(
        spec["paths"]
    )
    assert spec["paths"]["/v1/messages"]["post"]["responses"]["503"]


async def test_extra_routes_are_served_beside_the_api(dingtalk_emulator: EmulatorServer) -> None:
    # A route as the dashboard (issue 7) will add one: it lives behind the relay extra too.
    from starlette.requests import Request  # noqa: TID251
    from starlette.responses import PlainTextResponse  # noqa: TID251
    from starlette.routing import Route  # noqa: TID251

    from dingpush.relay import create_app

    async def page(request: Request) -> PlainTextResponse:
        relay = request.app.state.relay
        return PlainTextResponse(f"{len(relay.targets)} targets")

    app = create_app(_relay(dingtalk_emulator), extra_routes=[Route("/dashboard", page)])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            assert (await http.get("/dashboard")).text == "1 targets"
