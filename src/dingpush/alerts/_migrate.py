"""``dingpush migrate pwd``: prometheus-webhook-dingtalk's config.yml as dingpush TOML.

prometheus-webhook-dingtalk (v1/v2) serves ``POST /dingtalk/{target}/send`` for each target::

    targets:
      webhook1:
        url: https://oapi.dingtalk.com/robot/send?access_token=xxx
        secret: SEC000…                       # 加签
        mention: {all: true, mobiles: ['156…']}
        message: {title: '{{ template "legacy.title" . }}', text: '…'}

Each target becomes a robot target and a route of the same name (the relay serves the same
path, so Alertmanager switches by changing the host). Tokens and secrets go to environment
variables (``${WEBHOOK1_TOKEN}``), never into the TOML. Its Go templates cannot become Jinja2
mechanically: a target that uses the builtin ``default``/``legacy``/``ding.link`` templates gets
dingpush's builtin ``alertmanager`` template; a custom one is listed, with the template that
replaces it.
"""

from __future__ import annotations

import re
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from dingpush import ConfigError

from ._people import MOBILE

__all__ = ["Migration", "convert_pwd_config"]

#: Its builtin templates (template/default.tmpl), which dingpush's "alertmanager" replaces.
_BUILTIN_TEMPLATES = {
    "ding.link.title",
    "ding.link.content",
    "default.title",
    "default.content",
    "legacy.title",
    "legacy.content",
}
_TEMPLATE_CALL = re.compile(r'\s*\{\{-?\s*template\s+"(?P<name>[^"]+)"\s+\.\s*-?\}\}\s*')
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_]*$")
_TARGET_KEYS = {"url", "secret", "mention", "message"}
_TOP_KEYS = {
    "targets",
    "timeout",
    "no_builtin_template",
    "template",
    "templates",
    "default_message",
}


@dataclass(frozen=True, slots=True)
class Migration:
    """The converted configuration and what the user must know about it."""

    #: dingpush's TOML: ``[targets.NAME]`` and ``[routes.NAME]``, secrets as ``${VAR}``.
    toml: str
    #: The values of the variables the TOML refers to (tokens and secrets): keep them secret.
    env: Mapping[str, str] = field(default_factory=dict)
    #: What was not converted, or changed meaning, one sentence each.
    notes: tuple[str, ...] = ()
    #: Whether some target used a custom Go template (the builtin one replaces it).
    replaced_templates: bool = False


def _toml_string(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    out = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group(0)):04x}", out)
    return f'"{out}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _variable(name: str, what: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") + f"_{what}"


def _load(text: str, source: str) -> dict[str, typing.Any]:
    try:
        import yaml
    except ModuleNotFoundError:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "reading prometheus-webhook-dingtalk's YAML needs PyYAML: pip install 'dingpush[cli]'"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: not a prometheus-webhook-dingtalk configuration (expected a mapping "
            "with targets:)"
        )
    return data


def _template_name(value: object) -> str | None:
    """The builtin template a message field calls, or None for anything custom."""
    if not isinstance(value, str):
        return None
    match = _TEMPLATE_CALL.fullmatch(value)
    return match["name"] if match and match["name"] in _BUILTIN_TEMPLATES else None


class _Converter:
    def __init__(self, data: dict[str, typing.Any], source: str) -> None:
        self.data = data
        self.source = source
        self.lines = [
            f"# Converted from {source} (prometheus-webhook-dingtalk) by `dingpush migrate pwd`.",
            "# Tokens and secrets are read from the environment: see the variables below.",
            "",
        ]
        self.env: dict[str, str] = {}
        self.notes: list[str] = []
        self.replaced = False
        # Custom template files may redefine even the builtin names.
        self.files = [str(f) for f in self._files()]

    def _files(self) -> list[object]:
        files = list(self.data.get("templates") or [])
        if self.data.get("template"):
            files.append(self.data["template"])
        return files

    def run(self) -> Migration:
        for key in sorted(set(self.data) - _TOP_KEYS):
            self.notes.append(f"{key}: not a prometheus-webhook-dingtalk setting; ignored")
        if "timeout" in self.data:
            self.notes.append(
                "timeout: not converted; dingpush's clients wait 10 s for DingTalk and the "
                "relay retries from its outbox"
            )
        if self.files:
            self.notes.append(
                f"templates: {', '.join(self.files)} are Go templates, which dingpush cannot "
                "convert; the routes use dingpush's builtin alertmanager template instead"
            )
            self.replaced = True
        if self.data.get("no_builtin_template"):
            self.notes.append(
                "no_builtin_template: not needed; dingpush's builtins stay out of your way"
            )
        targets = self.data.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise ConfigError(f"{self.source}: no targets: to convert")
        default = self.data.get("default_message")
        for name, target in targets.items():
            self._target(str(name), target, default)
        return Migration(
            toml="\n".join(self.lines).rstrip() + "\n",
            env=self.env,
            notes=tuple(self.notes),
            replaced_templates=self.replaced,
        )

    def _target(self, name: str, target: object, default: object) -> None:
        where = f"targets.{name}"
        if not _NAME.match(name):
            raise ConfigError(f"{self.source}: {where}: {name!r} is not a valid target name")
        if not isinstance(target, dict):
            raise ConfigError(f"{self.source}: {where}: expected a mapping with url:")
        url = target.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{self.source}: {where}.url: the robot's webhook URL is missing")
        for key in sorted(set(target) - _TARGET_KEYS):
            self.notes.append(f"{where}.{key}: not a prometheus-webhook-dingtalk setting; ignored")
        self.lines += [f"[targets.{_toml_key(name)}]", 'kind = "robot"']
        self.lines.append(f"webhook = {_toml_string(self._webhook(name, url))}")
        secret = target.get("secret")
        if secret:
            variable = _variable(name, "SECRET")
            self.env[variable] = str(secret)
            self.lines.append(f'secret = "${{{variable}}}"')
        self.lines += ["", f"[routes.{_toml_key(name)}]"]
        self.lines.append(f"# prometheus-webhook-dingtalk's POST /dingtalk/{name}/send")
        self.lines.append(f"targets = {_toml_value([name])}")
        self.lines.append('template = "alertmanager"')
        self._mention(name, target.get("mention"))
        self._message(name, target.get("message"), default)
        self.lines.append("")

    def _webhook(self, name: str, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        token = next((v for k, v in query if k == "access_token"), None)
        if not token:
            variable = _variable(name, "WEBHOOK")
            self.env[variable] = url
            return f"${{{variable}}}"
        variable = _variable(name, "TOKEN")
        self.env[variable] = token
        rest = [(k, v) for k, v in query if k != "access_token"]
        tail = ("&" + urllib.parse.urlencode(rest)) if rest else ""
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return f"{base}?access_token=${{{variable}}}{tail}"

    def _mention(self, name: str, mention: object) -> None:
        if not mention:
            return
        if not isinstance(mention, dict):
            raise ConfigError(f"{self.source}: targets.{name}.mention: expected all:/mobiles:")
        mobiles = [str(m) for m in mention.get("mobiles") or []]
        if mobiles:
            self.lines.append(f"mention = {_toml_value(mobiles)}")
            odd = [m for m in mobiles if not MOBILE.fullmatch(m)]
            if odd:
                self.notes.append(
                    f"targets.{name}.mention.mobiles: {', '.join(odd)} "
                    f"{'is not a mobile number' if len(odd) == 1 else 'are not mobile numbers'}"
                    " (write 13800000000, or +852-98765432); fix them in [routes."
                    f"{name}], or list people in [people] and mention their names"
                )
        if mention.get("all") is True:
            self.lines.append("mention_all = true")

    def _message(self, name: str, message: object, default: object) -> None:
        chosen = message if isinstance(message, dict) else default
        origin = f"targets.{name}.message" if isinstance(message, dict) else "default_message"
        if not isinstance(chosen, dict):
            return
        fields = [key for key in ("title", "text") if key in chosen]
        called = {key: _template_name(chosen[key]) for key in fields}
        custom = [key for key in fields if called[key] is None or self.files]
        if custom:
            self.replaced = True
            self.notes.append(
                f"{origin}.{' and '.join(custom)}: a custom Go template, which dingpush cannot "
                f"convert; route {name} uses the builtin alertmanager template instead (write "
                f'a Jinja2 one in [templates.NAME] and set template = "NAME" in '
                f"[routes.{name}] to change it)"
            )
        elif any((called[key] or "").startswith("legacy") for key in fields):
            self.notes.append(
                f"{origin}: the legacy layout becomes dingpush's builtin alertmanager template "
                "(the labels that differ, the annotations, links)"
            )


def convert_pwd_config(text: str, *, source: str = "config.yml") -> Migration:
    """Convert prometheus-webhook-dingtalk's YAML configuration into dingpush's TOML.

    Raises:
        ConfigError: the text is not YAML, or not such a configuration (no targets, a target
            without url).
    """
    return _Converter(_load(text, source), source).run()
