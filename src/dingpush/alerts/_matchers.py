"""Alertmanager-style label matchers: ``severity="critical"``, ``team=~"db|infra"``, ``!=``, ``!~``.

They read and behave as Alertmanager's (``pkg/labels``): a label the alert lacks has the value
``""`` (so ``team!="db"`` matches an alert without ``team``, and ``team=""`` matches only
those), and a regular expression must match the *whole* value, as Alertmanager anchors it
(``^(?:…)$``): ``team=~"db"`` does not match ``db-replica``. Values may be quoted (OpenMetrics
escapes ``\\"``, ``\\\\``, ``\\n``) or bare. Regular expressions are Python's, which agree with
Go's RE2 for what matchers use (alternation, classes, repetition).

For generic JSON hooks a name may be a dotted path (``object_attributes.status="failed"``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dingpush import ConfigError

__all__ = ["MatchOp", "Matcher", "matches_all", "parse_matcher", "parse_matchers"]

MatchOp = typing.Literal["=", "!=", "=~", "!~"]
_OPS: tuple[MatchOp, ...] = ("=~", "!~", "!=", "=")  # two-character operators first
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\.[a-zA-Z0-9_:\-]+)*")
_MATCHER = re.compile(r"\s*(?P<name>[^\s=!~,{}\"]+)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>(?s:.*?))\s*")


def _unquote(raw: str, text: str) -> str:
    """The value of a matcher: OpenMetrics escapes inside quotes, bare text as it is."""
    if not raw.startswith('"'):
        if '"' in raw:
            raise ConfigError(f'matcher {text!r}: unescaped \'"\' in the value; quote it: name="…"')
        return raw
    out: list[str] = []
    position = 1
    while position < len(raw):
        char = raw[position]
        if char == '"':
            if position != len(raw) - 1:
                raise ConfigError(f"matcher {text!r}: escape '\"' inside a value as \\\"")
            return "".join(out)
        if char == "\\" and position + 1 < len(raw):
            following = raw[position + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(following, "\\" + following))
            position += 2
            continue
        out.append(char)
        position += 1
    raise ConfigError(f"matcher {text!r}: the value's closing '\"' is missing")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one label; ``Matcher.parse('team=~"db|infra"')``."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(
                f"matcher label {self.name!r} is not a label name: letters, digits, '_' and ':', "
                "not starting with a digit (dotted paths such as object.status for JSON hooks)"
            )
        if self.op not in _OPS:
            raise ConfigError(f"matcher operator {self.op!r}: use one of =, !=, =~, !~")
        if not isinstance(self.value, str):
            raise ConfigError(f"matcher {self.name}{self.op}: the value must be a string")
        if self.op in ("=~", "!~"):
            try:
                pattern = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise ConfigError(
                    f"matcher {self}: {exc.msg} at position {exc.pos} of the regular "
                    "expression; it must match the whole label value (as in Alertmanager)"
                ) from None
            object.__setattr__(self, "_regex", pattern)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Read ``name="value"``, ``name!=value``, ``name=~"re"`` or ``name!~"re"``."""
        return parse_matcher(text)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set satisfies this condition (a missing label is ``""``)."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Read one matcher; raise ``ConfigError`` saying what is wrong with it."""
    if isinstance(text, Matcher):
        return text
    if not isinstance(text, str):
        raise ConfigError(f"a matcher is a string such as 'severity=\"critical\"', got {text!r}")
    match = _MATCHER.fullmatch(text)
    if match is None:
        raise ConfigError(
            f'matcher {text!r} is not of the form name="value" (operators =, !=, =~, !~), '
            'e.g. severity="critical" or team=~"db|infra"'
        )
    value = _unquote(match["value"], text)
    return Matcher(match["name"], typing.cast(MatchOp, match["op"]), value)


def _split(text: str) -> list[str]:
    """Split ``a="x", b=~"y,z"`` at commas outside quotes (Alertmanager's rule)."""
    tokens: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if char == "," and not quoted:
            tokens.append("".join(current))
            current = []
            continue
        if char == '"' and not escaped:
            quoted = not quoted
        escaped = char == "\\" and not escaped
        current.append(char)
    tokens.append("".join(current))
    return [token for token in tokens if token.strip()]


def parse_matchers(text: str | Iterable[str | Matcher]) -> tuple[Matcher, ...]:
    """Read ``{a="x", b!~"y"}`` (braces optional), or a list of single matchers."""
    if isinstance(text, str):
        body = text.strip()
        body = body.removeprefix("{").removesuffix("}")
        return tuple(parse_matcher(token) for token in _split(body))
    return tuple(parse_matcher(item) if isinstance(item, str) else item for item in text)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher is satisfied (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
