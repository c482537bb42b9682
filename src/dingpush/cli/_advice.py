"""An error's fix in command-line terms.

The library's messages name a fix the Python way (``pass keyword='…'``, ``raise timeout=``)
and carry it as data in ``exc.advice``: the setting and the exact phrase that names it. The CLI
replaces that phrase with the option, environment variable or file key the user has in hand,
at the file and line the setting came from (``keyword = "…" at dingpush.toml:12``).
"""

from __future__ import annotations

import dataclasses
import typing

if typing.TYPE_CHECKING:
    from collections.abc import Collection

    from dingpush import Advice, DingPushError
    from dingpush.config import Config, Origin, Target

#: Settings the command line sets with an option or a variable of its own, whatever the target.
_OPTIONS: dict[str, str] = {
    "timeout": "raise --timeout SECONDS",
    "proxy": "HTTPS_PROXY",
    "split": "use --split",
    "at": "drop --at and --at-all",
    "mention_all": "use --at-all",
    "orientation": "drop --horizontal",
}

#: The environment variable of each target setting, for a target that has no file.
_VARIABLES: dict[str, str] = {
    "keyword": "DINGPUSH_KEYWORD",
    "secret": "DINGPUSH_SECRET",
    "webhook": "DINGPUSH_WEBHOOK",
    "app_key": "DINGPUSH_APP_KEY",
    "app_secret": "DINGPUSH_APP_SECRET",
}


#: The target settings ``send`` also takes as an option.
_SEND_OPTIONS: dict[str, str] = {"keyword": "--keyword"}


def cli_message(
    exc: DingPushError,
    target: Target | None,
    config: Config | None,
    *,
    given: Collection[str] = (),
) -> str:
    """``str(exc)`` with its Python-worded fix said in command-line terms; ``given`` names
    the settings the command line gave as options (``keyword`` for ``--keyword``)."""
    text = str(exc)
    for advice in _advice_of(exc):
        if not advice.phrase:
            continue
        if advice.setting in given:
            words = f"pass {_SEND_OPTIONS[advice.setting]} WORD"
        else:
            words = cli_words(advice, target, config)
        for phrase in (advice.phrase, advice.phrase[:1].upper() + advice.phrase[1:]):
            if phrase in text:
                said = words[:1].upper() + words[1:] if phrase[:1].isupper() else words
                text = text.replace(phrase, said)
    return text


def _advice_of(exc: DingPushError) -> list[Advice]:
    """The advice of ``exc`` and of the errors its message quotes (a split message's failed
    part, a pool's members)."""
    from dingpush import PartialDelivery, PoolExhausted

    errors = [exc]
    if isinstance(exc, PartialDelivery):
        errors.append(exc.error)
    if isinstance(exc, PoolExhausted):
        errors.extend(exc.errors.values())
    return [e.advice for e in errors if e.advice is not None]


def cli_words(advice: Advice, target: Target | None, config: Config | None) -> str:
    """The words that replace ``advice.phrase`` on the command line."""
    if advice.setting in _OPTIONS:
        return _OPTIONS[advice.setting]
    if advice.setting == "max_wait":
        return "Pass a larger --max-wait SECONDS"
    if advice.setting == "msg_uuid":
        return f"with --msg-uuid {advice.value}"
    return where(advice, target, config)


def where(advice: Advice, target: Target | None, config: Config | None) -> str:
    """How to set a target's setting: at its file line, in its variable, or in the table."""
    variable = _VARIABLES.get(advice.setting, advice.setting.upper())
    members = getattr(target, "members", None)
    if members and advice.setting in ("keyword", "secret"):
        names = ", ".join(member.name for member in members)
        return f'set {advice.setting} = "{advice.value}" in the robots of the pool ({names})'
    key, table = _config_key(advice.setting, target)
    origin = _origin(config, f"{table}.{key}") if key else None
    if origin is not None and origin.kind == "file":
        return f'set {key} = "{advice.value}" at {origin}'
    if origin is not None and origin.kind == "environment" and origin.variables:
        variable = origin.variables[0]
    elif key:
        # Not set: add it to the table that defines the target, when a file does.
        anchor = _table_origin(config, table)
        if anchor is not None:
            line = dataclasses.replace(anchor, variables=(), note="")  # the line, not its ${VAR}
            return f'add {key} = "{advice.value}" to [{table}] ({line})'
    option = _SEND_OPTIONS.get(advice.setting)
    if option is not None and origin is None:  # nothing set it: the option is the quickest
        return f"pass {option} WORD or set {variable}='{advice.value}'"
    return f"set {variable}='{advice.value}'"


def origin_line(exc: DingPushError, target: Target | None, config: Config | None) -> str:
    """For a fix the message cannot phrase (a wrong webhook or AppSecret): where it came from."""
    advice = exc.advice
    if advice is None or advice.phrase or advice.setting not in _VARIABLES:
        return ""
    key, table = _config_key(advice.setting, target)
    origin = _origin(config, f"{table}.{key}") if key else None
    name = advice.setting.replace("_", " ").replace("app ", "app's ")
    if origin is None:
        if target is not None and advice.setting == "webhook" and target.name != "default":
            return f"the {name} is the --to URL given: fix it there"
        return f"check the {name} in ${_VARIABLES[advice.setting]}"
    if origin.kind == "file":
        return f"the {name} comes from {key} at {origin}: fix it there"
    return f"the {name} comes from {origin}: fix it there"


def _config_key(setting: str, target: Target | None) -> tuple[str, str]:
    """The configuration key and table of ``setting`` for ``target`` (``("", "")`` if none)."""
    if target is None:
        return "", ""
    if setting in ("app_key", "app_secret"):
        app = getattr(target, "app", None)
        return (setting, f"apps.{app.name}") if app is not None else ("", "")
    if target.kind != "robot":
        return "", ""
    return setting, f"targets.{target.name}"


def _origin(config: Config | None, key: str) -> Origin | None:
    if config is None:
        return None
    return config.origins.get(key)


def _table_origin(config: Config | None, table: str) -> Origin | None:
    """The origin of any key of ``table`` that came from a file: where the table is."""
    if config is None:
        return None
    for key, origin in config.origins.items():
        if key.startswith(table + ".") and origin.kind == "file":
            return origin
    return None
