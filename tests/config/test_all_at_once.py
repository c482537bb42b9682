"""All problems at once, really (issue 15): nothing hides another problem, and none waits on
an unrelated ``${VAR}``; they come in line order; types are strict."""

from __future__ import annotations

import pathlib

import pytest

from dingpush.config import ConfigFileError, load_config

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
HOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
SEC_FIX = (
    "copy the whole secret shown under 加签 in the robot's security settings (it starts with "
    "SEC), or remove secret if signing is off"
)
CORP = '[apps.corp]\napp_key = "dingkey"\napp_secret = "s3cr3t-app-secret"\n'


def problems(tmp_path: pathlib.Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "dingpush.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_config(tmp_path / "dingpush.toml", env=env or {})
    return [str(p).removeprefix("dingpush.toml:") for p in caught.value.problems]


@pytest.fixture(autouse=True)
def _here(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_a_near_miss_names_the_member_that_has_problems_of_its_own(tmp_path: pathlib.Path) -> None:
    text = f'[targets.ops]\nwebhook = "{HOOK}"\nsecret = "x"\n[targets.p]\nkind = "pool"\n'
    text += 'members = ["opz"]\n'
    assert problems(tmp_path, text) == [
        f"3: targets.ops.secret: does not start with SEC. Fix: {SEC_FIX}",
        "6: targets.p.members: no robot target named 'opz'; did you mean 'ops'? 'ops' has "
        "problems of its own, above. Fix: define [targets.opz] with a webhook, or list one "
        "of: ops",
    ]


def test_the_member_with_problems_may_come_after_the_pool(tmp_path: pathlib.Path) -> None:
    text = '[targets.p]\nkind = "pool"\nmembers = ["opz"]\n'
    text += f'[targets.ops]\nwebhook = "{HOOK}"\nrate = "fast"\n'
    assert problems(tmp_path, text)[0] == (
        "3: targets.p.members: no robot target named 'opz'; did you mean 'ops'? 'ops' has "
        "problems of its own, below. Fix: define [targets.opz] with a webhook, or list one "
        "of: ops"
    )


def test_a_member_set_aside_for_an_unset_variable_is_still_suggested(
    tmp_path: pathlib.Path,
) -> None:
    text = '[targets.ops]\nwebhook = "${OPS_HOOK}"\n[targets.p]\nkind = "pool"\n'
    text += 'members = ["opz"]\n'
    assert problems(tmp_path, text) == [
        "5: targets.p.members: no robot target named 'opz'; did you mean 'ops'? Fix: define "
        "[targets.opz] with a webhook, or list one of: ops"
    ]


def test_a_misspelt_kind_hides_none_of_the_targets_other_problems(
    tmp_path: pathlib.Path,
) -> None:
    text = f'[targets.ops]\nkind = "robbot"\nwebhook = "{HOOK}"\nsecret = "x"\nkeyword = ""\n'
    text += '[targets.room]\nkind = "app-grup"\napp = "corp"\n'
    text += f'open_conversation_id = "chat0123"\nrobotcode = "x"\n{CORP}'
    assert problems(tmp_path, text) == [
        "2: targets.ops.kind: 'robbot' is not a target kind; did you mean 'robot'? Fix: use "
        "one of robot, pool, app-group, app-users, work-notice",
        f"4: targets.ops.secret: does not start with SEC. Fix: {SEC_FIX}",
        "5: targets.ops.keyword: is empty. Fix: give a value or remove keyword",
        "7: targets.room.kind: 'app-grup' is not a target kind; did you mean 'app-group'? Fix: "
        "use one of robot, pool, app-group, app-users, work-notice",
        "9: targets.room.open_conversation_id: 'chat0123' is a chatId, not an "
        "openConversationId (cid…). Fix: convert it with POST /v1.0/im/chat/{chatId}/"
        "convertToOpenConversationId, or take conversationId from a robot callback",
        "10: targets.room.robotcode: unknown key for an app-group target; did you mean "
        "'robot_code'? Fix: use one of kind, app, open_conversation_id, robot_code, "
        "description",
    ]


def test_a_target_without_kind_is_checked_as_the_kind_it_looks_like(
    tmp_path: pathlib.Path,
) -> None:
    text = f'{CORP}[targets.n]\napp = "corp"\nagent_id = "abc"\neveryone = true\n'
    assert problems(tmp_path, text) == [
        "4: targets.n: has no kind; it looks like a work-notice target. Fix: add kind = "
        '"work-notice" (one of robot, pool, app-group, app-users, work-notice)',
        "6: targets.n.agent_id: must be an integer, not 'abc'. Fix: write agent_id = 123456",
    ]


UNSET = {
    "robot": '[targets.ops]\nwebhook = "${OPS_HOOK}"\nsecret = "x"\n',
    "app target": '[apps.corp]\napp_key = "k"\napp_secret = "${CORP_SECRET}"\n'
    '[targets.room]\nkind = "app-group"\napp = "corp"\nopen_conversation_id = "chat1"\n',
    "pool": '[targets.ops]\nwebhook = "${OPS_HOOK}"\n[targets.p]\nkind = "pool"\n'
    'members = ["ops", 5]\n',
}


@pytest.mark.parametrize("text", UNSET.values(), ids=UNSET.keys())
def test_problems_do_not_wait_for_an_unset_variable(tmp_path: pathlib.Path, text: str) -> None:
    unset = problems(tmp_path, text, {})
    given = problems(tmp_path, text, {"OPS_HOOK": HOOK, "CORP_SECRET": "corp-app-secret"})
    assert unset == given and len(unset) == 1


def test_problems_come_in_line_order(tmp_path: pathlib.Path) -> None:
    text = f'default = "nope"\n{CORP}app_secret_x = 1\n'
    text += f'[targets.p]\nkind = "pool"\nmembers = ["nobody"]\n[targets.ops]\nwebhook = "{HOOK}"\n'
    text += 'cooldown = "soon"\n'
    lines = [int(p.split(":", 1)[0]) for p in problems(tmp_path, text)]
    assert lines == [1, 5, 8, 11]


STRICT = [
    (
        "everyone",
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = 1\neveryone = "true"\n',
        "8: targets.n.everyone: is the string 'true', not true or false. Fix: write everyone = "
        "true, without quotes",
    ),
    (
        "agent_id",
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = "123"\n'
        "everyone = true\n",
        "7: targets.n.agent_id: is the string '123', not a number. Fix: write agent_id = 123, "
        "without quotes",
    ),
    (
        "token_cache",
        f'{CORP}token_cache = "false"\n',
        "4: apps.corp.token_cache: is the string 'false', not true or false. Fix: write "
        "token_cache = false, without quotes",
    ),
    (
        "rate",
        f'[targets.ops]\nwebhook = "{HOOK}"\nrate = 20\n',
        '3: targets.ops.rate: 20 is not a rate. Fix: write COUNT/PERIOD, e.g. "20/60s" or "20/1m"',
    ),
]


@pytest.mark.parametrize(("text", "message"), [s[1:] for s in STRICT], ids=[s[0] for s in STRICT])
def test_a_string_is_never_taken_for_a_boolean_or_a_number(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    assert problems(tmp_path, text) == [message]


def test_a_variable_may_give_a_boolean_or_a_number(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dingpush.toml").write_text(
        f'{CORP}[targets.n]\nkind = "work-notice"\napp = "corp"\nagent_id = "${{AGENT}}"\n'
        'everyone = "${EVERYONE}"\n'
    )
    config = load_config(tmp_path / "dingpush.toml", env={"AGENT": "42", "EVERYONE": "true"})
    notice = config.targets["n"]
    assert notice.kind == "work-notice"
    assert (notice.agent_id, notice.everyone) == (42, True)  # type: ignore[union-attr]
