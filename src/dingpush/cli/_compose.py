"""From ``send``'s arguments to a message: where the text comes from, and which type it makes.

Text read from stdin or a file is kept byte for byte (CJK, CRLF, blank lines, trailing spaces)
with two exceptions, both documented in docs/cli.md: a UTF-8 byte-order mark at the start is
dropped, and so is **one** final line ending (``\\n`` or ``\\r\\n``), the one ``echo`` and
editors add, so that ``echo hi | dingpush send`` sends what ``dingpush send hi`` sends.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import sys
import typing
from dataclasses import dataclass

import click

from dingpush import (
    ActionCard,
    At,
    Button,
    FeedCard,
    FeedItem,
    InvalidMessage,
    Link,
    Markdown,
    Message,
    Text,
)

if typing.TYPE_CHECKING:
    from dingpush import MarkdownFinding

__all__ = [
    "MessageOptions",
    "check_message",
    "compose",
    "decode_input",
    "message_options",
    "parse_mention",
    "read_text",
]

F = typing.TypeVar("F", bound=typing.Callable[..., typing.Any])

_BOM = b"\xef\xbb\xbf"
_MOBILE = re.compile(r"1[0-9]{10}|\+[0-9]{1,4}-?[0-9][0-9-]{4,}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_TITLE_LIMIT = 64
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*+|`+|~~")


# -- the options that shape a message (send and preview take the same) ---------------------------

_MESSAGE_OPTIONS = (
    click.option("-m", "--markdown", is_flag=True, help="A markdown message (DingTalk's subset)."),
    click.option(
        "--title",
        help="Title of a markdown, link, card or image message (default: the first line).",
    ),
    click.option("--link", metavar="URL", help="A link card opening URL; TEXT is its summary."),
    click.option("--pic", metavar="URL", help="Picture of a --link card."),
    click.option("--card", is_flag=True, help="An action card; TEXT is its markdown body."),
    click.option(
        "--button",
        "buttons",
        multiple=True,
        metavar="TITLE=URL",
        help="A card button (repeatable).",
    ),
    click.option("--horizontal", is_flag=True, help="Lay card buttons side by side."),
    click.option("--hide-avatar", is_flag=True, help="Hide the robot's avatar on a card."),
    click.option("--feed", is_flag=True, help="A feed card made of --item entries."),
    click.option(
        "--item", "items", multiple=True, metavar="TITLE|URL|PIC", help="A feed entry (repeatable)."
    ),
    click.option(
        "--image", metavar="PATH|URL", help="A picture message (a URL for robots; a file for apps)."
    ),
    click.option(
        "--file",
        metavar="PATH",
        type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
        help="A file message (app targets; for the text of a file, use --input).",
    ),
    click.option(
        "--at",
        "at",
        multiple=True,
        metavar="MOBILE|USERID",
        help="Mention someone (repeatable; mobile:… or user:… to be explicit).",
    ),
    click.option("--at-all", is_flag=True, help="Mention everyone in the group."),
)


def message_options(function: F) -> F:
    """The message-shaping options of ``send`` (``--markdown``, ``--card``, ``--at``…), which
    ``preview`` shares; the command receives them as keywords for :class:`MessageOptions`."""
    for option in reversed(_MESSAGE_OPTIONS):
        function = option(function)
    return function


def check_message(message: Message) -> list[MarkdownFinding]:
    """What DingTalk will not draw in a markdown or action-card message (none for others)."""
    if isinstance(message, Markdown | ActionCard):
        # Imported here: the markdown checker's module costs ~4 ms to import, which a plain
        # text send (the CLI's cold start, issue 17) need not pay.
        from dingpush import check_markdown

        return check_markdown(message.text, title=message.title)
    return []


def decode_input(data: bytes, source: str) -> str:
    """Decode piped or file input as UTF-8, dropping a BOM and one final line ending."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(
            f"{source} is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); convert it first, e.g. iconv -f GBK -t UTF-8",
            field="text",
            rule="UTF-8",
        ) from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


def read_text(
    argument: str | None,
    input_path: pathlib.Path | None,
    *,
    implicit_stdin: bool,
    interactive: bool,
    escapes: bool,
) -> str | None:
    """Return the message text from TEXT, ``-`` (stdin), ``--input PATH`` or a pipe.

    ``implicit_stdin`` says whether to read a pipe when no source is given (only for message
    types that need text: an open but silent stdin, as some CI runners leave it, would hang).
    """
    if argument is not None and input_path is not None:
        raise click.UsageError("give the text either as TEXT or with --input, not both")
    if input_path is not None:
        if str(input_path) == "-":
            return decode_input(sys.stdin.buffer.read(), "stdin")
        try:
            data = input_path.read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {str(input_path)!r}: {exc.strerror or exc}", param_hint="--input"
            ) from None
        return decode_input(data, str(input_path))
    if argument == "-":
        return decode_input(sys.stdin.buffer.read(), "stdin")
    if argument is not None:
        _check_encodable(argument)
        return _unescape(argument) if escapes else argument
    if implicit_stdin and not interactive:
        return decode_input(sys.stdin.buffer.read(), "stdin")
    return None


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # argv bytes that are not valid in the locale's encoding arrive as lone surrogates.
        raise InvalidMessage(
            "TEXT is not valid UTF-8 (check the terminal's or the script's encoding, e.g. "
            "LANG=C.UTF-8), or pipe the text in",
            field="text",
            rule="UTF-8",
        ) from None


def parse_mention(value: str) -> tuple[typing.Literal["mobile", "user"], str]:
    """``mobile:N``/``user:ID`` explicitly; else an 11-digit or ``+CC-`` number is a mobile."""
    value = value.strip().lstrip("@")
    for prefix, kind in (("mobile:", "mobile"), ("user:", "user")):
        if value.startswith(prefix):
            rest = value[len(prefix) :].strip()
            if not rest:
                raise click.BadParameter(f"{value!r} names nobody", param_hint="--at")
            return typing.cast(typing.Literal["mobile", "user"], kind), rest
    if not value:
        raise click.BadParameter("an empty mention", param_hint="--at")
    return ("mobile", value) if _MOBILE.fullmatch(value) else ("user", value)


def parse_button(spec: str) -> Button:
    title, separator, url = spec.partition("=")
    if not separator or not title.strip() or not url.strip():
        raise click.BadParameter(
            f"{spec!r}: write TITLE=URL, e.g. 'Open=https://example.com'", param_hint="--button"
        )
    return Button(title.strip(), url.strip())


def parse_item(spec: str) -> FeedItem:
    parts = [part.strip() for part in spec.split("|")]
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(
            f"{spec!r}: write TITLE|URL|PICTURE_URL, e.g. "
            "'Release notes|https://example.com/r|https://example.com/r.png'",
            param_hint="--item",
        )
    return FeedItem(*parts)


def derive_title(text: str) -> str:
    """A title from the text's first non-empty line, without markdown marks (titles are plain)."""
    for line in text.splitlines():
        line = _LINK.sub(r"\1", line.strip().lstrip("#>").strip())
        line = _EMPHASIS.sub("", line).strip()
        if line:
            return line if len(line) <= _TITLE_LIMIT else line[: _TITLE_LIMIT - 1] + "…"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageOptions:
    """The message-shaping options of ``dingpush send``."""

    markdown: bool = False
    title: str | None = None
    link: str | None = None
    pic: str | None = None
    card: bool = False
    buttons: tuple[str, ...] = ()
    horizontal: bool = False
    hide_avatar: bool = False
    feed: bool = False
    items: tuple[str, ...] = ()
    image: str | None = None
    file: pathlib.Path | None = None
    at: tuple[str, ...] = ()
    at_all: bool = False

    @property
    def kind(self) -> str:
        """The message type the options ask for; several at once is a usage error."""
        chosen = [
            name
            for name, on in (
                ("--markdown", self.markdown),
                ("--link", self.link is not None),
                ("--card", self.card),
                ("--feed", self.feed),
                ("--image", self.image is not None),
                ("--file", self.file is not None),
            )
            if on
        ]
        if len(chosen) > 1:
            raise click.UsageError(f"choose one message type: {' and '.join(chosen)} conflict")
        return chosen[0].lstrip("-") if chosen else "text"

    @property
    def needs_text(self) -> bool:
        return self.kind in ("text", "markdown", "link", "card")

    def check(self) -> None:
        """Refuse options that do not belong to the chosen type, before reading any input."""
        kind = self.kind
        misplaced = [
            ("--pic", self.pic is not None, ("link",)),
            ("--button", bool(self.buttons), ("card",)),
            ("--horizontal", self.horizontal, ("card",)),
            ("--hide-avatar", self.hide_avatar, ("card",)),
            ("--item", bool(self.items), ("feed",)),
            ("--title", self.title is not None, ("markdown", "link", "card", "image")),
            ("--at", bool(self.at), ("text", "markdown", "image")),
            ("--at-all", self.at_all, ("text", "markdown", "image")),
        ]
        for option, given, kinds in misplaced:
            if given and kind not in kinds:
                allowed = " or ".join("text" if k == "text" else f"--{k}" for k in kinds)
                raise click.UsageError(
                    f"{option} goes with {allowed} messages, not {_describe(kind)}"
                )
        if kind == "card" and not self.buttons:
            raise click.UsageError("--card needs at least one --button 'Title=URL'")
        if kind == "feed" and not self.items:
            raise click.UsageError("--feed needs at least one --item 'Title|URL|PictureURL'")

    def mentions(self) -> At | None:
        mobiles: list[str] = []
        users: list[str] = []
        for value in self.at:
            kind, target = parse_mention(value)
            (mobiles if kind == "mobile" else users).append(target)
        at = At(mobiles=mobiles, user_ids=users, all=self.at_all)
        return at or None


def _describe(kind: str) -> str:
    return "text messages" if kind == "text" else f"--{kind} messages"


def compose(options: MessageOptions, text: str | None, *, app: bool = False) -> Message:
    """Build the message from the options and the text, for a robot or (``app``) an app."""
    kind = options.kind
    if kind == "feed":
        if text is not None:
            raise click.UsageError("--feed cards take no TEXT: each --item is an entry")
        return FeedCard([parse_item(spec) for spec in options.items])
    if app and kind in ("image", "file"):
        return _media(options, text)
    if kind == "image":
        return _image(options, text)
    if kind == "file":
        raise click.UsageError(
            "--file sends a file, which a webhook robot cannot do (DingTalk gives robots no "
            "upload): send to an app target (--to app:NAME/group/CID), or use --input "
            f"{options.file} to send the file's text as the message"
        )
    if text is None:
        raise click.UsageError(
            "no message text: give TEXT, pipe it in (… | dingpush send), or use --input PATH"
        )
    if not text.strip():
        raise InvalidMessage("the message text is empty", field="text", rule="required")
    title = options.title or derive_title(text)
    if kind == "markdown":
        return Markdown(title, text, at=options.mentions())
    if kind == "link":
        assert options.link is not None
        return Link(title, text, options.link, options.pic)
    if kind == "card":
        buttons = [parse_button(spec) for spec in options.buttons]
        return ActionCard(
            title,
            text,
            button=buttons[0] if len(buttons) == 1 else None,
            buttons=buttons if len(buttons) > 1 else (),
            orientation="horizontal" if options.horizontal else "vertical",
            hide_avatar=options.hide_avatar,
        )
    return Text(text, at=options.mentions())


def _media(options: MessageOptions, text: str | None) -> Message:
    """An image or a file for an app, which uploads a local one before sending it."""
    from dingpush import File, Image

    option = f"--{options.kind}"
    if text is not None:
        raise click.UsageError(
            f"{option} sends a message of its own, without TEXT: send the text separately"
        )
    if options.at or options.at_all or options.title is not None:
        raise click.UsageError(f"an app's {option} message has no title and mentions nobody")
    if options.file is not None:
        return File.from_file(options.file)
    source = options.image or ""
    return Image(url=source) if "://" in source else Image.from_file(source)


def _image(options: MessageOptions, text: str | None) -> Message:
    source = options.image or ""
    if "://" not in source:
        raise click.UsageError(
            f"--image {source}: a webhook robot cannot upload a local file (DingTalk gives "
            "robots no upload); give an https:// URL of the picture, or send to an app target "
            "(--to app:NAME/group/CID), which uploads it"
        )
    title = options.title or (derive_title(text) if text else "") or "image"
    return Markdown.with_image(title, source, text=text or "", at=options.mentions())


def apply_defaults(message: Message, mentions: tuple[str, ...], markdown: bool) -> Message:
    """Apply a ``dingtalk://…/MOBILE?format=markdown`` URL's mentions and format to a message."""
    if markdown and isinstance(message, Text):
        message = Markdown(derive_title(message.content), message.content, at=message.at)
    if mentions and isinstance(message, Text | Markdown):
        at = At(mobiles=mentions).merged(message.at)
        message = dataclasses.replace(message, at=at)
    return message
