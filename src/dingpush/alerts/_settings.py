"""The alert part of the configuration: routes, templates and people, as frozen dataclasses.

The TOML shapes (read by dingpush's one settings reader, not here)::

    [people.alice]
    user_id = "manager4220"
    mobile = "13800000000"

    [templates.db]
    file = "templates/db.md.j2"          # or source = '''…'''

    [routes.ops]                         # POST /alertmanager/ops, /grafana/ops, /hooks/ops
    targets = ["ops-robot"]              # the default route: what no child route takes
    timezone = "Asia/Shanghai"

    [[routes.ops.routes]]
    name = "critical"
    match = ['severity="critical"']
    targets = ["oncall"]
    mention = ["alice"]
    continue = true
    repeat_window = "4h"                 # the reader turns durations into seconds
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dingpush import ConfigError

from ._people import MOBILE, People, Person
from ._routes import Route
from ._templates import BUILTIN_TEMPLATES, Templates, TemplateSpec

__all__ = ["MENTIONING_TARGET_KINDS", "AlertSettings", "CompiledAlerts"]

#: Target kinds whose messages can @-mention: webhook robots (alone or pooled). App robots and
#: work notifications cannot (protocol §3: no @ through the group OpenAPI).
MENTIONING_TARGET_KINDS = frozenset({"robot", "pool"})


@dataclass(frozen=True, slots=True)
class CompiledAlerts:
    """Settings ready to serve: templates compiled, the directory built."""

    routes: Mapping[str, Route]
    templates: Templates
    people: People


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """``[routes.NAME]``, ``[templates.NAME]`` and ``[people.NAME]`` of the configuration.

    A route table's key is the name in the receivers' paths; a template's and a person's key is
    their name (the ``name`` field, when left empty, takes it).
    """

    routes: Mapping[str, Route] = field(default_factory=dict)
    templates: Mapping[str, TemplateSpec] = field(default_factory=dict)
    people: Mapping[str, Person] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", _named(self.routes, "routes"))
        object.__setattr__(self, "templates", _named(self.templates, "templates"))
        object.__setattr__(self, "people", _named(self.people, "people"))
        for name, route in self.routes.items():
            if route.matchers:
                raise ConfigError(
                    f"routes.{name}.match: the top route of a table catches every alert and "
                    "takes no matchers; put matchers on its child routes ([[routes."
                    f"{name}.routes]])"
                )

    def check(self, targets: Mapping[str, str]) -> list[str]:
        """Problems with the routes given the configured targets (name → kind): unknown targets,
        templates or people, and mentions towards targets that cannot mention."""
        problems: list[str] = []
        templates = {*BUILTIN_TEMPLATES.values(), *self.templates}
        for table, root in self.routes.items():
            for path, route in root.walk(table):
                where = f"routes.{path.replace('/', '.routes.')}"
                for target in route.targets or ():
                    if target not in targets:
                        known = ", ".join(sorted(targets)) or "none are configured"
                        problems.append(
                            f"{where}.targets: no target named {target!r} (targets: {known})"
                        )
                if route.template is not None and route.template not in templates:
                    problems.append(
                        f"{where}.template: no template named {route.template!r} (builtin: "
                        f"{', '.join(BUILTIN_TEMPLATES.values())}; configured: "
                        f"{', '.join(self.templates) or 'none'})"
                    )
                for entry in route.mention or ():
                    if entry not in self.people and not MOBILE.fullmatch(entry.removeprefix("@")):
                        problems.append(
                            f"{where}.mention: {entry!r} is not in [people] nor a mobile number"
                        )
                mentions = bool(route.mention or route.mention_all or route.allow_mention_all)
                for target in route.targets or ():
                    kind = targets.get(target)
                    if mentions and kind is not None and kind not in MENTIONING_TARGET_KINDS:
                        problems.append(
                            f"{where}: target {target!r} is a {kind} target, which cannot "
                            "@-mention people (DingTalk has no @ outside webhook robots); "
                            "mention through a robot target, or drop the mentions"
                        )
            if not root.targets:
                problems.append(
                    f"routes.{table}.targets: the top route needs targets (what no child route "
                    "takes goes there)"
                )
        return problems

    def compile(self, base_dir: Path | str | None = None) -> CompiledAlerts:
        """Compile the templates (a ``TemplateError`` names file, line and fix) and the people."""
        return CompiledAlerts(
            routes=self.routes,
            templates=Templates(self.templates.values(), base_dir=base_dir),
            people=People(self.people.values()),
        )


def _named(items: Mapping[str, object], section: str) -> dict[str, object]:
    import dataclasses

    out: dict[str, object] = {}
    for key, item in dict(items).items():
        name = getattr(item, "name", None)
        if name in ("", None):
            item = dataclasses.replace(item, name=key)  # type: ignore[type-var]
        elif name != key:
            raise ConfigError(
                f"{section}.{key}: its name is {name!r}; leave name out or make it {key!r}"
            )
        out[key] = item
    return out
