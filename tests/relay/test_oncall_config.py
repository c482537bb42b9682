"""[policies.NAME] and [schedules.NAME]: who is on call when, what a policy's steps do, and the
configuration's problems, each naming its key and its fix."""

from __future__ import annotations

import logging
import pathlib

import pytest

from dingpush import ConfigError
from dingpush.alerts import Person
from dingpush.relay._config import load_relay
from dingpush.relay._oncall import (
    OnCall,
    Override,
    Policy,
    Schedule,
    Step,
    parse_instant,
    resolve_zone,
)

WEEK = 7 * 86400.0
START = parse_instant("2026-11-30T09:00+08:00")


def at(text: str) -> float:
    return parse_instant(text).timestamp()


def rotation(**changes: object) -> Schedule:
    values: dict[str, object] = {
        "name": "oncall",
        "people": ("alice", "bob", "carol"),
        "start": START,
        "every": WEEK,
    }
    values.update(changes)
    return Schedule(**values)  # type: ignore[arg-type]


# -- schedules --------------------------------------------------------------------------------


def test_people_take_turns_from_the_start() -> None:
    schedule = rotation()
    assert schedule.on_call(at("2026-11-30T09:00+08:00")) == "alice"
    assert schedule.on_call(at("2026-12-07T08:59+08:00")) == "alice"
    assert schedule.on_call(at("2026-12-07T09:00+08:00")) == "bob"
    assert schedule.on_call(at("2026-12-14T09:00+08:00")) == "carol"
    assert schedule.on_call(at("2026-12-21T09:00+08:00")) == "alice"


def test_the_rotation_extends_back_before_its_start() -> None:
    schedule = rotation()
    assert schedule.on_call(at("2026-11-30T08:59+08:00")) == "carol"
    assert schedule.on_call(at("2026-11-16T09:00+08:00")) == "bob"


def test_an_override_wins_for_its_span_only() -> None:
    holiday = Override(at("2026-12-24T09:00+08:00"), at("2026-12-26T09:00+08:00"), "dave")
    schedule = rotation(overrides=(holiday,))
    assert schedule.on_call(at("2026-12-24T08:59+08:00")) == "alice"  # the week of 12-21
    assert schedule.on_call(at("2026-12-24T09:00+08:00")) == "dave"
    assert schedule.on_call(at("2026-12-26T08:59+08:00")) == "dave"
    assert schedule.on_call(at("2026-12-26T09:00+08:00")) == "alice"


def test_times_in_other_offsets_are_the_same_instants() -> None:
    schedule = rotation()
    # 2026-12-07T09:00+08:00 is 01:00 UTC and 02:00 in Berlin (CET).
    assert schedule.on_call(at("2026-12-07T00:59Z".replace("Z", "+00:00"))) == "alice"
    assert schedule.on_call(at("2026-12-07T02:00+01:00")) == "bob"


def test_a_zone_keeps_the_handover_at_local_time_across_daylight_saving() -> None:
    berlin = resolve_zone("Europe/Berlin")
    # Monday 2026-10-19 09:00 CEST; summer time ends on Sunday 2026-10-25.
    start = parse_instant("2026-10-19T09:00", berlin)
    zoned = rotation(start=start, zone=berlin, people=("alice", "bob"))
    fixed = rotation(start=start, people=("alice", "bob"))
    # Monday 2026-10-26 08:30 CET: a fixed 7 × 24 h turn ended at 08:00 CET already.
    half_past_eight = parse_instant("2026-10-26T08:30", berlin).timestamp()
    assert fixed.on_call(half_past_eight) == "bob"
    assert zoned.on_call(half_past_eight) == "alice"
    assert zoned.on_call(parse_instant("2026-10-26T09:00", berlin).timestamp()) == "bob"


def test_a_schedule_refuses_what_cannot_rotate() -> None:
    with pytest.raises(ConfigError, match="people is empty"):
        rotation(people=())
    with pytest.raises(ConfigError, match="positive"):
        rotation(every=0)
    with pytest.raises(ConfigError, match="offset"):
        parse_instant("2026-11-30T09:00")
    with pytest.raises(ConfigError, match="not a time"):
        parse_instant("Monday 9am")
    with pytest.raises(ConfigError, match="after its from"):
        Override(10.0, 10.0, "dave")


def test_a_schedule_resolves_to_a_person_of_the_directory() -> None:
    people = {n: Person(user_id=f"id-{n}") for n in ("alice", "bob", "carol")}
    oncall = OnCall(schedules={"oncall": rotation()}, people=people)
    assert oncall.person("oncall", at("2026-12-08T12:00+08:00")) == ("bob", people["bob"])
    assert oncall.person("carol", 0.0) == ("carol", people["carol"])


# -- policies ---------------------------------------------------------------------------------


def test_a_policy_says_when_each_step_is_due() -> None:
    page = Policy("page", (Step(300, ding="oncall"), Step(900, notify="leads")))
    assert [page.due_at(1000.0, n) for n in range(3)] == [1300.0, 1900.0, None]
    assert page.step(2) is None


def test_a_repeating_policy_starts_over_a_cycle_later() -> None:
    page = Policy("page", (Step(300, ding="oncall"), Step(900, notify="leads")), repeat=True)
    assert [page.due_at(0.0, n) for n in range(5)] == [300.0, 900.0, 1200.0, 1800.0, 2100.0]
    assert page.step(3) == page.steps[1]


def test_a_step_reads_its_reminder_names() -> None:
    assert Step(0, ding="x", remind="phone").remind == "call"
    assert Step(0, ding="x").remind == "app" and Step(0, ding="x").fallback == "app"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Step(60), "does one thing"),
        (lambda: Step(60, ding="x", notify="y"), "does one thing"),
        (lambda: Step(60, ding="x", remind="pager"), "not a reminder type"),
        (lambda: Step(60, ding="x", fallback="sms"), "only fallback"),
        (lambda: Step(-1, ding="x"), "0 or more"),
        (lambda: Policy("p", ()), "no steps"),
        (lambda: Policy("p", (Step(60, ding="x"),), wait_for="seen"), "acknowledged"),
        (lambda: Policy("p", (Step(60, ding="x"), Step(30, ding="x"))), "must not decrease"),
        (lambda: Policy("p", (Step(0, ding="x"),), repeat=True), "cycle"),
    ],
)
def test_a_policy_refuses_what_cannot_run(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]


# -- the TOML ---------------------------------------------------------------------------------

APP = """
[apps.corp]
app_key = "dingappkey0123456789"
app_secret = "app-secret-0123456789abcdef0123456789"

[targets.room]
kind = "app-group"
app = "corp"
open_conversation_id = "cid0123456789=="
robot_code = "dingrobot0123"

[targets.leads]
webhook = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123"

[people.alice]
user_id = "manager4220"

[people.bob]
user_id = "user123"

[people.carol]
mobile = "13800000000"
"""

GOOD = """
[routes.ops]
targets = ["room"]
policy = "page"

[[routes.ops.routes]]
name = "critical"
match = ['severity="critical"']

[[routes.ops.routes]]
name = "quiet"
match = ['severity="info"']
policy = "watch"

[policies.page]
wait_for = "acknowledged"
repeat = true
steps = [
  {after = "5m", ding = "oncall", remind = "phone", fallback = "app"},
  {after = "15m", notify = "leads"},
]

[policies.watch]
wait_for = "read"
steps = [{after = "30m", ding = "alice", fallback = "none"}]

[schedules.oncall]
people = ["alice", "bob"]
start = "2026-11-30T09:00+08:00"
every = "7d"
overrides = [{from = "2026-12-24T09:00+08:00", until = "2026-12-26T09:00+08:00", person = "bob"}]
"""


def _write(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "dingpush.toml"
    path.write_text(APP + text, encoding="utf-8")
    return str(path)


def test_policies_and_schedules_are_read(tmp_path: pathlib.Path) -> None:
    loaded = load_relay(_write(tmp_path, GOOD))
    assert loaded is not None
    relay = loaded[0]
    alerts = relay.alerts
    assert alerts is not None and alerts.oncall is not None
    assert alerts.policies == {"ops": "page", "ops/critical": "page", "ops/quiet": "watch"}
    page = alerts.oncall.policies["page"]
    assert (page.wait_for, page.repeat, len(page.steps)) == ("acknowledged", True, 2)
    assert page.steps[0] == Step(300.0, ding="oncall", remind="call", fallback="app")
    assert page.steps[1] == Step(900.0, notify="leads")
    assert alerts.oncall.policies["watch"].steps[0].fallback is None
    schedule = alerts.oncall.schedules["oncall"]
    assert schedule.on_call(at("2026-12-08T12:00+08:00")) == "bob"
    assert schedule.on_call(at("2026-12-25T12:00+08:00")) == "bob"
    assert schedule.on_call(at("2026-12-15T12:00+08:00")) == "alice"
    assert relay.escalation is not None


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (('policy = "page"', 'policy = "pager"'), "routes.ops", "policy 'pager' is not defined"),
        (('remind = "phone"', 'remind = "pager"'), "policies.page.steps[0]", "reminder type"),
        (('wait_for = "read"', 'wait_for = "seen"'), "policies.watch", "acknowledged"),
        (('notify = "leads"', 'notify = "boss"'), "policies.page.steps[1].notify", "no target"),
        (('ding = "alice"', 'ding = "carol"'), "policies.watch.steps[0].ding", "no user_id"),
        (('ding = "alice"', 'ding = "zoe"'), "policies.watch.steps[0].ding", "neither"),
        (('"7d"', '"soon"'), "schedules.oncall.every", "not a duration"),
        (('"2026-11-30T09:00+08:00"', '"2026-11-30T09:00"'), "schedules.oncall.start", "offset"),
        (('person = "bob"', 'person = "zoe"'), "schedules.oncall", "neither"),
        (('{after = "15m", notify', '{after = "15m", dong = 1, notify'), "dong", "unknown step"),
        (("repeat = true", 'repeat = "yes"'), "policies.page.repeat", "true or false"),
        (('every = "7d"', 'every = "7d"\ntimezone = "Mars/Olympus"'), "timezone", "unknown"),
        (('targets = ["room"]', 'targets = ["leads"]'), "routes.ops", "is an app target"),
        (("repeat = true", 'repeat = true\nvia = "leads"'), "policies.page.via", "not an app"),
        (('after = "15m"', 'after = "1m"'), "policies.page", "must not decrease"),
        # The advice was "leave it out to have none", but left out it is "app", the default.
        (('fallback = "app"', 'fallback = "sms"'), "steps[0].fallback", 'or "none"'),
        (('every = "7d"', 'every = "0s"'), "schedules.oncall.every", "longer than zero. Fix"),
    ],
)
def test_a_bad_policy_or_schedule_names_the_key_and_the_fix(
    tmp_path: pathlib.Path, change: tuple[str, str], key: str, message: str
) -> None:
    assert change[0] in GOOD
    with pytest.raises(ConfigError) as caught:
        load_relay(_write(tmp_path, GOOD.replace(change[0], change[1], 1)))
    text = str(caught.value)
    assert key in text and message in text, text
    assert any(word in text for word in ("Fix", "write", "use", "add", "order")), text
    assert f"{key}: {key}:" not in text  # the key once, not again from the value's own error


def test_policies_without_routes_are_a_problem(tmp_path: pathlib.Path) -> None:
    text = '[policies.page]\nsteps = [{after = "5m", ding = "alice"}]\n'
    with pytest.raises(ConfigError, match="there are none"):
        load_relay(_write(tmp_path, text))


def test_a_policy_needs_steps(tmp_path: pathlib.Path) -> None:
    text = GOOD + '\n[policies.empty]\nwait_for = "read"\n'
    with pytest.raises(ConfigError, match=r"policies\.empty\.steps"):
        load_relay(_write(tmp_path, text))


def test_a_policy_can_ding_through_another_target(tmp_path: pathlib.Path) -> None:
    text = GOOD.replace('targets = ["room"]', 'targets = ["leads"]').replace(
        "repeat = true", 'repeat = true\nvia = "room"'
    )
    text = text.replace('wait_for = "read"', 'wait_for = "read"\nvia = "room"')
    loaded = load_relay(_write(tmp_path, text))
    assert loaded is not None and loaded[0].escalation is not None


def test_waiting_for_read_without_an_app_group_target_is_a_warning(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = GOOD.replace('targets = ["room"]', 'targets = ["leads"]')
    text = text.replace("repeat = true", 'repeat = true\nvia = "room"')
    text = text.replace('wait_for = "read"', 'wait_for = "read"\nvia = "room"')
    with caplog.at_level(logging.WARNING, logger="dingpush.relay"):
        assert load_relay(_write(tmp_path, text)) is not None
    (warning,) = [r.getMessage() for r in caplog.records if "read status" in r.getMessage()]
    assert "route ops/quiet follows policy 'watch'" in warning


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("user_id = 4220", "people.alice.user_id: must be a string"),
        ('user_id = "manager 4220"', "alice.user_id: 'manager 4220' is not a DingTalk userId"),
        ('userid = "manager4220"', "people.alice.userid: unknown person setting; did you mean"),
    ],
)
def test_a_broken_person_is_reported_once_not_again_where_they_are_referred_to(
    tmp_path: pathlib.Path, change: str, message: str
) -> None:
    """alice is dinged by policies.watch and takes turns in schedules.oncall: her own problem
    says it all; "neither a schedule nor a person" there would send one looking elsewhere."""
    path = tmp_path / "dingpush.toml"
    path.write_text(APP.replace('user_id = "manager4220"', change) + GOOD, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_relay(str(path))
    text = str(caught.value)
    assert message in text and "neither" not in text and "problems" not in text, text
    # A name that is defined nowhere is still a problem of its own, beside the person's.
    text2 = GOOD.replace('ding = "alice"', 'ding = "zoe"')
    path.write_text(APP.replace('user_id = "manager4220"', change) + text2, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_relay(str(path))
    text = str(caught.value)
    assert message in text and "'zoe' is neither a schedule nor a person" in text, text
    assert "'alice' is neither" not in text, text
