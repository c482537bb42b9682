"""``[routes.NAME]``, ``[templates.NAME]`` and ``[people.NAME]``: the relay's alert settings.

Read by the one settings reader (:class:`dingpush.config.Reader`), every problem reported with
the others of the file, each with its line and fix; templates are compiled at load, so one that
does not compile stops start-up with its file, line and fix::

    [people.alice]
    user_id = "manager4220"

    [templates.short]
    source = '''### {{ headline }}'''

    [routes.ops]                      # POST /alertmanager/ops, /grafana/ops, /hooks/ops
    targets = ["ops"]
    token = "${OPS_ALERT_TOKEN}"      # optional: /alertmanager/ops/TOKEN or X-Dingpush-Token

    [[routes.ops.routes]]
    name = "critical"
    match = ['severity="critical"']
    targets = ["oncall"]
    mention = ["alice"]
    repeat_window = "4h"
"""

from __future__ import annotations

import functools
import logging
import pathlib
import re
import typing
from collections.abc import Mapping

from dingpush import ConfigError
from dingpush.alerts import (
    AlertSettings,
    Person,
    Route,
    TemplateError,
    Templates,
    TemplateSpec,
)
from dingpush.config import (
    BOOLEAN,
    DURATION,
    NONEMPTY,
    STRINGS,
    TEXT,
    Field,
    Reader,
    Table,
)

from ._alerts import AlertReceivers

__all__ = ["PEOPLE", "ROUTE", "TEMPLATE", "read_alerts"]

log = logging.getLogger("dingpush.relay")

Path = tuple[str, ...]

#: ``[routes.NAME]`` and its children (``[[routes.NAME.routes]]``): ``Route``'s fields.
ROUTE = Table(
    "a route",
    (
        Field("name", NONEMPTY, help="the child's name in reports (ops/critical)"),
        Field("match", STRINGS, help="""matchers: ['severity="critical"', 'team=~"db|infra"']"""),
        Field("targets", STRINGS, help="the targets its messages go to"),
        Field("template", NONEMPTY, help="a [templates.NAME] or a builtin template"),
        Field("mention", STRINGS, help="people ([people.NAME]) or mobiles always mentioned"),
        Field("mention_all", BOOLEAN, help="always @all"),
        Field("allow_mention_all", BOOLEAN, help='an alert may ask for @all (dingtalk_at="all")'),
        Field("mention_labels", STRINGS, help="labels/annotations naming people to mention"),
        Field("continue", BOOLEAN, help="keep trying the next routes after this one matched"),
        Field("repeat_window", DURATION, help="hold back an identical repeat this long"),
        Field("timezone", NONEMPTY, help="the IANA zone times are shown in"),
        Field("token", TEXT, help="a token callers may present instead of an API token"),
    ),
    extra=("routes",),
    unknown="unknown route setting",
)
#: ``[templates.NAME]``: inline ``source`` or a ``file``.
TEMPLATE = Table(
    "[templates.NAME]",
    (
        Field("source", TEXT, help="the Jinja2 text"),
        Field("file", NONEMPTY, help="or a file, relative to the configuration's folder"),
    ),
    unknown="unknown template setting",
)
#: ``[people.NAME]``: who a mention reaches.
PEOPLE = Table(
    "[people.NAME]",
    (
        Field("user_id", NONEMPTY, help="their DingTalk userId"),
        Field("mobile", NONEMPTY, help="their mobile number"),
    ),
    unknown="unknown person setting",
)

_NAMED = re.compile(r"templates\.([^.:\s]+)")


def _attempt(reader: Reader, path: Path, build: typing.Callable[[], typing.Any]) -> typing.Any:
    try:
        return build()
    except (ConfigError, ValueError, TypeError) as exc:
        reader.problem(path, str(exc))
        return None


def _route(
    reader: Reader,
    table: Mapping[str, typing.Any],
    path: Path,
    tokens: dict[str, str] | None,
) -> Route | None:
    """One route and its children; ``tokens`` (the top route's only) collects its token."""
    values = reader.fields(table, path, ROUTE)
    token = values.pop("token", None)
    if token is not None and tokens is None:
        reader.problem(
            (*path, "token"),
            "only a route table's top route takes a token",
            f"move it to [{'.'.join(path[:2])}]",
        )
    elif token:
        typing.cast(dict[str, str], tokens)[path[-1]] = token
    children: list[Route] = []
    raw = table.get("routes", [])
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
        reader.problem(
            (*path, "routes"),
            "must be an array of tables",
            f"write each child route as [[{'.'.join(path)}.routes]]",
        )
        raw = []
    ok = values.complete
    for index, child in enumerate(raw):
        built = _route(reader, child, (*path, "routes", f"[{index}]"), None)
        ok = ok and built is not None
        if built is not None:
            children.append(built)
    if not ok:
        return None
    arguments: dict[str, typing.Any] = dict(values)
    if "continue" in arguments:
        arguments["continue_"] = arguments.pop("continue")
    return typing.cast(
        "Route | None", _attempt(reader, path, lambda: Route(**arguments, routes=children))
    )


def _templates(
    reader: Reader, specs: dict[str, TemplateSpec], base: pathlib.Path
) -> Templates | None:
    """Compile the templates; every one that fails is a problem (not only the first)."""
    remaining = dict(specs)
    ok = True
    while True:
        try:
            templates = Templates(remaining.values(), base_dir=base)
        except TemplateError as exc:
            message = str(exc).partition(". Fix: ")[0]
            reader.problem(("templates", exc.template), message, exc.fix)
            remaining.pop(exc.template, None)
        except ConfigError as exc:
            found = _NAMED.search(str(exc))
            name = found.group(1) if found and found.group(1) in remaining else None
            reader.problem(("templates", name) if name else ("templates",), str(exc))
            if name is None:
                return None
            remaining.pop(name)
        else:
            return templates if ok else None
        ok = False


def read_alerts(
    reader: Reader,
    data: Mapping[str, typing.Any],
    base: pathlib.Path,
    target_kinds: Mapping[str, str],
) -> AlertReceivers | None:
    """The alert receivers of a file's ``[routes]``, ``[templates]`` and ``[people]`` (None
    when it has no routes); problems go to ``reader``. ``target_kinds`` names the relay's
    targets (name → kind)."""
    mark = len(reader.problems)
    routes_table = reader.table(data, ("routes",))
    templates_table = reader.table(data, ("templates",))
    people_table = reader.table(data, ("people",))
    if not routes_table:
        for section, table in (("templates", templates_table), ("people", people_table)):
            if table:
                reader.problem(
                    (section,),
                    "is only used by routes, and there are none",
                    "add a [routes.NAME] table (see docs/alerts.md), or remove this one",
                )
        return None
    people: dict[str, Person] = {}
    for name, entry in people_table.items():
        path = ("people", name)
        if not isinstance(entry, dict):
            reader.table(people_table, path)
            continue
        values = reader.fields(entry, path, PEOPLE)
        if values.complete:
            person = _attempt(reader, path, functools.partial(Person, name=name, **values))
            if person is not None:
                people[name] = person
    specs: dict[str, TemplateSpec] = {}
    for name, entry in templates_table.items():
        path = ("templates", name)
        if not isinstance(entry, dict):
            reader.table(templates_table, path)
            continue
        values = reader.fields(entry, path, TEMPLATE)
        origin = f"{reader.source.path.name}:{reader.line(path) or '?'}"
        if values.complete:
            spec = _attempt(
                reader, path, functools.partial(TemplateSpec, name=name, origin=origin, **values)
            )
            if spec is not None:
                specs[name] = spec
    routes: dict[str, Route] = {}
    tokens: dict[str, str] = {}
    for name, entry in routes_table.items():
        path = ("routes", name)
        if not isinstance(entry, dict):
            reader.table(routes_table, path)
            continue
        route = _route(reader, entry, path, tokens)
        if route is not None:
            routes[name] = route
    templates = _templates(reader, specs, base)  # compiled even now: all problems at once
    if len(reader.problems) > mark or templates is None:
        return None
    settings = _attempt(
        reader, ("routes",), lambda: AlertSettings(routes=routes, templates=specs, people=people)
    )
    if settings is None:
        return None
    receivers = AlertReceivers(settings, tokens=tokens, templates=templates)
    errors, warnings = receivers.check(target_kinds)
    for text in errors:
        reader.problem(_where(text), text.partition(": ")[2] or text)
    for text in warnings:
        log.warning("%s", text)
    return receivers


def _where(problem: str) -> Path:
    """The key path a problem of ``AlertSettings.check`` starts with (``routes.ops.targets``)."""
    head = problem.partition(": ")[0]
    return tuple(head.split(".")) if head.startswith("routes.") else ("routes",)
