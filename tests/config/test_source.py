"""Finding the line of each key (tomllib reports none), and TOML syntax errors."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from dingpush.config import ConfigFileError, ConfigSource, KeyLocator

DOCUMENT = textwrap.dedent(
    '''\
    # a comment with [brackets] and key = "value"
    default = "ops"

    [targets.ops]
    webhook = "https://example.com/robot/send?access_token=x#not-a-comment"
    secret = 'SEC#literal'   # trailing comment

    [targets."quoted name"]
    kind = "pool"
    members = [
      "ops",   # first
      "dev",
    ]
    description = """
    [targets.fake]
    secret = "inside a multi-line string"
    """
    after = 1

    [targets.inline]
    app = { name = "corp", nested = { deep = true } }
    dotted.key.here = "x"

    [[relay.routes]]
    match = "a"

    [[relay.routes]]
    match = "b"
    '''
)

LINES = [
    (("default",), 2),
    (("targets",), 4),
    (("targets", "ops"), 4),
    (("targets", "ops", "webhook"), 5),
    (("targets", "ops", "secret"), 6),
    (("targets", "quoted name"), 8),
    (("targets", "quoted name", "kind"), 9),
    (("targets", "quoted name", "members"), 10),
    (("targets", "quoted name", "description"), 14),
    (("targets", "quoted name", "after"), 18),
    (("targets", "inline", "app"), 21),
    (("targets", "inline", "app", "name"), 21),
    (("targets", "inline", "app", "nested", "deep"), 21),
    (("targets", "inline", "dotted", "key", "here"), 22),
    (("relay", "routes"), 24),
    (("relay", "routes", "match"), 25),
]


@pytest.mark.parametrize(("path", "line"), LINES, ids=[".".join(p) for p, _ in LINES])
def test_each_key_is_found_on_its_line(path: tuple[str, ...], line: int) -> None:
    assert KeyLocator(DOCUMENT).line_of(path) == line


def test_keys_inside_strings_are_not_keys() -> None:
    locator = KeyLocator(DOCUMENT)
    assert locator.exact(("targets", "fake")) is None
    assert locator.exact(("targets", "fake", "secret")) is None


def test_a_missing_key_falls_back_to_its_table() -> None:
    locator = KeyLocator(DOCUMENT)
    assert locator.exact(("targets", "ops", "keyword")) is None
    assert locator.line_of(("targets", "ops", "keyword")) == 4
    assert locator.line_of(("nowhere",)) is None


def test_top_level_dotted_keys_and_crlf() -> None:
    text = 'targets.ops.webhook = "x"\r\ntargets.ops.secret = "SEC"\r\n'
    locator = KeyLocator(text)
    assert locator.line_of(("targets", "ops", "secret")) == 2
    assert locator.line_of(("targets", "ops")) == 1


SYNTAX = [
    ("default = ops\n", 1, "quote text values"),
    ('[targets.a]\nwebhook = "x"\n[targets.a]\n', 3, "may appear only once"),
    ('[targets.a\nwebhook = "x"\n', 1, "write key = value"),
    ('default = "unterminated\n', 1, "write key = value"),
    ("a = [1,\n", 1, "a missing ], } or closing quote"),
]


@pytest.mark.parametrize(("text", "line", "fix"), SYNTAX)
def test_syntax_errors_name_the_line(
    tmp_path: pathlib.Path, text: str, line: int, fix: str
) -> None:
    path = tmp_path / "dingpush.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        ConfigSource.read(path)
    (problem,) = caught.value.problems
    assert problem.line == line
    assert str(caught.value).startswith(f"{path}:{line}: invalid TOML: ")
    assert fix in str(caught.value)


def test_a_file_that_is_not_utf8(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dingpush.toml"
    path.write_bytes('default = "ok"\ndescription = "运维"\n'.encode("gbk"))
    with pytest.raises(ConfigFileError, match=r":2: the file is not UTF-8 \(byte 30\)") as caught:
        ConfigSource.read(path)
    assert "iconv -f GBK -t UTF-8" in str(caught.value)


def test_a_bom_is_accepted(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dingpush.toml"
    path.write_bytes(b'\xef\xbb\xbfdefault = "ops"\n')
    assert ConfigSource.read(path).data == {"default": "ops"}


def test_an_unreadable_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the file"):
        ConfigSource.read(tmp_path)


def test_each_table_of_an_array_is_found_by_its_index() -> None:
    locator = KeyLocator(DOCUMENT)
    assert locator.exact(("relay", "routes", "[0]")) == 24
    assert locator.exact(("relay", "routes", "[0]", "match")) == 25
    assert locator.exact(("relay", "routes", "[1]")) == 27
    assert locator.exact(("relay", "routes", "[1]", "match")) == 28
    assert locator.line_of(("relay", "routes", "[1]", "target")) == 27
