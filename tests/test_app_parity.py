"""The sync clients and their async twins keep the same API: names, parameters, defaults.

Members are compared as the classes offer them, inherited ones included: a shared base class
(``BaseRobot``, ``BasePool``, ``BaseApp``) is where much of the two twins' surface now lives.
"""

from __future__ import annotations

import inspect
import typing

import pytest

import dingpush

PAIRS = [
    (dingpush.Robot, dingpush.AsyncRobot),
    (dingpush.RobotPool, dingpush.AsyncRobotPool),
    (dingpush.App, dingpush.AsyncApp),
    (dingpush.AppGroup, dingpush.AsyncAppGroup),
    (dingpush.AppUsers, dingpush.AsyncAppUsers),
    (dingpush.WorkNotice, dingpush.AsyncWorkNotice),
]
_RENAMED = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}


def _public(cls: type) -> dict[str, object]:
    members: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass not in (object, typing.Generic):
            members.update(vars(klass))
    return {
        name: member
        for name, member in members.items()
        if not name.startswith("_") or name in (*_RENAMED, *_RENAMED.values(), "__init__")
    }


def _shape(member: object) -> list[tuple[str, object, object]]:
    if isinstance(member, property):
        return [("property", None, None)]
    signature = inspect.signature(member)  # type: ignore[arg-type]
    return [
        (p.name, p.kind, p.default)
        for p in signature.parameters.values()
        if p.name not in ("self", "app", "transport", "http_client")
    ]


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_same_methods_and_signatures(sync: type, async_: type) -> None:
    sync_members = _public(sync)
    async_members = _public(async_)
    expected = {_RENAMED.get(name, name) for name in sync_members}
    assert expected == set(async_members)
    for name, member in sync_members.items():
        twin = async_members[_RENAMED.get(name, name)]
        assert _shape(member) == _shape(twin), name
        factories = ("group", "users", "notify", "close")
        if inspect.isfunction(member) and not name.startswith("__") and name not in factories:
            assert inspect.iscoroutinefunction(twin), name
