"""What ``--to`` accepts: names, webhook and dingtalk:// URLs, and the app:NAME/… forms."""

from __future__ import annotations

import pathlib

import pytest

from dingpush import ConfigError
from dingpush.config import (
    AppGroupTarget,
    AppUsersTarget,
    Config,
    RobotTarget,
    WorkNoticeTarget,
    load_config,
)

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
HOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
SEC = "SEC" + "ab" * 32


@pytest.fixture
def config(tmp_path: pathlib.Path) -> Config:
    (tmp_path / "dingpush.toml").write_text(
        f'[targets.ops]\nwebhook = "{HOOK}"\n[targets.dev]\nwebhook = "{HOOK}x"\n'
        '[targets.room]\nkind = "app-group"\napp = "corp"\nopen_conversation_id = "cid1"\n'
        '[apps.corp]\napp_key = "dingkey"\napp_secret = "app-secret-value"\n'
        '[apps.hr]\napp_key = "dinghr"\napp_secret = "${HR_SECRET}"\n',
        encoding="utf-8",
    )
    return load_config(env={}, cwd=tmp_path)


def test_app_forms(config: Config) -> None:
    group = config.resolve("app:corp/group/cidAb+/c/d==")
    assert isinstance(group, AppGroupTarget)
    assert (group.app.name, group.open_conversation_id) == ("corp", "cidAb+/c/d==")
    users = config.resolve("app:corp/users/manager1234, 0123,")
    assert isinstance(users, AppUsersTarget) and users.user_ids == ("manager1234", "0123")
    notice = config.resolve("app:corp/notice/123?users=a,b&departments=7&everyone=true")
    assert isinstance(notice, WorkNoticeTarget)
    assert (notice.agent_id, notice.users, notice.departments, notice.everyone) == (
        123,
        ("a", "b"),
        ("7",),
        True,
    )
    assert group.name == "app:corp/group/cidAb+/c/d=="


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("app:corp", "names an app but no destination"),
        ("app:corp/group/", "give the group's openConversationId after group/"),
        ("app:corp/users/,", "give user ids after users/"),
        ("app:corp/groups/cid", "'groups' is not an app destination; did you mean 'group'?"),
        ("app:corp/notice/abc?users=a", "the agent id 'abc' is not a number"),
        ("app:corp/notice/1", "a work notification needs recipients"),
        ("app:corp/notice/1?user=a", "unknown parameter 'user'"),
        ("app:corp/notice/1?everyone=maybe", "everyone= takes true or false"),
        ("app:crop/group/cid", "no app named 'crop'; did you mean 'corp'?"),
        ("app:hr/group/cid", "refers to ${HR_SECRET}, which is not set"),
        ("opz", "no target named 'opz' in"),
        ("opz", "did you mean 'ops'? (targets: dev, ops, room)"),
    ],
)
def test_spec_errors(config: Config, spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.resolve(spec)
    assert message in str(caught.value)


def test_urls(config: Config) -> None:
    env = {"DINGPUSH_SECRET": SEC, "DINGPUSH_KEYWORD": "告警"}
    target = config.resolve(HOOK, env=env)
    assert isinstance(target, RobotTarget)
    assert (target.webhook.secret, target.keyword) == (SEC, "告警")
    assert TOKEN not in target.name
    dingtalk = config.resolve(f"dingtalk://{SEC}@{TOKEN}/13800000000", env={"DINGPUSH_SECRET": "x"})
    assert isinstance(dingtalk, RobotTarget)
    assert dingtalk.webhook.secret == SEC and dingtalk.webhook.mentions == ("13800000000",)
    assert TOKEN not in dingtalk.name and SEC not in dingtalk.name
    with pytest.raises(ConfigError, match=r"\$DINGPUSH_SECRET \(the signing secret"):
        config.resolve(HOOK, env={"DINGPUSH_SECRET": "nope"})


def test_several_targets_and_no_default(config: Config) -> None:
    with pytest.raises(
        ConfigError, match='none is the default: give --to NAME, or add default = "dev"'
    ):
        config.resolve(None)


def test_a_single_target_is_the_default(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dingpush.toml").write_text(f'[targets.only]\nwebhook = "{HOOK}"\n')
    assert load_config(env={}, cwd=tmp_path).resolve(None).name == "only"


def test_app_lookup(config: Config) -> None:
    assert config.app("corp").app_key == "dingkey"
    assert config.app("app:corp").app_key == "dingkey"
    assert config.app("app:corp/group/x").app_key == "dingkey"
    assert config.app("room").app_key == "dingkey"
    with pytest.raises(ConfigError, match="'ops' is a robot target, which has no app credentials"):
        config.app("ops")
    with pytest.raises(ConfigError, match="no app named 'nope'"):
        config.app("nope")
    with pytest.raises(ConfigError, match="HR_SECRET"):
        config.app("hr")
    assert repr(config.apps["corp"]) == "AppSettings('corp', app_key='dingkey', app_secret='****')"
