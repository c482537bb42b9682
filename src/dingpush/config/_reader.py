"""The one settings reader: a table is a declaration of typed fields, read with every problem.

Every table of the configuration file, ``[targets.NAME]`` and ``[apps.NAME]`` here,
``[relay]`` in the relay, and the tables later parts add, is read through a :class:`Reader`
from a :class:`Table` of :class:`Field` declarations::

    ROBOT = Table("a robot target", (
        Field("webhook", TEXT, required=True),
        Field("secret", NONEMPTY, rule=starts_with_sec, fix="copy the whole secret …"),
        Field("rate", RATE),
        Field("cooldown", DURATION),
    ))
    values = reader.fields(entry, ("targets", "ops"), ROBOT)

``values`` holds the fields that read well (absent ones at their declared default) and says
which did not. The reader has already recorded, with the file, the line, the key and the fix:
an unknown key (with "did you mean"), a missing required key, a value of the wrong type (types
are strict: the string ``"true"`` where a boolean goes is a problem, never coerced), a broken
rule, a malformed ``${…}``. It records each value's :class:`Origin` (file, line, the variables
it read). A value that refers to an unset ``${VAR}`` is *unresolved*: reading goes on, so the
rest of the table is still checked, and :meth:`Reader.unit` then sets the whole named thing
aside (the CLI's policy) or reports the variable as a problem (``unset="problem"``, the relay's).
"""

from __future__ import annotations

import functools
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dingpush import Rate, parse_duration, parse_size

from ._interpolate import BadReference, MissingVariable, interpolate
from ._model import Origin
from ._problems import ConfigFileError, Problem, did_you_mean

if typing.TYPE_CHECKING:
    from ._source import ConfigSource, KeyPath


def dotted(path: KeyPath) -> str:
    """A key path as problems show it: ``targets.ops.secret``, ``routes[1].match``."""
    return "".join(p if p.startswith("[") else "." + p for p in path).lstrip(".")


__all__ = [
    "BOOLEAN",
    "DURATION",
    "HTTP_URL",
    "INTEGER",
    "NONEMPTY",
    "PORT",
    "RATE",
    "SIZE",
    "STRINGS",
    "TEXT",
    "Field",
    "Invalid",
    "Kind",
    "Reader",
    "Table",
    "Unusable",
    "Values",
    "type_name",
]

T = typing.TypeVar("T")
UnsetPolicy = typing.Literal["set aside", "problem"]


class Invalid(ValueError):
    """A value broke its type or its rule; raised by a :class:`Kind` or a rule."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


class Unusable(Exception):
    """Raised while building a named thing that cannot be built; its problems are recorded."""


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: ``Field.default`` when a missing key simply stays out of the values.
NO_DEFAULT: typing.Any = _Marker("NO_DEFAULT")
_UNRESOLVED = _Marker("UNRESOLVED")
_BROKEN = _Marker("BROKEN")
_ABSENT = _Marker("ABSENT")


def type_name(value: object) -> str:
    """``"a string"``, ``"an integer"``…: a TOML value's type, as problems name it."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a table" if isinstance(value, dict) else "a list"
    )


def _shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut short: a 400-digit number is named, not printed."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- kinds of value ----------------------------------------------------------------------------


class Kind(typing.Generic[T]):
    """How a TOML value becomes a setting: subclasses implement :meth:`convert`.

    ``value`` has had its ``${VAR}`` references replaced; ``from_env`` says that it is the text
    of such a reference, which is how an environment variable gives a number or a boolean.
    """

    #: What the value is, for documentation: "a duration".
    noun: str = "a value"

    def convert(self, value: object, field: Field[T], from_env: bool) -> T:
        raise NotImplementedError


class _Text(Kind[str]):
    noun = "a string"

    def __init__(self, *, nonempty: bool) -> None:
        self.nonempty = nonempty

    def convert(self, value: object, field: Field[str], from_env: bool) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, not {type_name(value)}", 'quote it: "…"')
        if self.nonempty and not value.strip():
            raise Invalid("is empty", f"give a value or remove {field.name}")
        return value


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0", "")


class _Boolean(Kind[bool]):
    noun = "true or false"

    def convert(self, value: object, field: Field[bool], from_env: bool) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and from_env and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            raise Invalid(
                f"is the string {value!r}, not true or false",
                f"write {field.name} = {value.strip().lower()}, without quotes",
            )
        raise Invalid(f"must be true or false, not {value!r}", f"write {field.name} = true")


class _Integer(Kind[int]):
    noun = "an integer"

    def convert(self, value: object, field: Field[int], from_env: bool) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            if from_env:
                return int(value.strip())
            raise Invalid(
                f"is the string {value!r}, not a number",
                f"write {field.name} = {value.strip()}, without quotes",
            )
        raise Invalid(
            f"must be an integer, not {value!r}", f"write {field.name} = {field.example or 1}"
        )


class _Port(Kind[int]):
    noun = "a TCP port (0-65535)"

    def convert(self, value: object, field: Field[int], from_env: bool) -> int:
        if isinstance(value, str) and from_env and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            return value
        raise Invalid(f"{value!r} is not a port number", f"write e.g. {field.name} = 8080")


class _Duration(Kind[float]):
    noun = 'a duration: seconds (600) or "500ms", "10s", "10m", "2h", "1d"'

    def convert(self, value: object, field: Field[float], from_env: bool) -> float:
        try:
            return parse_duration(value)  # type: ignore[arg-type]
        except ValueError as exc:
            what = "is longer than 100 years" if "100 years" in str(exc) else "is not a duration"
            raise Invalid(f"{_shown(value)} {what}", 'write seconds (600) or "10m"') from None


class _Size(Kind[int]):
    noun = 'a size: bytes (1048576) or "512KiB", "10MB", "1MiB"'

    def convert(self, value: object, field: Field[int], from_env: bool) -> int:
        try:
            return parse_size(value)  # type: ignore[arg-type]
        except ValueError as exc:
            what = "is larger than 2**53 bytes" if "2**53" in str(exc) else "is not a size"
            raise Invalid(f"{_shown(value)} {what}", 'write bytes (1048576) or "1MiB"') from None


class _Rate(Kind[Rate]):
    noun = 'a rate: COUNT/PERIOD, e.g. "20/60s", "20/min", "5000/1m"'

    def convert(self, value: object, field: Field[Rate], from_env: bool) -> Rate:
        try:
            return Rate.parse(value)  # type: ignore[arg-type]
        except ValueError:
            raise Invalid(
                f"{value!r} is not a rate", 'write COUNT/PERIOD, e.g. "20/60s" or "20/1m"'
            ) from None


class _Strings(Kind[tuple[str, ...]]):
    """A list of strings; numbers are taken as text (ids are often written as numbers)."""

    noun = "a list of strings"

    def convert(
        self, value: object, field: Field[tuple[str, ...]], from_env: bool
    ) -> tuple[str, ...]:
        example = f'write {field.name} = ["a", "b"]'
        if not isinstance(value, list):
            raise Invalid(f"must be a list of strings, not {type_name(value)}", example)
        items: list[str] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                raise Invalid(f"must list strings, not {type_name(item)}", example)
            items.append(item)
        if field.required and not any(i.strip() for i in items):
            raise Invalid("is empty", example)
        if any(not i.strip() for i in items):
            raise Invalid("contains an empty entry", "remove the empty string")
        return tuple(items)


class _HttpUrl(Kind[str]):
    noun = "an http(s) URL"

    def convert(self, value: object, field: Field[str], from_env: bool) -> str:
        text = TEXT.convert(value, field, from_env)
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Invalid(f"{text!r} is not an http(s) URL", "write e.g. https://api.dingtalk.com")
        return text.rstrip("/")


TEXT: Kind[str] = _Text(nonempty=False)
#: Text that must not be blank.
NONEMPTY: Kind[str] = _Text(nonempty=True)
BOOLEAN: Kind[bool] = _Boolean()
INTEGER: Kind[int] = _Integer()
PORT: Kind[int] = _Port()
DURATION: Kind[float] = _Duration()
SIZE: Kind[int] = _Size()
RATE: Kind[Rate] = _Rate()
#: A list of strings; ``required`` means at least one.
STRINGS: Kind[tuple[str, ...]] = _Strings()
HTTP_URL: Kind[str] = _HttpUrl()


# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field(typing.Generic[T]):
    """One key of a table: its name, kind, default, rule and the fix when the rule breaks.

    Args:
        name: The key, as written in the file.
        kind: How its value is read (``TEXT``, ``DURATION``, ``RATE``…; strict).
        required: A missing key is a problem ("missing. Fix: add name = … to [table]").
        default: The value when the key is absent (not checked); ``NO_DEFAULT`` leaves it out.
        rule: Checks a value of the right type: returns what is wrong, or ``None``.
        fix: The fix when ``rule`` fails.
        example: The value shown by a type problem's fix (``agent_id = 123456``).
        help: What the key does, for documentation.
    """

    name: str
    kind: Kind[T]
    required: bool = False
    default: typing.Any = NO_DEFAULT
    rule: Callable[[T], str | None] | None = None
    fix: str = ""
    example: str = ""
    help: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """The declaration of one table: what it is called in problems, and its fields.

    ``extra`` lists keys the table allows that are read by hand (sub-tables such as
    ``[relay.targets]``); ``unknown`` is the problem an unknown key gets (by default
    ``"unknown key for WHAT"``).
    """

    what: str
    fields: tuple[Field[typing.Any], ...]
    extra: tuple[str, ...] = ()
    unknown: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return (*(f.name for f in self.fields), *self.extra)


class Values(dict[str, typing.Any]):
    """The fields of one table that read well, absent ones at their default.

    ``broken`` names the fields with a problem (already recorded), ``unresolved`` those that
    refer to an unset variable.
    """

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()
        self.unresolved: set[str] = set()

    @property
    def complete(self) -> bool:
        """Whether every field read well (nothing broken, nothing unresolved)."""
        return not self.broken and not self.unresolved

    def require(self) -> None:
        """Raise :class:`Unusable` unless every field read well."""
        if not self.complete:
            raise Unusable


# -- the reader --------------------------------------------------------------------------------


class Reader:
    """Reads the tables of one file; collects problems, origins and what is set aside.

    Args:
        source: The parsed file.
        env: Where ``${VAR}`` references are looked up.
        unset: What an unset variable means: ``"set aside"`` (the named thing that uses it is
            kept aside as unresolved, the CLI's choice) or ``"problem"`` (the relay's).
    """

    def __init__(
        self, source: ConfigSource, env: Mapping[str, str], *, unset: UnsetPolicy = "set aside"
    ) -> None:
        self.source = source
        self.env = env
        self.unset_policy = unset
        self.problems: list[Problem] = []
        self.origins: dict[str, Origin] = {}
        #: The named things set aside for an unset variable (``targets.ops``), with its problems.
        self.unresolved: dict[str, ConfigFileError] = {}
        #: The named things that have problems of their own.
        self.broken: set[str] = set()
        self._unset: list[Problem] = []

    # -- reporting ---------------------------------------------------------------------------

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path`` (or of its nearest enclosing table)."""
        return self.source.line_of(path)

    def problem(self, path: KeyPath, message: str, fix: str = "") -> None:
        # A value's own error may already name its key ("people.bob: give user_id…"), as it
        # must when raised outside a file; the problem names it once.
        message = message.removeprefix(f"{dotted(path)}: ")
        # … or a key within it ("people.bob.user_id: …"): the problem is that key's.
        head, colon, rest = message.partition(": ")
        inner = head.removeprefix(f"{dotted(path)}.")
        if colon and inner != head and all(p.isidentifier() for p in inner.split(".")):
            path, message = (*path, *inner.split(".")), rest
        self.problems.append(Problem(self.source.path, self.line(path), dotted(path), message, fix))

    def fail(self, path: KeyPath, message: str, fix: str = "") -> typing.NoReturn:
        """Record a problem and give up building the current thing."""
        self.problem(path, message, fix)
        raise Unusable

    def finish(self) -> None:
        """Raise :class:`ConfigFileError` with every problem, in line order, if there are any."""
        if self.problems:
            raise ConfigFileError(self.problems)

    def record_origin(self, path: KeyPath, variables: tuple[str, ...] = ()) -> None:
        line = self.source.locator.exact(path) or self.line(path)
        self.origins[dotted(path)] = Origin("file", self.source.path, line, variables)

    # -- named things ------------------------------------------------------------------------

    def unit(self, key: str, build: Callable[[], T]) -> T | None:
        """Build one named thing (``targets.ops``); ``None`` when it cannot be built.

        Its problems stay recorded (and ``key`` joins :attr:`broken`); without problems, an
        unset variable sets it aside in :attr:`unresolved` with the problem that names it.
        """
        outer, self._unset = self._unset, []
        mark = len(self.problems)
        try:
            value: T | None = build()
        except Unusable:
            value = None
        unset, self._unset = self._unset, outer
        if len(self.problems) > mark:
            self.broken.add(key)
            return None
        if unset:
            self.unresolved[key] = ConfigFileError(unset)
            return None
        return value

    def set_aside(self, problems: Sequence[Problem]) -> None:
        """Add another thing's unset variables to the current one (a target's app's)."""
        self._unset.extend(problems)

    def each(
        self,
        table: Mapping[str, typing.Any],
        section: KeyPath,
        build: Callable[[str, typing.Any], T],
        *,
        valid_name: Callable[[str], bool] | None = None,
    ) -> dict[str, T]:
        """Build every entry of a table of named things (``[targets.NAME]``) as a unit."""
        built: dict[str, T] = {}
        for name, entry in table.items():
            if valid_name is not None and not valid_name(name):
                self.problem(
                    (*section, name),
                    "is not a usable name",
                    "use letters, digits, '-', '_' and '.', starting with a letter or digit",
                )
                continue
            value = self.unit(dotted((*section, name)), functools.partial(build, name, entry))
            if value is not None:
                built[name] = value
        return built

    # -- values ------------------------------------------------------------------------------

    def table(self, data: Mapping[str, typing.Any], path: KeyPath) -> dict[str, typing.Any]:
        """The sub-table ``path[-1]`` of ``data`` (empty when absent); a problem if not a table."""
        value = data.get(path[-1], {})
        if not isinstance(value, dict):
            self.problem(
                path, f"must be a table, not {type_name(value)}", f"write [{dotted(path)}]"
            )
            return {}
        return value

    def items(self, data: Mapping[str, typing.Any], path: KeyPath, spec: Table) -> list[Values]:
        """Read an array of tables (``[[routes]]``): the n-th is found as ``routes[n]``."""
        value = data.get(path[-1], [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(
                path,
                f"must be an array of tables, not {type_name(value)}",
                f"write each one as a [[{dotted(path)}]] table",
            )
            return []
        return [self.fields(entry, (*path, f"[{i}]"), spec) for i, entry in enumerate(value)]

    def known(self, table: Mapping[str, typing.Any], path: KeyPath, spec: Table) -> None:
        """A problem for each key of ``table`` that ``spec`` does not declare."""
        allowed = spec.keys
        for key in table:
            if key not in allowed:
                self.problem(
                    (*path, key),
                    (spec.unknown or f"unknown key for {spec.what}") + did_you_mean(key, allowed),
                    f"use one of {', '.join(allowed)}",
                )

    def fields(
        self,
        table: Mapping[str, typing.Any],
        path: KeyPath,
        spec: Table,
        *,
        skip: tuple[str, ...] = (),
    ) -> Values:
        """Read every declared field of ``table`` (at ``path``), and refuse unknown keys."""
        self.known(table, path, spec)
        values = Values()
        for field in spec.fields:
            if field.name in skip:
                continue
            value = self.value(table, (*path, field.name), field)
            if value is _UNRESOLVED:
                values.unresolved.add(field.name)
            elif value is _BROKEN:
                values.broken.add(field.name)
            elif value is not _ABSENT:
                values[field.name] = value
        return values

    def value(self, table: Mapping[str, typing.Any], path: KeyPath, field: Field[T]) -> typing.Any:
        """One field's value, or a marker: absent (no default), broken or unresolved."""
        raw = table.get(field.name)
        if raw is None:
            if field.required:
                self.problem(path, "missing", f"add {field.name} = … to [{dotted(path[:-1])}]")
                return _BROKEN
            return _ABSENT if field.default is NO_DEFAULT else field.default
        expanded = self.expand(raw, path)
        if expanded is _UNRESOLVED or expanded is _BROKEN:
            return expanded
        value, variables = expanded
        try:
            converted = field.kind.convert(value, field, bool(variables))
            broken = field.rule(converted) if field.rule is not None else None
        except Invalid as exc:
            self.problem(path, exc.message, exc.fix)
            return _BROKEN
        if broken is not None:
            self.problem(path, broken, field.fix)
            return _BROKEN
        self.record_origin(path, variables)
        return converted

    def expand(self, raw: object, path: KeyPath) -> typing.Any:
        """``(value, variables)`` with ``${VAR}`` replaced in strings and lists of strings."""
        if isinstance(raw, str):
            return self._expand_text(raw, path)
        if isinstance(raw, list):
            items: list[object] = []
            used: list[str] = []
            for item in raw:
                if not isinstance(item, str):
                    items.append(item)
                    continue
                expanded = self._expand_text(item, path)
                if expanded is _UNRESOLVED or expanded is _BROKEN:
                    return expanded
                items.append(expanded[0])
                used.extend(expanded[1])
            return items, tuple(dict.fromkeys(used))
        return raw, ()

    def text(self, raw: str, path: KeyPath) -> str | None:
        """``raw`` with its ``${VAR}``s replaced, or ``None`` (recorded) when it cannot be."""
        expanded = self._expand_text(raw, path)
        if expanded is _UNRESOLVED or expanded is _BROKEN:
            return None
        return typing.cast("str", expanded[0])

    def _expand_text(self, raw: str, path: KeyPath) -> typing.Any:
        try:
            return interpolate(raw, self.env)
        except MissingVariable as missing:
            problem = Problem(
                self.source.path,
                self.line(path),
                dotted(path),
                f"refers to ${{{missing.name}}}, which is not set",
                f"export {missing.name}=… in the environment that runs dingpush, or write "
                f"${{{missing.name}:-fallback}}",
            )
            if self.unset_policy == "problem":
                self.problems.append(problem)
                return _BROKEN
            self._unset.append(problem)
            return _UNRESOLVED
        except BadReference as exc:
            self.problem(path, str(exc), "write ${NAME}, ${NAME:-fallback}, or $$ for a literal $")
            return _BROKEN
