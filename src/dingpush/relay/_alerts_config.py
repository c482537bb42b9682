"""``[routes.NAME]``, ``[templates.NAME]``, ``[people.NAME]``, ``[policies.NAME]`` and
``[schedules.NAME]``: the relay's alert settings.

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
    policy = "page"                   # escalate until acknowledged (see _oncall.py)

    [policies.page]
    steps = [{after = "5m", ding = "oncall", remind = "phone"}]

    [schedules.oncall]
    people = ["alice"]
    start = "2026-11-30T09:00+08:00"
    every = "7d"
"""

from __future__ import annotations

import datetime
import functools
import logging
import pathlib
import re
import typing
from collections.abc import Collection, Mapping

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
from ._oncall import OnCall, Override, Policy, Schedule, Step, parse_instant, resolve_zone

__all__ = ["OVERRIDE", "PEOPLE", "POLICY", "ROUTE", "SCHEDULE", "STEP", "TEMPLATE", "read_alerts"]

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
        Field("policy", NONEMPTY, help="the escalation policy ([policies.NAME]) it follows"),
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

#: ``[policies.NAME]``: what the on-call loop waits for and the steps it runs meanwhile.
POLICY = Table(
    "[policies.NAME]",
    (
        Field("wait_for", NONEMPTY, help='"acknowledged" (default) or "read"'),
        Field("repeat", BOOLEAN, help="after the last step, run the steps again"),
        Field("via", NONEMPTY, help="the app target whose robot sends the DINGs"),
    ),
    extra=("steps",),
    unknown="unknown policy setting",
)


def _fallback(value: str) -> str | None:
    return None if value in ("app", "none") else f"{value!r} is not a fallback"


def _turn(seconds: float) -> str | None:
    return None if seconds > 0 else "must be longer than zero"


#: One of a policy's ``steps = [{…}, …]``.
STEP = Table(
    "a policy step",
    (
        Field("after", DURATION, required=True, example='"5m"', help="from the alert's opening"),
        Field("ding", NONEMPTY, help="a schedule or a person to DING"),
        Field("remind", NONEMPTY, help='the DING\'s reminder: "app", "sms" or "phone"'),
        Field(
            "fallback",
            NONEMPTY,
            rule=_fallback,
            fix='write "app" (an in-app DING when the SMS/phone quota is missing; the default) '
            'or "none"',
            help='"app" (default): an in-app DING without quota; "none"',
        ),
        Field("notify", NONEMPTY, help="a target the alert is sent to"),
    ),
    unknown="unknown step setting",
)
#: ``[schedules.NAME]``: a weekly (or any) rotation with overrides.
SCHEDULE = Table(
    "[schedules.NAME]",
    (
        Field("people", STRINGS, required=True, help="who takes turns ([people.NAME])"),
        Field("start", NONEMPTY, required=True, example='"2026-11-30T09:00+08:00"'),
        Field(
            "every",
            DURATION,
            required=True,
            rule=_turn,
            fix='write the length of a turn, e.g. "7d"',
            example='"7d"',
            help="the length of a turn",
        ),
        Field("timezone", NONEMPTY, help="turns change at the same local time in this zone"),
    ),
    extra=("overrides",),
    unknown="unknown schedule setting",
)
#: One of a schedule's ``overrides = [{from, until, person}]``.
OVERRIDE = Table(
    "a schedule override",
    (
        Field("from", NONEMPTY, required=True, example='"2026-12-24T09:00+08:00"'),
        Field("until", NONEMPTY, required=True, example='"2026-12-26T09:00+08:00"'),
        Field("person", NONEMPTY, required=True, help="who is on call instead"),
    ),
    unknown="unknown override setting",
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
    policies: dict[str, str | None],
    where: str,
    inherited: str | None = None,
) -> Route | None:
    """One route and its children; ``tokens`` (the top route's only) collects its token.

    ``policies`` collects each route path's policy (``ops/critical`` → ``page``), a child
    inheriting its parent's; ``where`` is this route's path.
    """
    values = reader.fields(table, path, ROUTE)
    policy = values.pop("policy", inherited)
    policies[where] = policy
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
        name = child.get("name")
        below = f"{where}/{name if isinstance(name, str) and name else index}"
        built = _route(
            reader, child, (*path, "routes", f"[{index}]"), None, policies, below, policy
        )
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
    policies_table = reader.table(data, ("policies",))
    schedules_table = reader.table(data, ("schedules",))
    if not routes_table:
        for section, table in (
            ("templates", templates_table),
            ("people", people_table),
            ("policies", policies_table),
            ("schedules", schedules_table),
        ):
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
        before = len(reader.problems)
        values = reader.fields(entry, path, PEOPLE)
        # An unknown key ("userid") is the person's problem: not a second one from Person.
        if values.complete and len(reader.problems) == before:
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
    route_policies: dict[str, str | None] = {}
    for name, entry in routes_table.items():
        path = ("routes", name)
        if not isinstance(entry, dict):
            reader.table(routes_table, path)
            continue
        route = _route(reader, entry, path, tokens, route_policies, name)
        if route is not None:
            routes[name] = route
    templates = _templates(reader, specs, base)  # compiled even now: all problems at once
    # Written but unreadable: their own problems are reported, a reference to one is no other.
    unreadable = set(people_table) - set(people)
    oncall = _oncall(reader, policies_table, schedules_table, people, target_kinds, unreadable)
    used = {where: policy for where, policy in route_policies.items() if policy is not None}
    for where, policy in used.items():
        if oncall is not None and policy not in oncall.policies:
            known = ", ".join(sorted(oncall.policies)) or "none are configured"
            reader.problem(
                _route_path(where),
                f"policy {policy!r} is not defined; the policies are: {known}",
                f"add [policies.{policy}], or fix the name",
            )
    if oncall is not None:
        _check_policy_targets(reader, routes, used, oncall, target_kinds)
    if len(reader.problems) > mark or templates is None:
        return None
    settings = _attempt(
        reader, ("routes",), lambda: AlertSettings(routes=routes, templates=specs, people=people)
    )
    if settings is None:
        return None
    receivers = AlertReceivers(
        settings, tokens=tokens, templates=templates, oncall=oncall, policies=used
    )
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


def _route_path(where: str) -> Path:
    """The key path of route ``ops/critical`` as far as names allow (``routes.ops``)."""
    return ("routes", where.split("/")[0])


def _oncall(
    reader: Reader,
    policies_table: Mapping[str, typing.Any],
    schedules_table: Mapping[str, typing.Any],
    people: Mapping[str, Person],
    target_kinds: Mapping[str, str],
    unreadable: Collection[str] = (),
) -> OnCall | None:
    """``[policies]`` and ``[schedules]``; None when one of them has a problem (recorded)."""
    mark = len(reader.problems)
    policies: dict[str, Policy] = {}
    for name, entry in policies_table.items():
        path = ("policies", name)
        if not isinstance(entry, dict):
            reader.table(policies_table, path)
            continue
        policy = _policy(reader, name, entry, path)
        if policy is not None:
            policies[name] = policy
    schedules: dict[str, Schedule] = {}
    for name, entry in schedules_table.items():
        path = ("schedules", name)
        if not isinstance(entry, dict):
            reader.table(schedules_table, path)
            continue
        schedule = _schedule(reader, name, entry, path)
        if schedule is not None:
            schedules[name] = schedule
    if len(reader.problems) > mark:
        return None
    oncall = OnCall(policies=policies, schedules=schedules, people=dict(people))
    for where, message, fix in oncall.problems(target_kinds, broken=unreadable):
        reader.problem(where, message, fix)
    return None if len(reader.problems) > mark else oncall


def _policy(
    reader: Reader, name: str, entry: Mapping[str, typing.Any], path: Path
) -> Policy | None:
    values = reader.fields(entry, path, POLICY)
    if "steps" not in entry:
        reader.problem(
            (*path, "steps"),
            "missing",
            'add steps = [{after = "5m", ding = "oncall", remind = "phone"}]',
        )
        return None
    steps: list[Step] = []
    ok = values.complete
    for index, step_values in enumerate(reader.items(entry, (*path, "steps"), STEP)):
        where = (*path, "steps", f"[{index}]")
        if not step_values.complete:
            ok = False
            continue
        arguments = dict(step_values)
        if arguments.get("fallback") == "none":
            arguments["fallback"] = None
        step = _attempt(reader, where, functools.partial(Step, **arguments))
        if step is None:
            ok = False
        else:
            steps.append(step)
    if not ok:
        return None
    return typing.cast(
        "Policy | None",
        _attempt(reader, path, functools.partial(Policy, name=name, steps=tuple(steps), **values)),
    )


def _schedule(
    reader: Reader, name: str, entry: Mapping[str, typing.Any], path: Path
) -> Schedule | None:
    values = reader.fields(entry, path, SCHEDULE)
    overrides_raw = (
        reader.items(entry, (*path, "overrides"), OVERRIDE) if "overrides" in entry else []
    )
    if not values.complete:
        return None
    zone = None
    if "timezone" in values:
        zone = _attempt(reader, (*path, "timezone"), lambda: resolve_zone(values["timezone"]))
        if zone is None:
            return None
    start = _attempt(reader, (*path, "start"), lambda: parse_instant(values["start"], zone))
    overrides: list[Override] = []
    for index, item in enumerate(overrides_raw):
        where = (*path, "overrides", f"[{index}]")
        if item.complete:
            made = _attempt(reader, where, functools.partial(_override, item, zone))
            if made is not None:
                overrides.append(made)
    if start is None or len(overrides) != len(overrides_raw):
        return None
    return typing.cast(
        "Schedule | None",
        _attempt(
            reader,
            path,
            lambda: Schedule(
                name=name,
                people=tuple(values["people"]),
                start=start,
                every=values["every"],
                overrides=tuple(overrides),
                zone=zone,
            ),
        ),
    )


def _override(item: Mapping[str, str], zone: datetime.tzinfo | None) -> Override:
    begin = parse_instant(item["from"], zone)
    end = parse_instant(item["until"], zone)
    return Override(begin.timestamp(), end.timestamp(), item["person"])


def _targets_by_path(
    route: Route, path: str, inherited: tuple[str, ...] = ()
) -> typing.Iterator[tuple[str, tuple[str, ...]]]:
    """Each route path with the targets its messages go to (a child inherits its parent's)."""
    targets = tuple(route.targets) if route.targets is not None else inherited
    yield path, targets
    for index, child in enumerate(route.routes):
        yield from _targets_by_path(child, f"{path}/{child.name or index}", targets)


def _check_policy_targets(
    reader: Reader,
    routes: Mapping[str, Route],
    used: Mapping[str, str],
    oncall: OnCall,
    target_kinds: Mapping[str, str],
) -> None:
    """A policy that DINGs needs an app target to DING through; one that waits for "read"
    needs an app-group target, whose messages DingTalk reports read status for."""
    for name, route in routes.items():
        for where, targets in _targets_by_path(route, name):
            policy = oncall.policies.get(used.get(where, ""))
            if policy is None:
                continue
            kinds = [target_kinds.get(t, "") for t in targets]
            dings = any(step.ding is not None for step in policy.steps)
            if dings and policy.via is None and not any(k.startswith("app-") for k in kinds):
                reader.problem(
                    _route_path(where),
                    f"route {where} follows policy {policy.name!r}, which DINGs, but none of its "
                    "targets is an app target (a DING goes through an app's robot)",
                    f'add via = "<app-group or app-users target>" to [policies.{policy.name}]',
                )
            if policy.wait_for == "read" and "app-group" not in kinds:
                log.warning(
                    "route %s follows policy %r, which waits for the message to be read, but "
                    "none of its targets is an app-group target: DingTalk reports read status "
                    "for app-robot group messages only, so it escalates as if nobody read it",
                    where,
                    policy.name,
                )
