"""Matchers and routes behave as Alertmanager's; repeats are held back within a window."""

from __future__ import annotations

import pytest

from dingpush import ConfigError
from dingpush.alerts import (
    Matcher,
    MemoryRepeatLog,
    Route,
    parse_matcher,
    parse_matchers,
    repeat_key,
    select_routes,
)

LABELS = {"alertname": "DiskFull", "severity": "critical", "team": "db", "instance": "db-01"}


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="critical"', "severity", "=", "critical"),
        ("severity=critical", "severity", "=", "critical"),
        ('  team =~ "db|infra" ', "team", "=~", "db|infra"),
        ('team!="db"', "team", "!=", "db"),
        ('team!~"db.*"', "team", "!~", "db.*"),
        ('msg="say \\"hi\\", ok"', "msg", "=", 'say "hi", ok'),
        ('path="C:\\\\tmp"', "path", "=", "C:\\tmp"),
        ('text="line\\nnext"', "text", "=", "line\nnext"),
        ('odd="a\\qb"', "odd", "=", "a\\qb"),  # a spurious escape is a literal backslash
        ('empty=""', "empty", "=", ""),
        ("object_attributes.status=failed", "object_attributes.status", "=", "failed"),
    ],
)
def test_matcher_syntax(text: str, name: str, op: str, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)
    assert parse_matcher(str(matcher)) == matcher  # str() writes it back


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("severity", "is not of the form"),
        ('9lives="x"', "is not a label name"),
        ('team=~"db|("', "regular expression"),
        ('team="db', "closing"),
        ('team="d"b"', "escape"),
        ('team=d"b', "unescaped"),
        ("", "is not of the form"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('team="db"', LABELS, True),
        ('team="DB"', LABELS, False),
        ('team=~"db|infra"', LABELS, True),
        ('team=~"d"', LABELS, False),  # anchored: the whole value must match
        ('team=~"d.*"', LABELS, True),
        ('instance=~"db"', LABELS, False),
        ('team!~"d"', LABELS, True),
        ('team!="db"', LABELS, False),
        ('owner!="alice"', LABELS, True),  # a missing label is ""
        ('owner=""', LABELS, True),
        ('owner=~".*"', LABELS, True),
        ('owner=~".+"', LABELS, False),
        ('team=~"db\\n?"', {"team": "db\n"}, True),
        ('team=~"db"', {"team": "db\n"}, False),  # "$" would accept the newline; fullmatch not
    ],
)
def test_matching_follows_alertmanager(
    matcher: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


def test_matcher_lists() -> None:
    parsed = parse_matchers('{severity="critical", team=~"db|infra", }')
    assert [str(m) for m in parsed] == ['severity="critical"', 'team=~"db|infra"']
    assert parse_matchers('a="x,y",b=z') == (Matcher("a", "=", "x,y"), Matcher("b", "=", "z"))
    assert parse_matchers(['a="1"', Matcher("b", "!=", "2")])[1].op == "!="
    assert parse_matchers("") == ()


def table() -> Route:
    return Route(
        name="ops",
        targets=["ops-robot"],
        template="alertmanager",
        repeat_window=3600,
        routes=[
            Route(
                name="db",
                match=['team="db"'],
                targets=["db-robot"],
                routes=[Route(name="page", match=['severity="critical"'], mention=["alice"])],
            ),
            Route(
                name="audit",
                match=['severity=~"critical|warning"'],
                targets=["audit"],
                continue_=True,
            ),
            Route(name="infra", match=['team=~"infra|db"'], targets=["infra-robot"]),
            Route(name="never", match=['team="db"'], targets=["nobody"]),
        ],
    )


def paths(labels: dict[str, str]) -> list[str]:
    return [r.path for r in select_routes(table(), labels, "ops")]


def test_first_match_wins_and_children_refine() -> None:
    assert paths(LABELS) == ["ops/db/page"]  # "never" is never reached: db matched first
    assert paths({"team": "db", "severity": "info"}) == ["ops/db"]


def test_continue_keeps_trying_siblings() -> None:
    assert paths({"team": "infra", "severity": "warning"}) == ["ops/audit", "ops/infra"]
    assert paths({"team": "web", "severity": "critical"}) == ["ops/audit"]


def test_the_root_catches_the_rest() -> None:
    assert paths({"team": "web"}) == ["ops"]
    assert paths({}) == ["ops"]


def test_children_inherit_unset_settings() -> None:
    (page,) = select_routes(table(), LABELS, "ops")
    assert page.targets == ("db-robot",)  # from "db"
    assert page.template == "alertmanager" and page.repeat_window == 3600  # from the root
    assert page.mention == ("alice",)


def test_route_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="repeat_window"):
        Route(repeat_window=-1)
    with pytest.raises(ConfigError, match="timezone"):
        Route(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="mention_all"):
        Route(mention_all="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="targets"):
        Route(targets=[""])
    assert Route(targets="ops").targets == ("ops",)  # a lone name is one target
    assert [path for path, _ in table().walk("ops")][:3] == ["ops", "ops/db", "ops/db/page"]


def test_repeat_log_holds_identical_repeats_within_the_window() -> None:
    log = MemoryRepeatLog()
    key = repeat_key("ops", "g1", "firing", [("fp1", "firing"), ("fp2", "firing")])
    assert key == repeat_key("ops", "g1", "firing", [("fp2", "firing"), ("fp1", "firing")])
    assert not log.seen(key, 1000.0)
    log.remember(key, 1000.0, 3600)
    assert log.seen(key, 1000.0 + 3599)
    assert not log.seen(key, 1000.0 + 3600)  # the window has ended
    changed = repeat_key("ops", "g1", "firing", [("fp1", "firing"), ("fp2", "resolved")])
    assert changed != key and not log.seen(changed, 1001.0)
    log.remember("other", 0.0, 0)  # a zero window remembers nothing
    assert not log.seen("other", 0.0)


def test_repeat_log_sweeps_expired_keys() -> None:
    log = MemoryRepeatLog(sweep_every=10)
    for index in range(10):
        log.remember(f"k{index}", float(index), 1.0)
    assert len(log) == 1  # swept at the tenth write: only the newest is still in its window
