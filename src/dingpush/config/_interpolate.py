"""``${VAR}`` references in configuration values, so that secrets stay out of files."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["BadReference", "MissingVariable", "interpolate"]

# ${NAME} or ${NAME:-fallback}; $$ is a literal dollar sign.
_REFERENCE = re.compile(r"\$\$|\$\{(?P<body>[^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MissingVariable(LookupError):
    """A value refers to an environment variable that is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class BadReference(ValueError):
    """A value contains a malformed ``${…}`` reference."""


def interpolate(value: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Replace ``${VAR}`` (and ``${VAR:-fallback}``) in ``value`` from ``env``.

    Returns the new text and the names of the variables it read. ``$$`` stands for ``$``; any
    other ``$`` is kept as written. An unset variable without a fallback raises
    :class:`MissingVariable`; ``${VAR:-fallback}`` uses the fallback when ``VAR`` is unset or
    empty, as the shell does.
    """
    if "$" not in value:
        return value, ()
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group() == "$$":
            return "$"
        body = match.group("body")
        if body is None:
            raise BadReference(f"'${{' without a closing '}}' in {value!r}")
        name, separator, fallback = body.partition(":-")
        if not _NAME.fullmatch(name):
            raise BadReference(
                f"'${{{body}}}' is not a variable reference; write ${{NAME}} with letters, "
                "digits and '_'"
            )
        used.append(name)
        current = env.get(name)
        if separator:
            return current if current else fallback
        if current is None:
            raise MissingVariable(name)
        return current

    return _REFERENCE.sub(replace, value), tuple(dict.fromkeys(used))
