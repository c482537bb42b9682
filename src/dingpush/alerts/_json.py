"""Strict reading of webhook JSON: exact types, no coercion by truthiness, errors with pointers.

Each reader takes the value and its JSON pointer (RFC 6901) and either returns the value as
the promised Python type or raises :class:`PayloadError` naming the pointer and the rule. A
``"false"`` is not a boolean, ``1`` is not a string, ``1.0`` is not an integer.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import typing
from collections.abc import Mapping, Sequence

from dingpush.lowlevel import MAX_JSON_DEPTH, lone_surrogate, too_deep

from ._errors import PayloadError

__all__ = ["Reader", "load_json", "pointer_join"]

T = typing.TypeVar("T")

# Go's zero time.Time, which Alertmanager sends as ``endsAt`` while an alert fires.
_ZERO_TIME_PREFIX = "0001-01-01T00:00:00"
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?P<frac>\.\d+)?(?P<zone>[Zz]|[+-]\d{2}:\d{2})"
)


def pointer_join(pointer: str, key: str | int) -> str:
    """``/alerts`` + ``0`` → ``/alerts/0``, escaping ``~`` and ``/`` as RFC 6901 says."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def load_json(body: bytes | str, *, source: str) -> object:
    """Decode a request body: UTF-8 JSON, no ``NaN``/``Infinity``, no key given twice."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
        deep = too_deep(text)  # the parser recurses: bound the nesting before parsing
        if deep is not None:
            raise PayloadError(
                f"{source} payload: the body nests JSON more than {MAX_JSON_DEPTH} levels deep "
                f"(at character {deep + 1})",
                pointer="",
                rule=f"at most {MAX_JSON_DEPTH} levels of nesting",
                source=source,
                status=400,
            )
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"{source} payload: the body is not UTF-8 (byte {exc.start}); send JSON in UTF-8",
            pointer="",
            rule="UTF-8 JSON",
            source=source,
            status=400,
        ) from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"{source} payload: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            pointer="",
            rule="JSON",
            source=source,
            status=400,
        ) from None
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(
            f"{source} payload: not acceptable JSON: {exc}",
            pointer="",
            rule="JSON",
            source=source,
            status=400,
        ) from None
    where = lone_surrogate(value, text)
    if where is not None:  # no UTF-8 writer (the outbox, DingTalk) takes one
        raise PayloadError(
            f"{source} payload: {where or 'the body'} holds a lone surrogate (an unpaired "
            "\\ud800-\\udfff escape), which is not Unicode text",
            pointer=where,
            rule="Unicode text",
            source=source,
            status=400,
        )
    return value


class Reader:
    """Typed access to decoded JSON for one sender, each failure naming pointer and rule."""

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, pointer: str, rule: str, value: object, hint: str = "") -> typing.NoReturn:
        where = pointer or "the body"
        got = _kind(value)
        shown = (
            f" ({value!r})"
            if isinstance(value, str | int | float) and len(repr(value)) < 60
            else ""
        )
        text = f"{self.source} payload: {where} must be {rule}, got {got}{shown}"
        raise PayloadError(
            f"{text}{'; ' + hint if hint else ''}", pointer=pointer, rule=rule, source=self.source
        )

    def mapping(self, value: object, pointer: str) -> Mapping[str, object]:
        if not isinstance(value, Mapping):
            self.fail(pointer, "an object", value)
        return typing.cast(Mapping[str, object], value)

    def array(self, value: object, pointer: str) -> Sequence[object]:
        if not isinstance(value, list | tuple):
            self.fail(pointer, "an array", value)
        return typing.cast(Sequence[object], value)

    def string(self, value: object, pointer: str) -> str:
        if not isinstance(value, str):
            self.fail(pointer, "a string", value)
        return value

    def optional_string(self, data: Mapping[str, object], key: str, pointer: str) -> str:
        """A string member that may be absent or ``null`` (read as ``""``)."""
        value = data.get(key)
        return "" if value is None else self.string(value, pointer_join(pointer, key))

    def choice(self, value: object, pointer: str, options: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in options:
            rule = "one of " + ", ".join(f'"{o}"' for o in options)
            self.fail(pointer, rule, value)
        return value

    def integer(self, value: object, pointer: str, *, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(pointer, "an integer", value)
        if minimum is not None and value < minimum:
            self.fail(pointer, f"an integer >= {minimum}", value)
        return value

    def number(self, value: object, pointer: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            self.fail(pointer, "a finite number", value)
        return float(value)

    def string_map(self, value: object, pointer: str) -> dict[str, str]:
        """An object of strings (labels, annotations); ``null`` reads as empty."""
        if value is None:
            return {}
        data = self.mapping(value, pointer)
        for key, item in data.items():
            if not isinstance(item, str):
                self.fail(pointer_join(pointer, key), "a string", item)
        return typing.cast(dict[str, str], dict(data))

    def number_map(self, value: object, pointer: str) -> dict[str, float] | None:
        """An object of finite numbers (Grafana's ``values``); ``null`` stays ``None``."""
        if value is None:
            return None
        data = self.mapping(value, pointer)
        return {key: self.number(item, pointer_join(pointer, key)) for key, item in data.items()}

    def timestamp(self, value: object, pointer: str) -> datetime.datetime | None:
        """An RFC 3339 time as Go writes it; Go's zero time (year 1) reads as ``None``."""
        if value is None or value == "":
            return None
        text = self.string(value, pointer)
        match = _RFC3339.fullmatch(text)
        if match is None:
            self.fail(pointer, "an RFC 3339 time such as 2024-05-01T12:00:00Z", value)
        if text.startswith(_ZERO_TIME_PREFIX):
            return None
        frac = match.group("frac") or ""
        # Go writes nanoseconds; Python keeps microseconds.
        normal = text[: match.start("frac")] if frac else text[: match.start("zone")]
        normal = normal.replace("t", "T").replace(" ", "T") + frac[:7]
        zone = match.group("zone")
        normal += "+00:00" if zone in ("Z", "z") else zone
        try:
            return datetime.datetime.fromisoformat(normal)
        except ValueError:
            self.fail(pointer, "a valid RFC 3339 time", value)
