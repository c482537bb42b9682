"""Every validation message: it names the file, the line, the key, and the fix."""

from __future__ import annotations

import pathlib

import pytest

from dingpush.config import ConfigFileError, load_config

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
HOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
SEC = "SEC" + "ab" * 32
OPS = f'[targets.ops]\nwebhook = "{HOOK}"\n'
CORP = '[apps.corp]\napp_key = "dingkey"\napp_secret = "s3cr3t-app-secret"\n'
SECRET_FIX = (
    "copy the whole secret shown under 加签 in the robot's security settings (it starts with "
    "SEC), or remove secret if signing is off"
)

# (id, file text, the error's text: every problem, one per line)
CASES = [
    (
        "unknown-top-level",
        "tragets = 1\n",
        "dingpush.toml:1: tragets: unknown key; did you mean 'targets'? Fix: the top level takes "
        "default, [targets.NAME], [apps.NAME], [relay], [emulator], [routes], [templates], "
        "[people], [policies] and [schedules]",
    ),
    (
        "targets-not-table",
        'targets = "x"\n',
        "dingpush.toml:1: targets: must be a table, not a string. Fix: write [targets]",
    ),
    (
        "bad-name",
        f'[targets."a b"]\nwebhook = "{HOOK}"\n',
        "dingpush.toml:1: targets.a b: is not a usable name. Fix: use letters, digits, '-', '_' "
        "and '.', starting with a letter or digit",
    ),
    (
        "target-not-table",
        "[targets]\nops = 5\n",
        "dingpush.toml:2: targets.ops: must be a table or a webhook string, not an integer. Fix: "
        'write [targets.ops] with kind = "robot" and webhook = "https://…"',
    ),
    (
        "unknown-kind",
        f'{OPS}kind = "robt"\n',
        "dingpush.toml:3: targets.ops.kind: 'robt' is not a target kind; did you mean 'robot'? "
        "Fix: use one of robot, pool, app-group, app-users, work-notice",
    ),
    (
        "no-kind-pool",
        f'{OPS}[targets.p]\nmembers = ["ops"]\n',
        "dingpush.toml:3: targets.p: has no kind; it looks like a pool target. Fix: add kind = "
        '"pool" (one of robot, pool, app-group, app-users, work-notice)',
    ),
    (
        "robot-unknown-key",
        f'{OPS}secert = "{SEC}"\n',
        "dingpush.toml:3: targets.ops.secert: unknown key for a robot target; did you mean "
        "'secret'? Fix: use one of kind, webhook, secret, keyword, rate, cooldown, description",
    ),
    (
        "robot-missing-webhook",
        f'[targets.ops]\nsecret = "{SEC}"\n',
        "dingpush.toml:1: targets.ops.webhook: missing. Fix: add webhook = … to [targets.ops]",
    ),
    (
        "webhook-not-string",
        "[targets.ops]\nwebhook = 5\n",
        "dingpush.toml:2: targets.ops.webhook: must be a string, not an integer. Fix: quote "
        'it: "…"',
    ),
    (
        "webhook-without-token",
        '[targets.ops]\nwebhook = "https://oapi.dingtalk.com/robot/send"\n',
        "dingpush.toml:2: targets.ops.webhook: the webhook URL 'https://oapi.dingtalk.com/robot/"
        "send' has no access_token: copy the whole URL from the robot's settings in the group. "
        "Fix: copy the webhook URL from the group's robot settings",
    ),
    (
        "webhook-http",
        f'[targets.ops]\nwebhook = "http://oapi.dingtalk.com/robot/send?access_token={TOKEN}"\n',
        "dingpush.toml:2: targets.ops.webhook: DingTalk's endpoints are https:// only: use "
        "https://oapi.dingtalk.com. Fix: copy the webhook URL from the group's robot settings",
    ),
    (
        "secret-not-sec",
        f'{OPS}secret = "5d41402abc4b2a76"\n',
        f"dingpush.toml:3: targets.ops.secret: does not start with SEC. Fix: {SECRET_FIX}",
    ),
    (
        "url-secret-not-sec",
        f'[targets.ops]\nwebhook = "dingtalk://abc@{TOKEN}"\n',
        "dingpush.toml:2: targets.ops.webhook: the secret in the dingtalk:// URL does not start "
        f"with SEC. Fix: {SECRET_FIX}",
    ),
    (
        "secret-empty",
        f'{OPS}secret = ""\n',
        "dingpush.toml:3: targets.ops.secret: is empty. Fix: give a value or remove secret",
    ),
    (
        "keyword-empty",
        f'{OPS}keyword = " "\n',
        "dingpush.toml:3: targets.ops.keyword: is empty. Fix: give a value or remove keyword",
    ),
    (
        "rate",
        f'{OPS}rate = "fast"\n',
        "dingpush.toml:3: targets.ops.rate: 'fast' is not a rate. Fix: write COUNT/PERIOD, e.g. "
        '"20/60s" or "20/1m"',
    ),
    (
        "cooldown",
        f'{OPS}cooldown = "soon"\n',
        "dingpush.toml:3: targets.ops.cooldown: 'soon' is not a duration. Fix: write seconds "
        '(600) or "10m"',
    ),
    (
        "cooldown-negative",
        f"{OPS}cooldown = -1\n",
        "dingpush.toml:3: targets.ops.cooldown: -1 is not a duration. Fix: write seconds (600) "
        'or "10m"',
    ),
    (
        "bad-reference",
        f'{OPS}secret = "${{OPS_SECRET"\n',
        "dingpush.toml:3: targets.ops.secret: '${' without a closing '}' in '${OPS_SECRET'. Fix: "
        "write ${NAME}, ${NAME:-fallback}, or $$ for a literal $",
    ),
    (
        "pool-no-members",
        '[targets.p]\nkind = "pool"\n',
        "dingpush.toml:1: targets.p.members: missing. Fix: add members = … to [targets.p]",
    ),
    (
        "pool-empty",
        '[targets.p]\nkind = "pool"\nmembers = []\n',
        'dingpush.toml:3: targets.p.members: is empty. Fix: write members = ["a", "b"]',
    ),
    (
        "pool-not-list",
        '[targets.p]\nkind = "pool"\nmembers = "ops"\n',
        "dingpush.toml:3: targets.p.members: must be a list of strings, not a string. Fix: write "
        'members = ["a", "b"]',
    ),
    (
        "pool-member-type",
        '[targets.p]\nkind = "pool"\nmembers = [true]\n',
        "dingpush.toml:3: targets.p.members: must list strings, not a boolean. Fix: write "
        'members = ["a", "b"]',
    ),
    (
        "pool-unknown-member",
        f'{OPS}[targets.p]\nkind = "pool"\nmembers = ["opz"]\n',
        "dingpush.toml:5: targets.p.members: no robot target named 'opz'; did you mean 'ops'? "
        "Fix: define [targets.opz] with a webhook, or list one of: ops",
    ),
    (
        "pool-member-not-robot",
        f'{CORP}[targets.p]\nkind = "pool"\nmembers = ["room"]\n'
        '[targets.room]\nkind = "app-group"\napp = "corp"\nopen_conversation_id = "cid1"\n',
        "dingpush.toml:6: targets.p.members: 'room' is not a robot target (its kind is "
        "app-group). Fix: pool members must be robot targets",
    ),
    (
        "pool-twice",
        f'{OPS}[targets.p]\nkind = "pool"\nmembers = ["ops", "ops"]\n',
        "dingpush.toml:5: targets.p.members: lists 'ops' twice. Fix: list each robot once",
    ),
    (
        "pool-bad-url",
        '[targets.p]\nkind = "pool"\nmembers = ["https://oapi.dingtalk.com/robot/send"]\n',
        "dingpush.toml:3: targets.p.members: the webhook URL 'https://oapi.dingtalk.com/robot/"
        "send' has no access_token: copy the whole URL from the robot's settings in the group. "
        "Fix: copy the webhook URL from the group's robot settings",
    ),
    (
        "app-missing",
        '[targets.room]\nkind = "app-group"\nopen_conversation_id = "cid1"\n',
        "dingpush.toml:1: targets.room.app: missing. Fix: add app = … to [targets.room]",
    ),
    (
        "app-unknown",
        f'{CORP}[targets.room]\nkind = "app-group"\napp = "crop"\nopen_conversation_id = "c"\n',
        "dingpush.toml:6: targets.room.app: no [apps.crop] in the file; did you mean 'corp'? "
        "Fix: add [apps.crop] with app_key and app_secret, or use one of: corp",
    ),
    (
        "chat-id",
        f'{CORP}[targets.room]\nkind = "app-group"\napp = "corp"\n'
        'open_conversation_id = "chat0123abcd"\n',
        "dingpush.toml:7: targets.room.open_conversation_id: 'chat0123abcd' is a chatId, not an "
        "openConversationId (cid…). Fix: convert it with POST /v1.0/im/chat/{chatId}/"
        "convertToOpenConversationId, or take conversationId from a robot callback",
    ),
    (
        "app-users-empty",
        f'{CORP}[targets.u]\nkind = "app-users"\napp = "corp"\nusers = []\n',
        'dingpush.toml:7: targets.u.users: is empty. Fix: write users = ["a", "b"]',
    ),
    (
        "users-empty-entry",
        f'{CORP}[targets.u]\nkind = "app-users"\napp = "corp"\nusers = ["a", ""]\n',
        "dingpush.toml:7: targets.u.users: contains an empty entry. Fix: remove the empty string",
    ),
    (
        "agent-id",
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = "abc"\n'
        "everyone = true\n",
        "dingpush.toml:7: targets.n.agent_id: must be an integer, not 'abc'. Fix: write "
        "agent_id = 123456",
    ),
    (
        "no-recipients",
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = 1\n',
        'dingpush.toml:4: targets.n: names no recipients. Fix: add users = ["userid"], '
        'departments = ["123"] or everyone = true',
    ),
    (
        "everyone",
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = 1\n'
        'everyone = "maybe"\n',
        "dingpush.toml:8: targets.n.everyone: must be true or false, not 'maybe'. Fix: write "
        "everyone = true",
    ),
    (
        "apps-entry",
        "[apps]\ncorp = 1\n",
        "dingpush.toml:2: apps.corp: must be a table, not an integer. Fix: write [apps.corp] "
        "with app_key and app_secret",
    ),
    (
        "app-key-missing",
        '[apps.corp]\napp_secret = "x"\n',
        "dingpush.toml:1: apps.corp.app_key: missing. Fix: add app_key = … to [apps.corp]",
    ),
    (
        "app-unknown-key",
        f'{CORP}appsecret = "x"\n',
        "dingpush.toml:4: apps.corp.appsecret: unknown key for an app; did you mean "
        "'app_secret'? Fix: use one of app_key, app_secret, api_base, oapi_base, token_cache, "
        "robot_code, description",
    ),
    (
        "app-secret-is-robot-secret",
        f'[apps.corp]\napp_key = "k"\napp_secret = "{SEC}"\n',
        "dingpush.toml:3: apps.corp.app_secret: looks like a custom robot's signing secret "
        "(SEC…), not an AppSecret. Fix: copy the AppSecret (Client Secret) from the app's "
        "'Credentials and basic info' page in the developer console",
    ),
    (
        "api-base",
        f'{CORP}api_base = "api.dingtalk.com"\n',
        "dingpush.toml:4: apps.corp.api_base: 'api.dingtalk.com' is not an http(s) URL. Fix: "
        "write e.g. https://api.dingtalk.com",
    ),
    (
        "token-cache",
        f"{CORP}token_cache = 5\n",
        "dingpush.toml:4: apps.corp.token_cache: must be true, false or a file path, not 5. "
        'Fix: write token_cache = false, or a path such as "~/.cache/dingpush/tokens.json"',
    ),
    (
        "default-unknown",
        f'default = "opz"\n{OPS}',
        "dingpush.toml:1: default: no target named 'opz'; did you mean 'ops'? Fix: set default "
        "to one of: ops",
    ),
    (
        "default-type",
        f"default = 1\n{OPS}",
        'dingpush.toml:1: default: must be a string, not an integer. Fix: quote it: "…"',
    ),
    (
        "relay",
        "relay = 1\n",
        "dingpush.toml:1: relay: must be a table, not an integer. Fix: write [relay]",
    ),
    (
        "description",
        f"{OPS}description = 1\n",
        "dingpush.toml:3: targets.ops.description: must be a string, not an integer. Fix: "
        'quote it: "…"',
    ),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_message(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dingpush.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_config(env={"HOME": str(tmp_path)})
    assert str(caught.value) == message
    assert caught.value.exit_code == 3


def test_every_problem_is_reported_at_once(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dingpush.toml").write_text(
        f'default = "nope"\n[targets.ops]\nwebhook = "{HOOK}"\nsecret = "x"\nkeyword = ""\n'
        '[apps.corp]\napp_key = "k"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_config(env={})
    lines = str(caught.value).splitlines()
    assert lines[0] == "the configuration has 4 problems:"
    # In line order, though the apps are read before the targets and the default after them.
    assert [p.line for p in caught.value.problems] == [1, 4, 5, 6]
    assert [p.key for p in caught.value.problems] == [
        "default",
        "targets.ops.secret",
        "targets.ops.keyword",
        "apps.corp.app_secret",
    ]
