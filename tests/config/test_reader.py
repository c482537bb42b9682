"""The settings reader: a new table is a declaration, read with every problem (file, line,
key, fix), origins, ``${VAR}`` and strict types. The tables here are the kind later issues add
(``[people]``, ``[[routes]]``), declared the way docs/architecture.md shows."""

from __future__ import annotations

import pathlib
import typing

import pytest

from dingpush import Rate
from dingpush.config import (
    BOOLEAN,
    DURATION,
    INTEGER,
    NONEMPTY,
    PORT,
    RATE,
    SIZE,
    STRINGS,
    TEXT,
    ConfigFileError,
    ConfigSource,
    Field,
    Origin,
    Reader,
    Table,
    Values,
)


def _mobile(value: str) -> str | None:
    return None if value.isdigit() and len(value) == 11 else f"{value!r} is not a mobile number"


PERSON = Table(
    "a person",
    (
        Field("mobile", NONEMPTY, rule=_mobile, fix="write the 11 digits, e.g. 13800000000"),
        Field("user_id", NONEMPTY),
        Field("on_call", BOOLEAN, default=False),
    ),
)
ROUTE = Table(
    "a route",
    (
        Field("match", STRINGS, required=True),
        Field("target", NONEMPTY, required=True),
        Field("repeat", DURATION, default=3600.0),
    ),
)


def _source(tmp_path: pathlib.Path, text: str) -> ConfigSource:
    path = tmp_path / "dingpush.toml"
    path.write_text(text, encoding="utf-8")
    return ConfigSource.read(path)


def _problems(reader: Reader) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        reader.finish()
    return [str(p).split(":", 1)[1] for p in caught.value.problems]


def test_a_table_of_named_entries(tmp_path: pathlib.Path) -> None:
    source = _source(
        tmp_path,
        '[people.alice]\nmobile = "${ALICE_MOBILE}"\non_call = true\n'
        '[people.bob]\nuser_id = "bob01"\n',
    )
    reader = Reader(source, {"ALICE_MOBILE": "13800000000"})
    people = reader.each(
        reader.table(source.data, ("people",)),
        ("people",),
        lambda name, entry: dict(reader.fields(entry, ("people", name), PERSON)),
    )
    reader.finish()
    assert people == {
        "alice": {"mobile": "13800000000", "on_call": True},
        "bob": {"user_id": "bob01", "on_call": False},
    }
    assert reader.origins["people.alice.mobile"] == Origin(
        "file", source.path, 2, ("ALICE_MOBILE",)
    )


def test_every_problem_with_its_line_key_and_fix(tmp_path: pathlib.Path) -> None:
    source = _source(
        tmp_path,
        '[people.alice]\nmobile = "138"\non_call = "yes"\nmobil = 1\n'
        '[people.bob]\nmobile = "${BOB_MOBILE}"\nuser_id = ""\n',
    )
    reader = Reader(source, {})
    reader.each(
        reader.table(source.data, ("people",)),
        ("people",),
        lambda name, entry: reader.fields(entry, ("people", name), PERSON).require(),
    )
    assert _problems(reader) == [
        "2: people.alice.mobile: '138' is not a mobile number. Fix: write the 11 digits, e.g. "
        "13800000000",
        "3: people.alice.on_call: must be true or false, not 'yes'. Fix: write on_call = true",
        "4: people.alice.mobil: unknown key for a person; did you mean 'mobile'? Fix: use one "
        "of mobile, user_id, on_call",
        "7: people.bob.user_id: is empty. Fix: give a value or remove user_id",
    ]
    # bob's unset variable is no problem of the file; his empty user_id is, and shows anyway.
    assert "people.bob" in reader.broken and reader.unresolved == {}


def test_an_unset_variable_sets_its_entry_aside_or_is_a_problem(tmp_path: pathlib.Path) -> None:
    text = '[people.bob]\nmobile = "${BOB_MOBILE}"\n'
    source = _source(tmp_path, text)
    aside = Reader(source, {})
    built = aside.each(
        source.data["people"],
        ("people",),
        lambda name, entry: aside.fields(entry, ("people", name), PERSON).require(),
    )
    aside.finish()  # no problem: bob is set aside until BOB_MOBILE is set
    assert built == {} and list(aside.unresolved) == ["people.bob"]
    assert "refers to ${BOB_MOBILE}, which is not set" in str(aside.unresolved["people.bob"])
    strict = Reader(source, {}, unset="problem")
    strict.fields(source.data["people"]["bob"], ("people", "bob"), PERSON)
    assert _problems(strict) == [
        "2: people.bob.mobile: refers to ${BOB_MOBILE}, which is not set. Fix: export "
        "BOB_MOBILE=… in the environment that runs dingpush, or write ${BOB_MOBILE:-fallback}"
    ]


def test_an_array_of_tables_names_each_by_its_index(tmp_path: pathlib.Path) -> None:
    source = _source(
        tmp_path,
        '[[routes]]\nmatch = ["severity=critical"]\ntarget = "oncall"\n\n'
        '[[routes]]\nmatch = "team=db"\nrepeat = "often"\n',
    )
    reader = Reader(source, {})
    first, second = reader.items(source.data, ("routes",), ROUTE)
    assert first == {"match": ("severity=critical",), "target": "oncall", "repeat": 3600.0}
    assert isinstance(second, Values) and not second.complete
    assert _problems(reader) == [
        "5: routes[1].target: missing. Fix: add target = … to [routes[1]]",
        '6: routes[1].match: must be a list of strings, not a string. Fix: write match = ["a", '
        '"b"]',
        "7: routes[1].repeat: 'often' is not a duration. Fix: write seconds (600) or \"10m\"",
    ]


KINDS: list[tuple[typing.Any, typing.Any, typing.Any]] = [
    (DURATION, "10m", 600.0),
    (DURATION, 90, 90.0),
    (DURATION, "1d", 86400.0),
    (SIZE, "512KiB", 524288),
    (RATE, "20/min", Rate(20, 60.0)),
    (PORT, 8080, 8080),
    (INTEGER, 3, 3),
    (BOOLEAN, False, False),
    (TEXT, "", ""),
    (STRINGS, ["a", 42], ("a", "42")),
]


@pytest.mark.parametrize(("kind", "raw", "value"), KINDS)
def test_kinds_read_the_shared_grammar(
    tmp_path: pathlib.Path, kind: typing.Any, raw: typing.Any, value: typing.Any
) -> None:
    reader = Reader(_source(tmp_path, ""), {})
    assert reader.value({"x": raw}, ("t", "x"), Field("x", kind)) == value
    reader.finish()


STRICT = [
    (BOOLEAN, "true", "is the string 'true', not true or false"),
    (INTEGER, "3", "is the string '3', not a number"),
    (INTEGER, True, "must be an integer, not True"),
    (PORT, "80", "'80' is not a port number"),
    (PORT, 70000, "70000 is not a port number"),
    (DURATION, True, "True is not a duration"),
    (SIZE, "big", "'big' is not a size"),
    (RATE, 20, "20 is not a rate"),
    (TEXT, 5, "must be a string, not an integer"),
    (STRINGS, [True], "must list strings, not a boolean"),
]


@pytest.mark.parametrize(("kind", "raw", "message"), STRICT)
def test_types_are_strict(
    tmp_path: pathlib.Path, kind: typing.Any, raw: typing.Any, message: str
) -> None:
    reader = Reader(_source(tmp_path, ""), {})
    reader.value({"x": raw}, ("t", "x"), Field("x", kind))
    [problem] = reader.problems
    assert problem.key == "t.x" and problem.message == message and problem.fix


def test_a_variable_gives_a_boolean_a_number_or_a_port(tmp_path: pathlib.Path) -> None:
    reader = Reader(_source(tmp_path, ""), {"ON": "true", "N": "7", "P": "9000"})
    assert reader.value({"x": "${ON}"}, ("x",), Field("x", BOOLEAN)) is True
    assert reader.value({"x": "${N}"}, ("x",), Field("x", INTEGER)) == 7
    assert reader.value({"x": "${P}"}, ("x",), Field("x", PORT)) == 9000
    reader.finish()
