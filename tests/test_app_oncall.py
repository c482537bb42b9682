"""Recall, read status and DING of an app robot, against the emulator over HTTP (§11, §14)."""

from __future__ import annotations

import typing

import httpx
import pytest

import dingpush
from _appsupport import APP_KEY, APP_SECRET, USERS, add_ops_app, cid
from dingpush import (
    AsyncApp,
    ConfigError,
    DingQuotaExhausted,
    DingResult,
    GroupReadStatus,
    InvalidRequest,
    PermissionDenied,
    QueryKeyExpired,
    UsersReadStatus,
)
from dingpush.emulator import ROBOT_PERMISSION
from dingpush.testing import EmulatorServer, FakeClock

MANY = tuple(f"user{i:03d}" for i in range(45))


@pytest.fixture
def server(dingtalk_emulator: EmulatorServer) -> EmulatorServer:
    return add_ops_app(dingtalk_emulator, users=USERS + MANY)


def async_app(server: EmulatorServer, **options: typing.Any) -> AsyncApp:
    return AsyncApp(APP_KEY, APP_SECRET, api_base=server.url, oapi_base=server.url, **options)


class TestRecall:
    def test_group_message_recalled_by_its_result(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            sent = app.group(cid(server)).send("disk full on db-1")
            assert sent.process_query_key
            result = app.recall(sent)
        assert result.recalled == (sent.process_query_key,) and result.ok
        assert result.open_conversation_id == cid(server)
        (key,) = server.emulator.app_messages()
        assert key.recalled_at is not None

    def test_keys_go_20_a_call(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            group = app.group(cid(server))
            keys = [group.send(f"alert {i}").process_query_key for i in range(25)]
            result = app.recall(keys, group=cid(server))
        assert set(result.recalled) == set(keys) and result.attempts == 2
        calls = [r for r in server.emulator.requests(robot="ops") if "recall" in r.path]
        assert len(calls) == 2

    def test_one_to_one_and_the_24_hour_window(self, server: EmulatorServer) -> None:
        clock = FakeClock()
        server.emulator.clock = clock
        with server.app_client("ops") as app:
            early = app.users(["alice", "bob"]).send("page")
            late = app.users(["alice"]).send("page again")
            assert app.recall(early).recalled == (early.process_query_key,)
            clock.advance(24 * 3600 + 1)
            with pytest.raises(QueryKeyExpired) as caught:
                app.recall(late.process_query_key)
        assert caught.value.errcode == "robot.processQueryKey.expired"
        assert "24 hours" in str(caught.value)

    def test_unknown_key_is_refused_or_listed(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(InvalidRequest, match=r"invalid\.processQueryKey"):
                app.recall("bm90LWEta2V5", group=cid(server))
            server.emulator.options = dataclasses_replace(server, unknown_key_as_failed=True)
            result = app.recall("bm90LWEta2V5", group=cid(server))
        assert result.failed == {"bm90LWEta2V5": "SYSTEM_ERROR"} and not result.ok

    def test_missing_permission_names_it(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            sent = app.group(cid(server)).send("hello")
            server.emulator.update_app("ops", permissions=())
            with pytest.raises(PermissionDenied) as caught:
                app.recall(sent)
        assert ROBOT_PERMISSION in str(caught.value)

    def test_bad_arguments_fail_before_any_request(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(ConfigError, match="no processQueryKey"):
                app.recall([])
            sent = app.group(cid(server)).send("x")
            with pytest.raises(ConfigError, match="not the group"):
                app.recall(sent, group="cidOTHER==")


def dataclasses_replace(server: EmulatorServer, **changes: typing.Any) -> typing.Any:
    import dataclasses

    return dataclasses.replace(server.emulator.options, **changes)


class TestReadStatus:
    def test_group_read_list_paged(self, server: EmulatorServer) -> None:
        readers = list(MANY[:7])
        with server.app_client("ops") as app:
            sent = app.group(cid(server)).send("who saw this?")
            server.emulator.read_app_message(sent.process_query_key, readers)
            status = app.read_status(sent, page_size=3)
        assert isinstance(status, GroupReadStatus)
        assert status.read_user_ids == tuple(readers) and status.pages == 3
        assert status.send_status == "SUCCESS" and not status.recalled

    def test_group_read_by_key_and_after_recall(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            sent = app.group(cid(server)).send("x")
            server.emulator.read_app_message(sent.process_query_key, ["alice"])
            app.recall(sent)
            status = app.read_status(sent.process_query_key, group=cid(server))
        assert status.recalled and status.read_user_ids == ("alice",)

    def test_one_to_one_status_across_chunks(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            sent = app.users(MANY[:25]).send("on call?")
            assert len(sent.process_query_keys) == 2
            for key in sent.process_query_keys:
                server.emulator.read_app_message(key, [MANY[3], MANY[22]])
            status = app.read_status(sent)
        assert isinstance(status, UsersReadStatus)
        assert status.read_user_ids == (MANY[3], MANY[22])
        assert len(status.unread_user_ids) == 23

    def test_key_with_plus_slash_equals_is_encoded(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            sent = app.users(["alice"]).send("x")
            assert sent.process_query_key.endswith("=")
            status = app.read_status(sent.process_query_key)
        assert status.unread_user_ids == ("alice",)

    def test_expired_key(self, server: EmulatorServer) -> None:
        clock = FakeClock()
        server.emulator.clock = clock
        with server.app_client("ops") as app:
            sent = app.users(["alice"]).send("x")
            clock.advance(24 * 3600 + 1)
            with pytest.raises(QueryKeyExpired):
                app.read_status(sent)

    @pytest.mark.anyio
    async def test_async_twin(self, server: EmulatorServer) -> None:
        async with async_app(server) as app:
            sent = await app.group(cid(server)).send("async")
            server.emulator.read_app_message(sent.process_query_key, ["bob"])
            status = await app.read_status(sent)
            recalled = await app.recall(sent)
        assert status.read_user_ids == ("bob",) and recalled.ok


class TestDing:
    def test_in_app_ding_read_confirmed_and_recalled(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            ding = app.ding(["alice", "bob", "ghost"], "db-1 is down")
            assert ding.remind_type == "app" and ding.fell_back_from is None
            assert ding.failed_user_ids == ("ghost",)
            assert ding.reached_user_ids == ("alice", "bob")
            server.emulator.read_ding(ding.open_ding_id, ["alice"], confirm=True)
            status = app.ding_read_status(ding)
            assert status.read_user_ids == ("alice",) and status.unread_user_ids == ("bob",)
            assert app.recall_ding(ding) == (ding.open_ding_id,)
        (recorded,) = server.emulator.dings()
        assert recorded.remind_type == 1 and recorded.recalled_at is not None
        assert set(recorded.confirmed) == {"alice"}

    @pytest.mark.parametrize(("kind", "code"), [("sms", 2), ("call", 3), (3, 3)])
    def test_remind_types_on_the_wire(
        self, server: EmulatorServer, kind: typing.Any, code: int
    ) -> None:
        with server.app_client("ops") as app:
            result = app.ding("alice", "wake up", remind_type=kind)
        assert result.remind_type in ("sms", "call")
        assert server.emulator.dings()[0].remind_type == code

    def test_phone_receivers_go_20_a_call(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            result = app.ding(MANY, "all hands", remind_type="call")
        assert len(result.open_ding_ids) == 3
        assert [len(d.receivers) for d in server.emulator.dings()] == [20, 20, 5]

    def test_no_paid_quota_says_so_and_falls_back(self, server: EmulatorServer) -> None:
        server.emulator.update_app("ops", paid_ding=False)
        with server.app_client("ops") as app:
            with pytest.raises(DingQuotaExhausted) as caught:
                app.ding("alice", "wake up", remind_type="call")
            assert "fallback=True" in str(caught.value)
            result = app.ding("alice", "wake up", remind_type="call", fallback=True)
        assert result.remind_type == "app" and result.fell_back_from == "call"
        assert [d.remind_type for d in server.emulator.dings()] == [1]

    def test_missing_permission_names_premium_ding_write(self, server: EmulatorServer) -> None:
        server.emulator.update_app("ops", permissions=(ROBOT_PERMISSION,))
        with server.app_client("ops") as app, pytest.raises(PermissionDenied) as caught:
            app.ding("alice", "x")
        assert "Premium.Ding.Write" in str(caught.value)

    def test_recall_by_another_robot_is_refused(self, server: EmulatorServer) -> None:
        server.add_app("other", users=USERS)
        with server.app_client("ops") as app:
            ding = app.ding("alice", "x")
        with server.app_client("other") as other, pytest.raises(InvalidRequest):
            other.recall_ding(ding.open_ding_id)

    def test_bad_arguments(self, server: EmulatorServer) -> None:
        with server.app_client("ops") as app:
            with pytest.raises(ConfigError, match="reminder type"):
                app.ding("alice", "x", remind_type=typing.cast(typing.Any, "pager"))
            with pytest.raises(ConfigError, match="phone DINGs only"):
                app.ding("alice", "x", call_voice="Standard_Male_Voice")
            with pytest.raises(ConfigError, match="needs content"):
                app.ding("alice", " ")
        assert server.emulator.dings() == []

    @pytest.mark.anyio
    async def test_async_twin(self, server: EmulatorServer) -> None:
        async with async_app(server) as app:
            ding = await app.ding(["alice"], "async", remind_type="sms")
            server.emulator.read_ding(ding.open_ding_id, ["alice"])
            status = await app.ding_read_status(ding.open_ding_id)
            recalled = await app.recall_ding(ding)
        assert isinstance(ding, DingResult) and status.read_user_ids == ("alice",)
        assert recalled == (ding.open_ding_id,)


def test_control_api_plays_the_people(server: EmulatorServer) -> None:
    with server.app_client("ops") as app:
        sent = app.group(cid(server)).send("x")
        ding = app.ding("alice", "x")
    with httpx.Client(base_url=server.url + "/_emulator") as control:
        read = control.post(
            "/app-messages/read",
            json={"process_query_key": sent.process_query_key, "users": ["bob"]},
        )
        confirmed = control.post(
            f"/dings/{ding.open_ding_id}/read", json={"users": ["alice"], "confirm": True}
        )
        listed = control.get("/dings").json()["dings"]
        messages = control.get("/app-messages").json()["app_messages"]
    assert read.status_code == 200 and read.json()["read"] == ["bob"]
    assert confirmed.json()["confirmed"] == ["alice"]
    assert listed[0]["remind"] == "app" and messages[0]["read"] == ["bob"]


def test_names_are_public() -> None:
    for name in ("RecallResult", "DingReadStatus", "UserReadStatus", "RemindType"):
        assert name in dingpush.__all__


def test_people_read_by_themselves_after_a_delay(server: EmulatorServer) -> None:
    clock = FakeClock()
    server.emulator.clock = clock
    server.emulator.options = dataclasses_replace(server, auto_read_after=30.0)
    with server.app_client("ops") as app:
        sent = app.users(["alice", "bob"]).send("x")
        ding = app.ding("alice", "x")
        assert app.read_status(sent).read_user_ids == ()
        clock.advance(30)
        assert app.read_status(sent).read_user_ids == ("alice", "bob")
        assert app.ding_read_status(ding).read_user_ids == ("alice",)
    assert server.emulator.dings()[0].confirmed == {}
