"""Alert templates: Jinja2 in a sandbox, writing DingTalk markdown, escaped by default.

Every ``{{ … }}`` is escaped for DingTalk's markdown (a label value cannot open a link, bold
text or a heading, nor mention anyone); what is already markdown — the output of a macro, of
``link()``/``links()``, of the ``md`` filter — is printed as it is. Templates run in Jinja2's
``ImmutableSandboxedEnvironment``: no attribute starting with ``_``, no changing a list or a
dict, no file system (a template may include only other configured templates), bounded ``*``.

A template sets the message's title with ``{% set title %}…{% endset %}`` (or leaves the builtin
title); calling ``button("Silence", url)`` turns the message into an action card with buttons.

Jinja2 comes with the ``relay`` (and ``emulator``) extra: this module imports it when templates
are compiled, never at ``import dingpush.alerts``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dingpush import Button

from ._errors import TemplateError
from ._filters import (
    escape_markdown,
    format_duration,
    format_time,
    resolve_timezone,
    safe_url,
    truncate_bytes,
    unescape_markdown,
)
from ._labels import LabelSet
from ._payloads import Alert, AlertmanagerPayload, GenericPayload, GrafanaPayload, ReceiverKind

if typing.TYPE_CHECKING:
    import jinja2

__all__ = ["BUILTIN_TEMPLATES", "RenderFailure", "Rendered", "TemplateSpec", "Templates"]

#: The builtin template of each receiver kind (also the fallback when a template fails).
BUILTIN_TEMPLATES: Mapping[ReceiverKind, str] = {
    "alertmanager": "alertmanager",
    "grafana": "grafana",
    "generic": "generic",
}
_BUILTIN_FILES = {
    "alertmanager": "alertmanager.md.j2",
    "grafana": "grafana.md.j2",
    "generic": "generic.md.j2",
    "dingpush/macros": "macros.md.j2",
}
#: A title longer than this is cut (DingTalk shows it in notifications and the chat list).
MAX_TITLE_CHARS = 64
#: The most text one ``*`` in a template may build (a string or list repeated).
MAX_REPEAT = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateSpec:
    """A configured template (the TOML under ``[templates.NAME]``).

    Args:
        name: how routes refer to it (``AlertSettings`` fills it in from the table's key).
        source: the Jinja2 text, inline.
        file: or a file holding it; relative paths are read from the configuration's folder.
        origin: where it was configured (``dingpush.toml:42``), for error messages.
    """

    name: str = ""
    source: str | None = None
    file: str | None = None
    origin: str | None = None

    def __post_init__(self) -> None:
        from dingpush import ConfigError

        if not isinstance(self.name, str):
            raise ConfigError(f"templates: a template's name is a string, got {self.name!r}")
        if (self.source is None) == (self.file is None):
            raise ConfigError(
                f"templates.{self.name}: give source (the template text) or file (a path), "
                "one of the two"
            )


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """A configured template failed while rendering; the builtin one was used instead."""

    template: str
    route: str
    error: str
    file: str | None = None
    line: int | None = None
    fallback: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file or ""
        at = f" ({where})" if where else ""
        return (
            f"template {self.template!r}{at} failed on route {self.route!r}: {self.error}; "
            f"sent with the builtin template {self.fallback!r} instead"
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message: plain title, markdown text, and buttons when the template asked."""

    title: str
    text: str
    buttons: tuple[Button, ...] = ()
    template: str = ""
    failure: RenderFailure | None = None


#: The time zone and "now" of the rendering in progress: filters read them here, so they work
#: the same in macros imported without the caller's context.
_ZONE: contextvars.ContextVar[tuple[datetime.tzinfo | None, datetime.datetime | None]] = (
    contextvars.ContextVar("dingpush_alert_render", default=(None, None))
)


class _RenderState:
    """What one rendering collects besides its text (the buttons)."""

    __slots__ = ("buttons",)

    def __init__(self) -> None:
        self.buttons: list[Button] = []

    def button(self, title: object, url: object) -> str:
        target = safe_url(url)
        label = str(title).strip()
        if not label:
            raise ValueError("button(): the title is empty")
        if not target:
            raise ValueError(
                f"button({label!r}, {url!r}): not an http(s) URL; guard it with "
                "{% if url %}…{% endif %}"
            )
        self.buttons.append(Button(label, target))
        return ""


# -- the environment ----------------------------------------------------------------------------

#: Types whose public attributes templates may read without the sandbox's generic checks.
_MODEL_TYPES: frozenset[type] = frozenset(
    {Alert, AlertmanagerPayload, GrafanaPayload, GenericPayload, LabelSet}
)


def _make_environment(sources: Mapping[str, tuple[str, str]]) -> jinja2.Environment:
    try:
        import jinja2
        from jinja2.exceptions import SecurityError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        from markupsafe import Markup
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        raise ModuleNotFoundError(
            f"alert templates need {exc.name}: pip install 'dingpush[relay]'"
        ) from exc

    class Loader(jinja2.BaseLoader):
        """Only the configured and builtin templates: no path reaches the file system."""

        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            if template not in sources:
                raise jinja2.TemplateNotFound(template)
            text, filename = sources[template]
            return text, filename, lambda: True

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def is_safe_attribute(self, obj: object, attr: str, value: object) -> bool:
            # dingpush's own frozen models expose nothing unsafe but their "_" attributes;
            # deciding that here skips the sandbox's generic (and costly) checks.
            if type(obj) in _MODEL_TYPES:
                return not attr.startswith("_")
            return super().is_safe_attribute(obj, attr, value)

        def call_binop(
            self, context: jinja2.runtime.Context, operator: str, left: object, right: object
        ) -> object:
            if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("'**' with an exponent over 64 is not allowed in templates")
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if (
                        isinstance(seq, str | list | tuple)
                        and isinstance(times, int)
                        and len(seq) * times > MAX_REPEAT
                    ):
                        raise SecurityError(
                            f"'*' would build more than {MAX_REPEAT} items in a template"
                        )
            return super().call_binop(context, operator, left, right)

    def finalize(context: jinja2.runtime.Context, value: object) -> object:
        if isinstance(value, Markup):
            return value
        if value is None:
            return Markup("")
        if isinstance(value, datetime.datetime):
            tz = _ZONE.get()[0]
            return Markup(escape_markdown(format_time(value, tz, "%Y-%m-%d %H:%M:%S %Z").strip()))
        return Markup(escape_markdown(value))

    env = Sandbox(
        loader=Loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=jinja2.pass_context(finalize),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.filters.update(_filters(Markup))
    env.globals.update(
        link=env.filters["link"],
        links=_links(Markup),
        duration=format_duration,
        escape_markdown=env.filters["escape"],
    )
    return env


def _filters(markup: type[str]) -> dict[str, Callable[..., object]]:
    """The filters every template may use (besides Jinja2's own)."""

    def escape(value: object) -> str:
        return value if isinstance(value, markup) else markup(escape_markdown(value))

    def multiline(value: object) -> str:
        return markup(escape_markdown(value, multiline=True))

    def md(value: object) -> str:
        return markup("" if value is None else str(value))

    def url(value: object) -> str:
        return markup(safe_url(value))

    def link(text: object, target: object) -> str:
        href = safe_url(target)
        label = escape(text)
        if not href:
            return label
        return markup(f"[{label}]({href})")

    def truncate(value: object, limit: int, marker: str = "…") -> str:
        cut = truncate_bytes(value, limit, marker)
        if isinstance(value, markup) and cut != value:
            body = cut[: len(cut) - len(marker)]
            # Never leave half of an escape ("\" + the character it escaped) at the cut.
            trailing = len(body) - len(body.rstrip("\\"))
            if trailing % 2:
                body = body[:-1]
            return markup(body + marker)
        return cut

    def localtime(value: object, fmt: str = "%Y-%m-%d %H:%M:%S", tz: str | None = None) -> str:
        if value is None or value == "":
            return ""
        if not isinstance(value, datetime.datetime):
            raise TypeError(f"localtime: {value!r} is not a time")
        zone = resolve_timezone(tz) if tz is not None else _ZONE.get()[0]
        return format_time(value, zone, fmt)

    def since(value: object) -> str:
        now = _ZONE.get()[1]
        if not isinstance(value, datetime.datetime) or now is None:
            return ""
        return format_duration((now - value).total_seconds())

    def to_json(value: object) -> str:
        return markup(escape_markdown(json.dumps(value, ensure_ascii=False, sort_keys=True)))

    def byte_length(value: object) -> int:
        return len(str(value).encode("utf-8"))

    return {
        "escape": escape,
        "e": escape,
        "forceescape": escape,
        "multiline": multiline,
        "md": md,
        "safe": md,
        "url": url,
        "link": link,
        "truncate_bytes": truncate,
        "localtime": localtime,
        "since": since,
        "duration": format_duration,
        "tojson": to_json,
        "byte_length": byte_length,
    }


def _links(markup: type[str]) -> Callable[..., str]:
    def links(alert: typing.Any, separator: str = " · ", only: Iterable[str] | None = None) -> str:
        """``[Source](…) · [Runbook](…) · [Silence](…)`` (and Grafana's dashboard and panel);
        ``only`` keeps the named ones."""
        keep = None if only is None else set(only)
        parts = []
        for label, target in (
            ("Source", alert.generator_url),
            ("Dashboard", getattr(alert, "dashboard_url", "")),
            ("Panel", getattr(alert, "panel_url", "")),
            ("Runbook", alert.runbook_url),
            ("Silence", alert.silence_url),
        ):
            href = safe_url(target)
            if href and (keep is None or label in keep):
                parts.append(f"[{label}]({href})")
        return markup(separator.join(parts))

    return links


# -- errors ------------------------------------------------------------------------------------

_FIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"unexpected char '\.'|unexpected '\.'|"
            r"expected token 'end of print statement', got '\.'"
        ),
        "this looks like a Go template ({{ .Labels.x }}); dingpush templates are Jinja2: write "
        "{{ alert.labels.x }}, {{ status }}, {% for alert in alerts %}…{% endfor %} "
        "(docs/alerts.md lists the variables)",
    ),
    (
        re.compile(r"No filter named '(?P<name>[^']+)'"),
        "the filters are Jinja2's own and escape, multiline, md, url, link, truncate_bytes, "
        "localtime, since, duration, tojson, byte_length",
    ),
    (
        re.compile(r"Unexpected end of template|unknown tag 'end"),
        "a block is not closed, or closed twice: each {% if %} needs its {% endif %}, each "
        "{% for %} its {% endfor %}, each {% macro %} its {% endmacro %}",
    ),
    (
        re.compile(r"Encountered unknown tag '(?P<name>[^']+)'"),
        "Jinja2's tags are if/elif/else, for, set, macro, call, import, include, filter, with "
        "(Go's range/define/template/end are not Jinja2)",
    ),
    (
        re.compile(r"expected token|unexpected"),
        "check the expression on that line: {{ … }} prints a value, {% … %} runs a tag",
    ),
)


def _fix(message: str) -> str:
    for pattern, fix in _FIXES:
        if pattern.search(message):
            return fix
    return "see Jinja2's template syntax; docs/alerts.md lists the variables and filters"


def _compile_error(name: str, filename: str, exc: jinja2.TemplateSyntaxError) -> TemplateError:
    fix = _fix(exc.message or "")
    where = f"{filename}:{exc.lineno}" if exc.lineno else filename
    return TemplateError(
        f"template {name!r} does not compile: {where}: {exc.message}. Fix: {fix}",
        template=name,
        file=filename,
        line=exc.lineno,
        fix=fix,
    )


def _error_line(exc: BaseException, filenames: Iterable[str]) -> tuple[str | None, int | None]:
    """The innermost template frame of a rendering error (Jinja2 rewrites tracebacks so)."""
    known = set(filenames)
    found: tuple[str | None, int | None] = (None, None)
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in known:
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


# -- the compiled set ---------------------------------------------------------------------------


def _clean_title(value: object) -> str:
    text = " ".join(unescape_markdown(str(value)).split())
    if len(text) > MAX_TITLE_CHARS:
        text = text[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return text


class Templates:
    """The builtin templates and the configured ones, compiled once (errors stop start-up).

    Args:
        specs: the configured templates.
        base_dir: where relative ``file`` paths are read from (the configuration's folder).
    """

    def __init__(
        self, specs: Iterable[TemplateSpec] = (), *, base_dir: Path | str | None = None
    ) -> None:
        self._sources: dict[str, tuple[str, str]] = {}
        package = resources.files("dingpush.alerts") / "templates"
        for name, filename in _BUILTIN_FILES.items():
            text = (package / filename).read_text(encoding="utf-8")
            self._sources[name] = (text, f"<builtin {filename}>")
        self._configured: list[str] = []
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        for spec in specs:
            if not spec.name.strip():
                from dingpush import ConfigError

                raise ConfigError("templates: a template needs a name")
            if spec.name in self._sources:
                from dingpush import ConfigError

                which = "a builtin template" if spec.name in _BUILTIN_FILES else "given twice"
                raise ConfigError(f"templates.{spec.name}: the name is {which}; choose another")
            self._sources[spec.name] = self._read(spec, base)
            self._configured.append(spec.name)
        self._env = _make_environment(self._sources)
        self._compiled: dict[str, jinja2.Template] = {}
        import jinja2

        for name, (_, filename) in self._sources.items():
            try:
                self._compiled[name] = self._env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise _compile_error(name, filename, exc) from None

    @staticmethod
    def _read(spec: TemplateSpec, base: Path) -> tuple[str, str]:
        if spec.source is not None:
            return spec.source, spec.origin or f"<templates.{spec.name}>"
        path = Path(typing.cast(str, spec.file))
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            from dingpush import ConfigError

            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = f" ({spec.origin})" if spec.origin else ""
            raise ConfigError(
                f"templates.{spec.name}.file{where}: cannot read {path}: {reason}; give the "
                "path of a UTF-8 text file, relative to the configuration file's folder"
            ) from None

    @property
    def names(self) -> tuple[str, ...]:
        """Every template a route may name (the builtins first)."""
        return (*BUILTIN_TEMPLATES.values(), *self._configured)

    def __contains__(self, name: object) -> bool:
        return name in self._compiled and not str(name).startswith("dingpush/")

    def render(
        self,
        name: str,
        variables: Mapping[str, object],
        *,
        kind: ReceiverKind,
        route: str,
        mentions: str = "",
    ) -> Rendered:
        """Render ``name``; if it fails, render the builtin template of ``kind`` instead and
        report the failure in :attr:`Rendered.failure` (the builtin itself failing raises)."""
        from markupsafe import Markup

        # The mentions are markdown the pipeline wrote (``@userId``), not a value to escape.
        variables = {**variables, "mentions": Markup(mentions)}
        try:
            return self._render(name, variables)
        except Exception as exc:  # any failure of a user template falls back
            fallback = BUILTIN_TEMPLATES[kind]
            if name == fallback:
                raise
            filenames = [filename for _, filename in self._sources.values()]
            file, line = _error_line(exc, filenames)
            failure = RenderFailure(
                template=name,
                route=route,
                error=_describe(exc),
                file=file,
                line=line,
                fallback=fallback,
            )
        rendered = self._render(fallback, variables)
        return dataclasses.replace(rendered, failure=failure)

    def _render(self, name: str, variables: Mapping[str, object]) -> Rendered:
        template = self._compiled.get(name)
        if template is None or name.startswith("dingpush/"):
            raise LookupError(f"no template named {name!r}")
        state = _RenderState()
        context = template.new_context({**variables, "button": state.button}, shared=False)
        tz, now = variables.get("timezone"), variables.get("now")
        token = _ZONE.set(
            (
                tz if isinstance(tz, datetime.tzinfo) else None,
                now if isinstance(now, datetime.datetime) else None,
            )
        )
        try:
            text = self._env.concat(template.root_render_func(context))
        except Exception:
            # Raise again with the traceback pointing at template lines (as render() does).
            self._env.handle_exception()
        finally:
            _ZONE.reset(token)
        text = _tidy(text)
        if not text.strip():
            raise ValueError("the template rendered no text")
        title = context.vars.get("title", variables.get("default_title", ""))
        clean = _clean_title(title) or _clean_title(variables.get("default_title", "")) or "alert"
        return Rendered(clean, text, tuple(state.buttons), template=name)


_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")


def _tidy(text: str) -> str:
    """At most one blank line in a row (a paragraph break), no spaces left at line ends
    except DingTalk's two-space hard break."""
    text = _TRAILING.sub(lambda m: "  \n" if m.group(0).startswith("  ") else "\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")
