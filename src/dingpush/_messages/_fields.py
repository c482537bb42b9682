"""Reading and checking the fields of messages: the rules every model shares, and
``JSONObject``, the strict reader of their JSON (``parse_message`` reads through it).

A field read from JSON must have its JSON type: nothing is converted by truthiness (``"false"``
is not ``false``, a lone string is not a list). A violation is an :class:`InvalidMessage` with
the field's JSON ``pointer`` and the ``rule`` it breaks; the fields nobody read are
:class:`UnknownField`s.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from dingpush._errors import InvalidMessage

__all__ = [
    "JSONObject",
    "UnknownField",
    "field_name",
    "require_text",
    "require_unicode",
    "require_url",
]

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
# A lone surrogate is not Unicode text: json.loads makes one of "\ud800", UTF-8 cannot carry it.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def require_text(value: object, field: str, pointer: str | None = None) -> None:
    """Refuse anything but a string that is not blank (DingTalk requires the field)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessage(
            f"{field}: empty, but DingTalk requires it (protocol §1.3)",
            field=field,
            rule="required",
            pointer=pointer,
        )
    require_unicode(value, field, pointer)


def require_unicode(value: str, field: str, pointer: str | None = None) -> None:
    """Refuse a string that UTF-8 cannot carry (a lone surrogate)."""
    found = _SURROGATE_RE.search(value)
    if found is not None:
        raise InvalidMessage(
            f"{field}: character {found.start() + 1} is a lone surrogate "
            f"(\\u{ord(found.group()):04x}), which is not Unicode text and cannot be sent as "
            "UTF-8; a character outside the BMP needs both halves of its surrogate pair",
            field=field,
            rule="Unicode text",
            pointer=pointer,
        )


def require_url(value: object, field: str, pointer: str | None = None) -> None:
    """Refuse anything but an absolute URL."""
    require_text(value, field, pointer)
    if not _URL_RE.match(typing.cast(str, value)):
        raise InvalidMessage(
            f"{field}: must be an absolute URL such as https://example.com/page, got {value!r}",
            field=field,
            rule="absolute URL",
            pointer=pointer,
        )


@dataclass(frozen=True, slots=True)
class UnknownField:
    """A field the message's type does not have: ignored, but worth telling the sender."""

    pointer: str  #: its JSON pointer (``/at/isAtALL``)
    suggestion: str | None = None  #: the field of that object it most resembles

    def __str__(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{field_name(self.pointer)} is not a field of this message and was ignored{hint}"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("…" if len(value) > 40 else "")
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def field_name(pointer: str) -> str:
    """A JSON pointer as people read a field: ``/at/atMobiles/0`` is ``at.atMobiles[0]``."""
    name = ""
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        name += f"[{part}]" if part.isdigit() else (f".{part}" if name else part)
    return name


class JSONObject:
    """A JSON object being read into a model: typed getters that note what was read.

    Each getter checks the JSON type of one field and raises :class:`InvalidMessage` with the
    field's pointer; objects read through it share one list, so :meth:`unread` can name every
    field nobody asked for.
    """

    __slots__ = ("_data", "_objects", "_read", "pointer")

    def __init__(self, value: object, pointer: str, objects: list[JSONObject]) -> None:
        if not isinstance(value, Mapping):
            raise _type_error(pointer, "a JSON object", value)
        self._data: Mapping[str, typing.Any] = value
        self.pointer = pointer
        self._read: set[str] = set()
        self._objects = objects
        objects.append(self)

    def at(self, key: str | int) -> str:
        """The pointer of ``key`` inside this object."""
        return f"{self.pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"

    def get(self, key: str) -> object:
        """The raw value of ``key`` (``None`` when absent), noting that it was read."""
        self._read.add(key)
        return self._data.get(key)

    def unread(self) -> list[UnknownField]:
        """The fields of this object, and of those read through it, that nobody asked for."""
        found = [
            UnknownField(o.at(key), _closest(key, o._read))
            for o in self._objects
            for key in o._data
            if key not in o._read
        ]
        return sorted(found, key=lambda field: field.pointer)

    # -- strings -------------------------------------------------------------------------------

    def optional_text(self, key: str) -> str | None:
        """A string, or ``None`` when absent or null."""
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _type_error(self.at(key), "a string", value)
        if _SURROGATE_RE.search(value) is not None:  # names are built only for the error
            pointer = self.at(key)
            require_unicode(value, field_name(pointer), pointer)
        return value

    def text(self, key: str) -> str:
        """A string that is not blank (DingTalk requires the field)."""
        value = self.optional_text(key)
        if value is None or not value.strip():
            pointer = self.at(key)
            require_text(value, field_name(pointer), pointer)
        return typing.cast(str, value)

    def url(self, key: str) -> str:
        """A required absolute URL."""
        value = self.text(key)
        require_url(value, field_name(self.at(key)), self.at(key))
        return value

    def optional_url(self, key: str) -> str | None:
        """An absolute URL, or ``None`` when absent, null or empty."""
        return self.url(key) if self.optional_text(key) else None

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings (empty when absent or null); never a lone string."""
        value = self.get(key)
        if value is None:
            return ()
        pointer = self.at(key)
        if not isinstance(value, list):
            raise _type_error(pointer, "a list of strings", value, example='["13800000000"]')
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _type_error(f"{pointer}/{index}", "a string", item, quote=True)
            require_unicode(item, field_name(f"{pointer}/{index}"), f"{pointer}/{index}")
        return tuple(value)

    # -- other types ---------------------------------------------------------------------------

    def boolean(self, key: str) -> bool:
        """``true`` or ``false``; ``False`` when absent or null."""
        value = self.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise _type_error(self.at(key), "a JSON boolean (true or false)", value)
        return value

    def flag(self, key: str) -> bool:
        """DingTalk's ``"0"``/``"1"`` switches (the integers 0 and 1 too); absent is ``"0"``."""
        value = self.get(key)
        if value is None:
            return False
        if value in ("0", "1") or (type(value) is int and value in (0, 1)):
            return str(value) == "1"
        raise _type_error(self.at(key), '"0" or "1"', value)

    def optional_object(self, key: str) -> JSONObject | None:
        """A nested object, or ``None`` when absent or null."""
        value = self.get(key)
        return None if value is None else JSONObject(value, self.at(key), self._objects)

    def object(self, key: str) -> JSONObject:
        """A required nested object."""
        value = self.optional_object(key)
        if value is None:
            raise _type_error(self.at(key), "a JSON object", None)
        return value

    def objects(self, key: str) -> list[JSONObject]:
        """A list of objects (empty when absent or null)."""
        value = self.get(key)
        if value is None:
            return []
        pointer = self.at(key)
        if not isinstance(value, list):
            raise _type_error(pointer, "a list", value)
        return [JSONObject(item, f"{pointer}/{i}", self._objects) for i, item in enumerate(value)]


def _closest(key: str, known: typing.Collection[str]) -> str | None:
    for name in known:
        if name.casefold() == key.casefold():
            return name
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return close[0] if close else None


_EXPECTED = {
    "a JSON boolean (true or false)": "true or false",
    '"0" or "1"': '"0" or "1" (the integers 0 and 1 are taken too)',
}


def _type_error(
    pointer: str, rule: str, value: object, *, example: str = "", quote: bool = False
) -> InvalidMessage:
    field = field_name(pointer) or "message"
    expected = _EXPECTED.get(rule, rule)
    hint = f" such as {example}" if example else ""
    if quote and isinstance(value, int | float) and not isinstance(value, bool):
        hint = " (write it in quotes)"
    return InvalidMessage(
        f"{field}: must be {expected}{hint}, got {_describe(value)}",
        field=field,
        rule=rule,
        pointer=pointer,
    )
