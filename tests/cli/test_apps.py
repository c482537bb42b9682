"""App targets on the command line, against the emulator's enterprise-app APIs: ``send`` to
groups, users and work notifications (images and files too), ``upload``, ``token``, ``check``."""

from __future__ import annotations

import json
import pathlib
import struct
import zlib

import pytest

from dingpush.testing import EmulatorServer

from .conftest import AGENT_ID, APP_KEY, APP_SECRET, CID, Invoke, Runner


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def corp(corp: EmulatorServer, home: pathlib.Path) -> EmulatorServer:
    """The conftest's app, and an image and a file to send."""
    (home / "chart.png").write_bytes(png())
    (home / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    return corp


def payloads(server: EmulatorServer, channel: str) -> list[dict[str, object]]:
    return [dict(m.payload) for m in server.emulator.messages() if m.channel == channel]


def no_secret(text: str) -> None:
    assert APP_SECRET not in text


@pytest.mark.parametrize(
    ("args", "key", "param"),
    [
        (["hello 群"], "sampleText", {"content": "hello 群"}),
        (
            ["-m", "--title", "Build", "### ok"],
            "sampleMarkdown",
            {"title": "Build", "text": "### ok"},
        ),
        (
            ["--link", "https://example.com/r", "--title", "R", "notes"],
            "sampleLink",
            {"title": "R", "text": "notes", "messageUrl": "https://example.com/r"},
        ),
        (
            ["--image", "https://example.com/i.png"],
            "sampleImageMsg",
            {"photoURL": "https://example.com/i.png"},
        ),
    ],
)
def test_send_to_a_group(
    dingpush: Invoke, corp: EmulatorServer, args: list[str], key: str, param: dict[str, str]
) -> None:
    result = dingpush("send", "--to", "room", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("sent ") and "processQueryKey" in result.stdout
    (sent,) = [m for m in corp.emulator.messages() if m.conversation_id == CID]
    assert sent.payload["msgKey"] == key
    assert sent.payload["msgParam"] == param
    no_secret(result.output)


def test_image_and_file_from_disk_are_uploaded(dingpush: Invoke, corp: EmulatorServer) -> None:
    assert dingpush("send", "--to", "room", "--image", "chart.png").exit_code == 0
    result = dingpush("send", "--to", "room", "--file", "report.pdf", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["msg_key"] == "sampleFile"
    media = corp.emulator.media_items(app="corp")
    assert [(m.type, m.filename, m.data) for m in media] == [
        ("image", "chart.png", png()),
        ("file", "report.pdf", b"%PDF-1.4\n%%EOF\n"),
    ]
    image, file = [m.payload["msgParam"] for m in corp.emulator.messages()]
    assert image == {"photoURL": media[0].media_id}
    assert file == {"mediaId": media[1].media_id, "fileName": "report.pdf", "fileType": "pdf"}


def test_send_to_users_and_a_work_notice(run: Runner, corp: EmulatorServer) -> None:
    result = run("send", "--to", "people", "--json", "one to one")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["user_ids"] == ["alice", "bob"] and data["invalid_user_ids"] == []
    result = run("send", "--to", "notice", "-m", "--title", "On call", "you are on call")
    assert result.exit_code == 0, result.output
    assert "queued as task" in result.stdout
    (task,) = corp.emulator.notice_tasks()
    assert task.agent_id == AGENT_ID


def test_app_target_strings(dingpush: Invoke, corp: EmulatorServer) -> None:
    assert dingpush("send", "--to", f"app:corp/group/{CID}", "a").exit_code == 0
    assert dingpush("send", "--to", "app:corp/users/alice", "b").exit_code == 0
    result = dingpush("send", "--to", f"app:corp/notice/{AGENT_ID}?users=bob", "c")
    assert result.exit_code == 0, result.output
    assert len(corp.emulator.messages()) == 3


def test_users_dingtalk_refused_are_a_failure(dingpush: Invoke, corp: EmulatorServer) -> None:
    result = dingpush("send", "--to", "app:corp/users/alice,nobody", "--json", "hi")
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "delivered to 1 of 2 users; DingTalk refused nobody" in data["error"]["message"]
    assert data["error"]["result"]["invalid_user_ids"] == ["nobody"]


def test_flow_controlled_users_exit_5(run: Runner, corp: EmulatorServer) -> None:
    corp.emulator.update_app("corp", flow_controlled_users=("bob",))
    result = run("send", "--to", "people", "hi")
    assert result.exit_code == 5
    assert "flow control held back bob: send to them again later" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--feed", "--item", "a|https://e.com/a|https://e.com/a.png"], "has no feed card"),
        (["--at", "alice", "hi"], "cannot @-mention people"),
        (["--image", "chart.png", "caption"], "sends a message of its own, without TEXT"),
        (["--image", "missing.png"], "cannot read 'missing.png'"),
    ],
)
def test_what_an_app_cannot_send(
    run: Runner, corp: EmulatorServer, args: list[str], message: str
) -> None:
    result = run("send", "--to", "room", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert corp.emulator.messages() == []


def test_dry_run_of_an_app_target_fetches_nothing(run: Runner, corp: EmulatorServer) -> None:
    result = run("send", "--to", "room", "--image", "chart.png", "--dry-run")
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("\n\n")
    assert blocks[0].startswith("# the access token comes from POST /v1.0/oauth2/accessToken")
    # The dry run has no token yet: it shows where one goes (a template, not a masked value).
    assert f"POST {corp.url}/media/upload?access_token=ACCESS_TOKEN" in blocks[0]
    assert blocks[1] == "(multipart: type=image, media=chart.png (69 bytes))"
    assert "x-acs-dingtalk-access-token: ACCESS_TOKEN" in blocks[2]
    body = json.loads(blocks[3])
    assert body == {
        "robotCode": APP_KEY,
        "openConversationId": CID,
        "msgKey": "sampleImageMsg",
        "msgParam": '{"photoURL":"MEDIA_ID_FROM_THE_UPLOAD"}',
    }
    assert corp.emulator.token_requests() == 0 and corp.emulator.messages() == []
    no_secret(result.output)


def test_dry_run_of_a_work_notice(run: Runner, corp: EmulatorServer) -> None:
    result = run("send", "--to", "notice", "--dry-run", "--json", "hi")
    (request,) = json.loads(result.stdout)["requests"]
    assert request["url"] == (
        f"{corp.url}/topapi/message/corpconversation/asyncsend_v2?access_token=ACCESS_TOKEN"
    )
    assert request["body"] == {
        "agent_id": AGENT_ID,
        "userid_list": "alice",
        "dept_id_list": "7",
        "msg": {"msgtype": "text", "text": {"content": "hi"}},
    }


def test_upload(dingpush: Invoke, corp: EmulatorServer) -> None:
    result = dingpush("upload", "chart.png", "--to", "corp")
    assert result.exit_code == 0, result.output
    media_id = result.stdout.strip()
    assert corp.emulator.media(media_id).data == png()
    result = dingpush("upload", "report.pdf", "--to", "room", "--json")
    data = json.loads(result.stdout)
    assert (data["kind"], data["app"]) == ("file", "corp")
    assert corp.emulator.media(data["media_id"]).type == "file"
    result = dingpush("upload", "chart.png", "--to", "app:corp", "--kind", "image")
    assert corp.emulator.media(result.stdout.strip()).type == "image"
    result = dingpush("upload", "report.pdf", "--to", "corp", "--kind", "image")
    assert result.exit_code == 2 and "image" in result.stderr
    no_secret(result.output)


def test_token_is_masked_unless_asked(dingpush: Invoke, corp: EmulatorServer) -> None:
    shown = dingpush("token", "corp")
    assert shown.exit_code == 0, shown.output
    raw = dingpush("token", "room", "--show-secret")
    token = raw.stdout.strip()
    assert len(token) >= 16 and token not in shown.stdout
    assert f"(AppKey {APP_KEY}): {token[:4]}…{token[-4:]} (masked" in shown.stdout
    data = json.loads(dingpush("token", "corp", "--json").stdout)
    assert data["access_token"] == f"{token[:4]}…{token[-4:]}"
    assert (
        json.loads(dingpush("token", "corp", "--json", "--show-secret").stdout)["access_token"]
        == token
    )
    # The on-disk cache: four processes, one token request.
    assert corp.emulator.token_requests("corp") == 1
    no_secret(shown.output + raw.output)


def test_token_cache_can_be_off(run: Runner, corp: EmulatorServer, home: pathlib.Path) -> None:
    config = home / "dingpush.toml"
    config.write_text(
        config.read_text().replace('oapi_base = "', 'token_cache = false\noapi_base = "')
    )
    for _ in range(2):
        assert run("token", "corp").exit_code == 0
    assert corp.emulator.token_requests("corp") == 2


def test_environment_app(
    run: Runner, corp: EmulatorServer, home: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "dingpush.toml").unlink()
    monkeypatch.setenv("DINGPUSH_APP_KEY", APP_KEY)
    monkeypatch.setenv("DINGPUSH_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("DINGPUSH_API_BASE", corp.url)
    monkeypatch.setenv("DINGPUSH_OAPI_BASE", corp.url)
    result = run("send", "--to", f"app:default/group/{CID}", "from CI")
    assert result.exit_code == 0, result.output
    assert run("token", "app:default").exit_code == 0


def test_check_app_targets(dingpush: Invoke, corp: EmulatorServer) -> None:
    result = dingpush("check", "room")
    assert result.exit_code == 0, result.output
    assert "ok    credentials" in result.stdout and f"AppKey {APP_KEY}" in result.stdout
    assert "?     robot permission" in result.stdout
    assert corp.emulator.messages() == []
    result = dingpush("check", "notice", "--send-test", "--json")
    assert json.loads(result.stdout)["ok"] is True
    no_secret(result.output)


def test_check_finds_bad_credentials_and_missing_permission(
    run: Runner, corp: EmulatorServer
) -> None:
    corp.emulator.update_app("corp", permissions=())
    result = run("check", "room", "--send-test")
    assert result.exit_code == 3
    assert "FAIL  test message" in result.stdout and "permission" in result.stdout
    corp.emulator.update_app("corp", app_secret="another-secret-value-0000")
    result = run("check", "room")
    assert result.exit_code == 3
    assert "FAIL  credentials" in result.stdout and "AppSecret" in result.stdout
    result = run("send", "--to", "room", "hi")
    assert result.exit_code == 3
    no_secret(result.output)


def test_config_show_and_targets_mask_the_app_secret(run: Runner, corp: EmulatorServer) -> None:
    for args in (["config", "show"], ["config", "show", "--json"], ["targets"]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        no_secret(result.output)


LONG = "\n\n".join(f"第{n}段：" + "构建日志" * 300 for n in range(1, 6))  # ~18,000 bytes


def test_an_app_splits_a_long_message_too(dingpush: Invoke, corp: EmulatorServer) -> None:
    result = dingpush("send", "--to", "room", "--split", "--msg-uuid", "log-1", input=LONG.encode())
    assert result.exit_code == 0, result.output
    params = [m.payload["msgParam"] for m in corp.emulator.messages()]
    assert len(params) == 2
    assert [p["content"][:6] for p in params] == ["(1/2)\n", "(2/2)\n"]
    assert "".join(p["content"][6:] for p in params) == LONG


def test_an_app_dry_run_shows_the_parts(run: Runner, corp: EmulatorServer) -> None:
    result = run("send", "--to", "people", "--split", "--dry-run", "--json", input=LONG.encode())
    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout)["requests"]
    assert [r["note"].split("; ")[-1] for r in requests] == ["part 1 of 2", "part 2 of 2"]
    assert all(r["body"]["userIds"] == ["alice", "bob"] for r in requests)
    assert corp.emulator.token_requests() == 0


def test_without_split_an_app_refuses_a_long_message(run: Runner, corp: EmulatorServer) -> None:
    result = run("send", "--to", "room", input=LONG.encode())
    assert result.exit_code in (2, 4), result.output
    assert "15,000" in result.stderr
    assert corp.emulator.messages() == []
