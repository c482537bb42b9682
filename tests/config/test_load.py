"""Where the configuration comes from: lookup order, the environment default, ${VAR}s, origins."""

from __future__ import annotations

import pathlib

import pytest

from dingpush import ConfigError, Rate
from dingpush.config import (
    AppGroupTarget,
    AppUsersTarget,
    BadReference,
    ConfigFileError,
    MissingVariable,
    Origin,
    PoolTarget,
    RobotTarget,
    WorkNoticeTarget,
    find_config,
    interpolate,
    load_config,
)

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
WEBHOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
SECRET = "SEC" + "ab" * 32


def write(path: pathlib.Path, default: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'default = "{default}"\n[targets.{default}]\nwebhook = "{WEBHOOK}"\n')
    return path


@pytest.fixture
def places(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "from-env.toml",
        "cwd": tmp_path / "work" / "dingpush.toml",
        "user": tmp_path / "xdg" / "dingpush" / "config.toml",
    }


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("explicit", "env", "cwd", "user"), "explicit"),
        (("env", "cwd", "user"), "env"),
        (("cwd", "user"), "cwd"),
        (("user",), "user"),
    ],
)
def test_lookup_order(
    places: dict[str, pathlib.Path], present: tuple[str, ...], expected: str
) -> None:
    for name in present:
        write(places[name], name)
    (places["cwd"].parent).mkdir(parents=True, exist_ok=True)
    env = {"XDG_CONFIG_HOME": str(places["user"].parent.parent)}
    if "env" in present:
        env["DINGPUSH_CONFIG"] = str(places["env"])
    explicit = places["explicit"] if "explicit" in present else None
    config = load_config(explicit, env=env, cwd=places["cwd"].parent)
    assert config.default == expected
    assert config.path == places[expected]


def test_home_config_without_xdg(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".config" / "dingpush" / "config.toml", "home")
    path, steps = find_config(env={}, cwd=tmp_path)
    assert path == tmp_path / ".config" / "dingpush" / "config.toml"
    assert [s.label for s in steps] == [
        "$DINGPUSH_CONFIG",
        "./dingpush.toml",
        "~/.config/dingpush/config.toml",
    ]
    assert [s.found for s in steps] == [False, False, True]


@pytest.mark.parametrize(
    ("explicit", "env", "message"),
    [
        ("nope.toml", {}, "--config names 'nope.toml', which does not exist or is not a file"),
        (None, {"DINGPUSH_CONFIG": "gone.toml"}, "or unset DINGPUSH_CONFIG"),
    ],
)
def test_a_named_file_must_exist(
    tmp_path: pathlib.Path, explicit: str | None, env: dict[str, str], message: str
) -> None:
    write(tmp_path / "dingpush.toml", "local")  # present, but a named file takes precedence
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(explicit, env=env, cwd=tmp_path)


def test_no_file_environment_defines_the_default_robot(tmp_path: pathlib.Path) -> None:
    env = {
        "DINGPUSH_WEBHOOK": WEBHOOK,
        "DINGPUSH_SECRET": SECRET,
        "DINGPUSH_KEYWORD": "告警",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    config = load_config(env=env, cwd=tmp_path)
    target = config.resolve(None, env=env)
    assert isinstance(target, RobotTarget)
    assert (target.name, target.webhook.token, target.webhook.secret) == ("default", TOKEN, SECRET)
    assert target.keyword == "告警"
    assert config.path is None
    assert str(config.origins["targets.default.secret"]) == "$DINGPUSH_SECRET"
    assert config.secrets() == [TOKEN, SECRET]


def test_no_file_and_no_environment(tmp_path: pathlib.Path) -> None:
    config = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="no target to send to: give --to") as caught:
        config.resolve(None)
    assert "set DINGPUSH_WEBHOOK" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DINGPUSH_WEBHOOK": WEBHOOK, "DINGPUSH_SECRET": "abc"},
            "$DINGPUSH_SECRET: does not start with SEC. Fix: set it to the whole secret",
        ),
        (
            {"DINGPUSH_WEBHOOK": "oapi.dingtalk.com/robot"},
            "$DINGPUSH_WEBHOOK: 'oapi…obot' is neither a webhook URL nor a bare access_token",
        ),
        ({"DINGPUSH_APP_KEY": "k"}, "$DINGPUSH_APP_SECRET: is not set while its pair is"),
    ],
)
def test_environment_mistakes(tmp_path: pathlib.Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config(env={**env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert str(caught.value).startswith(message)


def test_environment_app(tmp_path: pathlib.Path) -> None:
    env = {"DINGPUSH_APP_KEY": "dingkey", "DINGPUSH_APP_SECRET": "app-secret-value"}
    config = load_config(env={**env, "XDG_CONFIG_HOME": str(tmp_path)}, cwd=tmp_path)
    assert config.app("app:default").app_key == "dingkey"
    target = config.resolve("app:default/group/cidXYZ==")
    assert isinstance(target, AppGroupTarget) and target.open_conversation_id == "cidXYZ=="


def test_a_file_wins_over_the_environment_and_says_so(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "dingpush.toml", "ops")
    config = load_config(env={"DINGPUSH_WEBHOOK": WEBHOOK}, cwd=tmp_path)
    assert list(config.targets) == ["ops"]
    assert "$DINGPUSH_WEBHOOK is set but not used" in config.notes[0]
    assert 'webhook = "${DINGPUSH_WEBHOOK}"' in config.notes[0]


CONFIG = f"""\
default = "ops"

[targets.ops]
webhook = "${{OPS_WEBHOOK}}"
secret = "${{OPS_SECRET}}"
keyword = "${{KEYWORD:-告警}}"
rate = "10/30s"
cooldown = "5m"

[targets.dev]
webhook = "dingtalk://{SECRET}@devtoken/13800000000?format=markdown"

[targets]
short = "{WEBHOOK}"

[targets.both]
kind = "pool"
members = ["ops", "dev", "{WEBHOOK}"]

[targets.room]
kind = "app-group"
app = "corp"
open_conversation_id = "cidAbC+/12=="

[targets.oncall]
kind = "app-users"
app = "corp"
users = ["manager1234", "0123"]
robot_code = "dingrobot"

[targets.all-hands]
kind = "work-notice"
app = "corp"
agent_id = "${{AGENT_ID}}"
departments = [1, "2"]
everyone = "${{EVERYONE:-false}}"

[apps.corp]
app_key = "dingcorpkey"
app_secret = "${{CORP_SECRET}}"
api_base = "http://127.0.0.1:9/"
token_cache = "~/tokens"

[relay]
bind = "127.0.0.1:8080"
tokens = ["relay-api-token"]
"""

ENV = {
    "OPS_WEBHOOK": WEBHOOK,
    "OPS_SECRET": SECRET,
    "AGENT_ID": "123456",
    "CORP_SECRET": "corp-app-secret-value",
}


def test_every_kind_with_interpolation(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "dingpush.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(env={**ENV, "HOME": str(tmp_path)}, cwd=tmp_path)
    ops, dev, short = config.targets["ops"], config.targets["dev"], config.targets["short"]
    assert isinstance(ops, RobotTarget) and isinstance(dev, RobotTarget)
    assert (ops.webhook.token, ops.webhook.secret, ops.keyword) == (TOKEN, SECRET, "告警")
    assert (ops.rate, ops.cooldown) == (Rate(10, 30.0), 300.0)
    assert dev.webhook.mentions == ("13800000000",) and dev.webhook.markdown
    assert isinstance(short, RobotTarget) and short.webhook.token == TOKEN
    pool = config.targets["both"]
    assert isinstance(pool, PoolTarget)
    assert [m.name for m in pool.members] == ["ops", "dev", "both[2]"]
    room, oncall = config.targets["room"], config.targets["oncall"]
    assert isinstance(room, AppGroupTarget) and room.open_conversation_id == "cidAbC+/12=="
    assert isinstance(oncall, AppUsersTarget) and oncall.robot_code == "dingrobot"
    assert oncall.user_ids == ("manager1234", "0123")
    notice = config.targets["all-hands"]
    assert isinstance(notice, WorkNoticeTarget)
    assert (notice.agent_id, notice.departments, notice.everyone) == (123456, ("1", "2"), False)
    app = config.apps["corp"]
    assert (app.app_secret, app.api_base) == ("corp-app-secret-value", "http://127.0.0.1:9")
    assert app.token_cache == tmp_path / "tokens"
    assert config.relay == {"bind": "127.0.0.1:8080", "tokens": ["relay-api-token"]}
    assert set(config.secrets()) == {TOKEN, SECRET, "devtoken", "corp-app-secret-value"}


def test_origins_name_file_line_and_variable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dingpush.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(env={**ENV, "HOME": str(tmp_path)}, cwd=tmp_path)
    path = tmp_path / "dingpush.toml"
    assert config.origins["targets.ops.secret"] == Origin("file", path, 5, ("OPS_SECRET",))
    assert config.origins["targets.ops.keyword"] == Origin("file", path, 6, ("KEYWORD",))
    assert config.origins["targets.ops.rate"] == Origin("file", path, 7)
    assert config.origins["apps.corp.app_secret"].line == 40
    assert config.origins["relay.tokens"].line == 46
    assert str(Origin("file", pathlib.Path("/x/d.toml"), 5, ("A", "B"))) == (
        "/x/d.toml:5 via ${A}, ${B}"
    )


def test_an_unset_variable_sets_aside_only_its_targets(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files below the working directory are shown relative to it
    env = {k: v for k, v in ENV.items() if k not in ("OPS_SECRET", "CORP_SECRET")}
    (tmp_path / "dingpush.toml").write_text(CONFIG, encoding="utf-8")
    config = load_config(env={**env, "HOME": str(tmp_path)}, cwd=tmp_path)
    assert sorted(config.targets) == ["dev", "short"]
    assert sorted(config.unresolved) == [
        "apps.corp",
        "targets.all-hands",
        "targets.both",
        "targets.oncall",
        "targets.ops",
        "targets.room",
    ]
    with pytest.raises(ConfigFileError) as caught:
        config.resolve(None)  # the default, ops
    assert str(caught.value) == (
        "dingpush.toml:5: targets.ops.secret: refers to ${OPS_SECRET}, which is not set. Fix: "
        "export OPS_SECRET=… in the environment that runs dingpush, or write "
        "${OPS_SECRET:-fallback}"
    )
    with pytest.raises(ConfigFileError, match="refers to \\$\\{CORP_SECRET\\}"):
        config.resolve("room")
    assert config.target_names == ["all-hands", "both", "dev", "oncall", "ops", "room", "short"]


@pytest.mark.parametrize(
    ("text", "env", "expected", "used"),
    [
        ("plain", {}, "plain", ()),
        ("${A}", {"A": "1"}, "1", ("A",)),
        ("x-${A}-${B}-${A}", {"A": "1", "B": "2"}, "x-1-2-1", ("A", "B")),
        ("${A:-fallback}", {}, "fallback", ("A",)),
        ("${A:-fallback}", {"A": ""}, "fallback", ("A",)),
        ("${A:-}", {}, "", ("A",)),
        ("$$${A}", {"A": "1"}, "$1", ("A",)),
        ("cost $5 and $HOME", {}, "cost $5 and $HOME", ()),
        ("${A}", {"A": "${B}"}, "${B}", ("A",)),
    ],
)
def test_interpolate(text: str, env: dict[str, str], expected: str, used: tuple[str, ...]) -> None:
    assert interpolate(text, env) == (expected, used)


def test_interpolate_errors() -> None:
    with pytest.raises(MissingVariable) as missing:
        interpolate("${NOPE}", {})
    assert missing.value.name == "NOPE"
    with pytest.raises(BadReference, match="without a closing"):
        interpolate("${OPEN", {})
    with pytest.raises(BadReference, match="is not a variable reference"):
        interpolate("${1BAD}", {})
