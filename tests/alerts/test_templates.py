"""Templates: sandboxed, escaped for DingTalk's markdown, clear errors, a builtin fallback."""

from __future__ import annotations

import datetime
import pathlib
import typing

import pytest

from dingpush import ConfigError
from dingpush._markdown._parse import LinkSpan, Mention, TextSpan, parse_markdown
from dingpush.alerts import (
    PayloadError,
    Route,
    TemplateError,
    Templates,
    TemplateSpec,
    escape_markdown,
    format_duration,
    parse_alertmanager,
    process_alerts,
    sample,
    truncate_bytes,
)
from dingpush.testing import FakeClock

NOW = datetime.datetime(2024, 5, 1, 12, 12, tzinfo=datetime.UTC)


def render(source: str, **variables: typing.Any) -> typing.Any:
    templates = Templates([TemplateSpec(name="t", source=source)])
    base = {"now": NOW, "timezone": datetime.UTC, "default_title": "default"}
    return templates.render("t", {**base, **variables}, kind="generic", route="r")


def inlines(text: str, mentions: typing.Collection[str] = ()) -> list[object]:
    """Every inline node DingTalk's renderer (dingpush's model of it) draws for ``text``."""
    found: list[object] = []

    def walk(node: object) -> None:
        found.append(node)
        for child in getattr(node, "children", ()) or ():
            walk(child)
        for item in getattr(node, "items", ()) or ():
            for child in item:
                walk(child)

    for block in parse_markdown(text, mentions=mentions, at_all=True):
        walk(block)
    return found


# -- the sandbox --------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ alerts.__len__() }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{% set d = {} %}{{ d.update(a=1) }}",
    "{{ 'x' * 1000000000 }}",
    "{{ [1] * 1000000000 }}",
    "{{ 9 ** 999999 }}",
    "{% for i in range(1000000000) %}{% endfor %}x",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_the_sandbox_blocks_escapes(source: str) -> None:
    rendered = render(source, alerts=[], fields={}, headline="h", route="r")
    assert rendered.failure is not None, rendered.text
    assert rendered.template == "generic"  # fell back to the builtin template
    assert "uid=" not in rendered.text and "<class" not in rendered.text


@pytest.mark.parametrize(
    "source",
    [
        '{% include "/etc/passwd" %}',
        '{% include "../../../../etc/passwd" %}',
        '{% import "/etc/hostname" as h %}',
        "{% extends '/etc/passwd' %}",
    ],
)
def test_templates_cannot_read_files(source: str) -> None:
    rendered = render(source, fields={}, headline="h", route="r")
    assert rendered.failure is not None
    assert "TemplateNotFound" in rendered.failure.error
    assert "root:" not in rendered.text


def test_templates_may_include_configured_templates() -> None:
    templates = Templates(
        [
            TemplateSpec(name="part", source="**{{ who }}**"),
            TemplateSpec(name="whole", source='hello {% include "part" %}'),
        ]
    )
    rendered = templates.render("whole", {"who": "a*b"}, kind="generic", route="r")
    assert rendered.text == "hello **a\\*b**" and rendered.failure is None


# -- escaping -----------------------------------------------------------------------------------

INJECTIONS = [
    "[click me](http://evil.example/phish)",
    "![x](http://evil.example/pixel.png)",
    "[a]\n(http://evil.example)",
    "**bold** *it*",
    "# heading",
    "> quote",
    "- item",
    "1. item",
    "<font color=red>x</font>",
    "&nbsp;",
    "`code`",
    "@13800000000 @all @manager4220",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_a_label_value_cannot_inject_markup_links_or_mentions(value: str) -> None:
    rendered = render("- **team:** {{ team }}\n\n{{ team }}", team=value)
    nodes = inlines(rendered.text, mentions=("13800000000", "manager4220"))
    assert not [n for n in nodes if isinstance(n, Mention)], rendered.text
    # A bare address still shows as itself (DingTalk links those in any text), but no link
    # can carry other text than its address.
    for link in (n for n in nodes if isinstance(n, LinkSpan)):
        assert link.children == (TextSpan(link.url),) and link.url.startswith("http://evil.")
    kinds = {type(n).__name__ for n in nodes} - {"LinkSpan"}
    assert kinds <= {"ListBlock", "Paragraph", "Strong", "TextSpan", "Break"}, kinds
    assert "@13800000000" not in rendered.text and "@all" not in rendered.text


def test_escaped_text_reads_as_typed() -> None:
    value = "a*b_c [x](y) #1 @bob 1. 2) - z"
    text = render("{{ v }}", v=value).text
    shown = "".join(n.text for n in inlines(text) if isinstance(n, TextSpan))
    assert shown == value.replace("@", "＠")


def test_multiline_keeps_line_breaks_and_escapes_each_line() -> None:
    text = render("{{ v | multiline }}", v="first *line*\n- second\n# third").text
    assert text == "first \\*line\\*  \n\\- second  \n\\# third"


def test_markdown_from_helpers_is_not_escaped() -> None:
    text = render(
        '{{ link("Run*book*", url) }} {{ "**b**" | md }} {{ url | url }}',
        url="https://x.example/a b(c)",
    ).text
    assert text == (
        "[Run\\*book\\*](https://x.example/a%20b%28c%29) **b** https://x.example/a%20b%28c%29"
    )


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "", None, "ftp://x"])
def test_links_only_to_web_addresses(url: object) -> None:
    assert render('{{ link("x", url) }}', url=url).text == "x"


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (12 * 60 + 5, "12 min"),
        (3600, "1 h"),
        (3 * 3600 + 5 * 60, "3 h 5 min"),
        (86400 * 2 + 3600 * 4, "2 d 4 h"),
        (86400, "1 d"),
        (-5, "0 s"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_truncate_by_utf8_bytes_on_character_boundaries() -> None:
    assert truncate_bytes("告警告警", 9) == "告警告警"[:2] + "…"  # 6 bytes + the 3-byte marker
    assert len(truncate_bytes("告警" * 100, 100).encode()) <= 100
    assert truncate_bytes("short", 100) == "short"
    assert truncate_bytes("abcdef", 4, marker="") == "abcd"
    text = render("{{ v | multiline | truncate_bytes(8) }}", v="ab*cd*ef*gh").text
    assert text.endswith("…") and not text.removesuffix("…").endswith("\\")
    assert len(text.encode()) <= 8


def test_times_in_the_route_zone() -> None:
    started = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    shanghai = pytest.importorskip("zoneinfo").ZoneInfo("Asia/Shanghai")
    text = render(
        "{{ t | localtime }} | {{ t | localtime('%H:%M', tz='UTC') }} | {{ t | since }} | {{ t }}",
        t=started,
        timezone=shanghai,
    ).text
    assert text == "2024-05-01 20:00:00 | 12:00 | 12 min | 2024-05-01 20:00:00 CST"


# -- titles, buttons ----------------------------------------------------------------------------


def test_a_template_sets_its_title() -> None:
    rendered = render(
        "{% set title %}[{{ s | upper }}] {{ name }}{% endset %}body", s="firing", name="Disk*Full"
    )
    assert rendered.title == "[FIRING] Disk*Full"  # plain text: no markdown escapes
    assert render("body").title == "default"
    assert len(render("{% set title = 'x' * 200 %}b").title) == 64


def test_buttons_make_an_action_card() -> None:
    rendered = render(
        '{{ button("Silence", u) }}{{ button("Runbook", "https://r.example") }}text',
        u="https://s.example/x",
    )
    assert [(b.title, b.url) for b in rendered.buttons] == [
        ("Silence", "https://s.example/x"),
        ("Runbook", "https://r.example"),
    ]
    assert rendered.text == "text"
    failed = render('{{ button("Runbook", "") }}text', fields={}, headline="h", route="r")
    assert failed.failure is not None and "guard it" in failed.failure.error


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "fix"),
    [
        ("ok\n{{ .Labels.severity }}", 2, "Go template"),
        ("{% range .Alerts %}x{% end %}", 1, "Go's range"),
        ("a\nb\n{% for a in alerts %}x", 3, "not closed"),
        ("{{ v | shout }}", 1, "the filters are"),
        ("{{ v ) }}", 1, "check the expression"),
    ],
)
def test_compile_errors_name_file_line_and_fix(source: str, line: int, fix: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Templates([TemplateSpec(name="bad", source=source, origin="dingpush.toml:12")])
    error = caught.value
    assert (error.template, error.file, error.line) == ("bad", "dingpush.toml:12", line)
    assert fix in error.fix and f"dingpush.toml:12:{line}" in str(error)
    assert error.exit_code == 3


def test_file_templates_are_read_at_compile_time(tmp_path: pathlib.Path) -> None:
    (tmp_path / "db.md.j2").write_text("x\n{{ .Status }}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        Templates([TemplateSpec(name="db", file="db.md.j2")], base_dir=tmp_path)
    assert caught.value.file == str(tmp_path / "db.md.j2") and caught.value.line == 2
    with pytest.raises(ConfigError, match="cannot read"):
        Templates([TemplateSpec(name="db", file="missing.md.j2")], base_dir=tmp_path)


def test_template_specs_are_checked() -> None:
    with pytest.raises(ConfigError, match="one of the two"):
        TemplateSpec(name="x")
    with pytest.raises(ConfigError, match="builtin"):
        Templates([TemplateSpec(name="alertmanager", source="x")])


def test_a_render_failure_falls_back_and_says_where(clock: FakeClock) -> None:
    source = "line one\n{{ alerts[0].labels.team }}\n{{ no_such_variable }}\n"
    templates = Templates([TemplateSpec(name="mine", source=source, origin="dingpush.toml:40")])
    kind, body = sample("alertmanager-firing")
    outcome = process_alerts(
        kind,
        Route(targets=["ops"], template="mine"),
        body,
        templates=templates,
        clock=clock,
        name="ops",
    )
    (failure,) = outcome.render_failures
    assert failure.template == "mine" and failure.fallback == "alertmanager"
    assert (failure.file, failure.line) == ("dingpush.toml:40", 3)
    assert "no_such_variable" in failure.error and failure.route == "ops"
    assert "dingpush.toml:40:3" in str(failure)
    (message,) = outcome.messages
    assert message.template == "alertmanager"  # the alert was not lost
    text = message.message.to_payload()["markdown"]["text"]
    assert "CPU above 90% on web-01" in text
    # The failure is on the message too: the group sees that its template needs fixing.
    assert text.splitlines()[-1] == (
        "> ⚠️ template 'mine' (dingpush.toml:40:3) failed: UndefinedError: "
        "'no\\_such\\_variable' is undefined; shown with the builtin template 'alertmanager'"
    )


def test_an_empty_rendering_falls_back(clock: FakeClock) -> None:
    templates = Templates([TemplateSpec(name="empty", source="{% if false %}x{% endif %}")])
    kind, body = sample("alertmanager-firing")
    outcome = process_alerts(
        kind, Route(targets=["ops"], template="empty"), body, templates=templates, clock=clock
    )
    assert "no text" in outcome.render_failures[0].error
    assert outcome.messages[0].template == "alertmanager"


def test_escape_markdown_is_usable_without_templates() -> None:
    assert escape_markdown("[x](y) @a &amp; R&D") == "\\[x\\]\\(y) ＠a \\&amp; R&D"
    assert escape_markdown(None) == ""
    with pytest.raises(PayloadError):
        parse_alertmanager(b"{")
