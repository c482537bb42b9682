"""``dingpush preview``: a message drawn as DingTalk draws it into an HTML file, and its flaws.

The message is composed exactly as ``send`` composes it (the same options, the same code), drawn
by the renderer of the emulator's chat view into a page that stands alone (stylesheet inlined),
and checked with :func:`dingpush.check_markdown`, whose findings are printed with line numbers.
Nothing is sent and no HTTP library is loaded; the renderer needs Jinja2 (the ``cli`` extra).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
import typing

import click

from ._common import common_options
from ._compose import MessageOptions, check_message, compose, message_options, read_text
from ._state import get_state, stdin_is_interactive

if typing.TYPE_CHECKING:
    from dingpush import MarkdownFinding, Message

    from ._state import State

_MARKDOWN_SUFFIXES = (".md", ".markdown")

_HELP = """Draw a message as DingTalk would into an HTML file, and list what it will not render.

\b
FILE holds the text ('-' or a pipe: stdin). A FILE ending in .md or .markdown is previewed as
markdown, anything else as text; --text, --markdown, --card, --link, --feed and --image choose
the type as they do for send. Nothing is sent.

\b
The page goes next to FILE (report.md -> report.preview.html), or to a temporary file for
stdin; its path is printed last. Markdown DingTalk does not render (tables, code fences, HTML,
a too-long title…) is listed as FILE:LINE:COLUMN.

\b
Exit status: 0 when the page was written, findings or not; with --strict, 1 when there are
findings; 2 for a usage error or an invalid message.

\b
Examples:
  dingpush preview report.md --open
  dingpush preview --card --button "Open=https://example.com" notes.md
  git log -1 --format=%B | dingpush preview --text -o /tmp/commit.html
"""


@click.command(help=_HELP, short_help="Draw a message as DingTalk would, into an HTML file.")
@click.argument(
    "source",
    metavar="FILE",
    required=False,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=pathlib.Path),
)
@click.option(
    "--text", "as_text", is_flag=True, help="Preview a text message (default unless FILE is .md)."
)
@message_options
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    type=click.Path(dir_okay=False, writable=True, path_type=pathlib.Path),
    help="Write the page to PATH (default: FILE.preview.html, or a temporary file).",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when there are findings.")
@click.option("--json", "as_json", is_flag=True, help="Print the path and findings as JSON.")
@common_options
def preview(
    source: pathlib.Path | None,
    as_text: bool,
    output: pathlib.Path | None,
    open_page: bool,
    strict: bool,
    as_json: bool,
    **shape: typing.Any,
) -> None:
    state = get_state()
    options = _options(MessageOptions(**shape), source, as_text=as_text)
    options.check()
    body = read_text(
        None,
        source,
        implicit_stdin=options.needs_text,
        interactive=stdin_is_interactive(),
        escapes=False,
    )
    message = compose(options, body)
    findings = check_message(message)
    name = "<stdin>" if source is None or str(source) == "-" else str(source)
    path = _write(_page(message, name, findings), output, source)
    if as_json:
        state.json({"output": str(path), "findings": [_finding_json(f) for f in findings]})
    else:
        _report(state, name, findings, path)
    if open_page:
        _open(state, path)
    if strict and findings:
        raise click.exceptions.Exit(1)


def _options(
    options: MessageOptions, source: pathlib.Path | None, *, as_text: bool
) -> MessageOptions:
    """The message type: as chosen, text with --text, markdown for a .md FILE, else text."""
    kind = options.kind
    if as_text:
        if kind != "text":
            raise click.UsageError(f"choose one message type: --text and --{kind} conflict")
        return options
    if kind == "text" and source is not None and source.suffix.lower() in _MARKDOWN_SUFFIXES:
        return dataclasses.replace(options, markdown=True)
    return options


def _page(message: Message, name: str, findings: list[MarkdownFinding]) -> str:
    from dingpush.web import MessageRenderer

    title = getattr(message, "title", "") or name
    return MessageRenderer().page(message.to_payload(), title=title, findings=findings)


def _write(html: str, output: pathlib.Path | None, source: pathlib.Path | None) -> pathlib.Path:
    if output is None and source is not None and str(source) != "-":
        output = source.with_name(source.stem + ".preview.html")
    if output is None:
        handle, name = tempfile.mkstemp(prefix="dingpush-preview-", suffix=".html")
        os.close(handle)
        output = pathlib.Path(name)
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {str(output)!r}: {exc.strerror or exc}", param_hint="--output"
        ) from None
    return output


def _where(name: str, finding: MarkdownFinding) -> str:
    if finding.field == "title":
        return f"{name}: title"
    return f"{name}:{finding.line}:{finding.column}"


def _report(state: State, name: str, findings: list[MarkdownFinding], path: pathlib.Path) -> None:
    for finding in findings:
        state.out(f"{_where(name, finding)}: {finding.message} (fix: {finding.hint})")
    if findings:
        count = len(findings)
        state.out(f"{count} finding{'s' if count != 1 else ''}: DingTalk will not render these.")
    else:
        state.out("Nothing to fix: DingTalk draws this message as written.")
    state.out(f"preview: {path}")


def _finding_json(finding: MarkdownFinding) -> dict[str, object]:
    return {
        "field": finding.field,
        "line": finding.line,
        "column": finding.column,
        "kind": finding.kind,
        "message": finding.message,
        "hint": finding.hint,
    }


def _open(state: State, path: pathlib.Path) -> None:
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        state.err(f"warning: no web browser could be started; open {path} yourself")
