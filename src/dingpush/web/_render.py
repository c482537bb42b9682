"""The message renderer shared by the emulator's chat view, the relay's dashboard and previews.

One Jinja2 environment loads the package's templates (``templates/``); callers add their own
loaders in front to extend ``base.html`` and include ``message.html``. Autoescaping is on and
message text reaches the page only through :mod:`._html`, which escapes it.
"""

from __future__ import annotations

import datetime
import importlib.resources
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup

from dingpush import MarkdownFinding, check_markdown

from ._html import MediaURL, image_src, markdown_html, safe_href, text_html
from ._views import ActionCardView, MarkdownView, MediaRef, MessageView, view_for

__all__ = [
    "Avatar",
    "MessageRenderer",
    "TimeLabel",
    "avatar_for",
    "create_environment",
    "findings_for",
    "format_duration",
    "stylesheet",
    "time_label",
]

_AVATAR_COLOURS = 8


def create_environment(*loaders: jinja2.BaseLoader) -> jinja2.Environment:
    """Return a Jinja2 environment with ``loaders`` first, then dingpush's own templates.

    Templates are autoescaped; an undefined variable is an error rather than an empty string.
    """
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([*loaders, jinja2.PackageLoader("dingpush.web", "templates")]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def stylesheet() -> str:
    """Return the renderer's CSS, for pages that must stand alone (a saved preview file)."""
    return (importlib.resources.files("dingpush.web") / "static" / "dingpush.css").read_text(
        encoding="utf-8"
    )


@dataclass(frozen=True, slots=True)
class TimeLabel:
    """A time as the page shows it (``14:03``, ``14:03:59``) and as ``<time datetime>`` wants it."""

    short: str
    long: str
    full: str
    iso: str


def time_label(timestamp: float | None) -> TimeLabel | None:
    """Label a Unix time in the local time zone of the machine serving the page."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp).astimezone()
    return TimeLabel(
        short=moment.strftime("%H:%M"),
        long=moment.strftime("%H:%M:%S"),
        full=moment.strftime("%Y-%m-%d %H:%M:%S %Z"),
        iso=moment.isoformat(timespec="milliseconds"),
    )


@dataclass(frozen=True, slots=True)
class Avatar:
    """A sender's round badge: the first character of the name on a colour of its own."""

    initial: str
    colour: int


def avatar_for(name: str) -> Avatar:
    """Return the badge for ``name``; the colour is stable for a name across runs."""
    stripped = name.strip()
    initial = stripped[0].upper() if stripped else "?"
    return Avatar(initial, zlib.crc32(name.encode("utf-8")) % _AVATAR_COLOURS)


def format_duration(seconds: float | None) -> str:
    """``75.0`` → ``1:15``; unknown durations are empty."""
    if seconds is None or seconds < 0:
        return ""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def findings_for(view: MessageView) -> list[MarkdownFinding]:
    """Return what DingTalk will not render in a view's markdown (none for other types)."""
    if isinstance(view, MarkdownView | ActionCardView):
        return check_markdown(view.text, title=view.title)
    return []


class _Helpers:
    """What message templates call to draw text, markdown, links and media."""

    def __init__(self, media_url: MediaURL | None) -> None:
        self._media_url = media_url

    def markdown(self, text: str, mentions: Collection[str] = (), at_all: bool = False) -> Markup:
        return markdown_html(text, mentions=mentions, at_all=at_all, media_url=self._media_url)

    def text(self, text: str, mentions: Collection[str] = (), at_all: bool = False) -> Markup:
        return text_html(text, mentions=mentions, at_all=at_all)

    def href(self, url: str) -> str | None:
        return safe_href(url)

    def src(self, ref: MediaRef | None) -> str | None:
        return image_src(ref, self._media_url)

    def media_label(self, ref: MediaRef | None) -> str:
        if ref is None:
            return ""
        return ref.media_id or ref.url

    def duration(self, seconds: float | None) -> str:
        return format_duration(seconds)


class MessageRenderer:
    """Draw messages the way DingTalk draws them, as escaped HTML fragments.

    Args:
        media_url: Turns a media id into a URL the page can load (the emulator's media store
            answers ``/_emulator/media/{media_id}``); without it, media ids are shown by name.
        environment: A Jinja2 environment from :func:`create_environment`; a new one by default.
    """

    def __init__(
        self,
        *,
        media_url: MediaURL | None = None,
        environment: jinja2.Environment | None = None,
    ) -> None:
        self.environment = environment or create_environment()
        self.helpers = _Helpers(media_url)

    def view(self, message: MessageView | Mapping[str, Any], *, channel: str | None = None) -> Any:
        """Return the view of ``message``: a view as is, or a payload read by :func:`view_for`."""
        if isinstance(message, Mapping):
            return view_for(message, channel)
        return message

    def render(
        self,
        message: MessageView | Mapping[str, Any],
        *,
        sender: str = "",
        time: float | None = None,
        channel: str | None = None,
        message_id: int | None = None,
    ) -> Markup:
        """Return one message as DingTalk shows it: avatar, sender, time and the bubble.

        ``message`` is a view or a payload: a custom robot's body (§1.3), an app robot's
        ``{"msgKey", "msgParam"}`` (§3.3) or a work notification's ``{"msg"}`` (§4.1).
        """
        view: MessageView = self.view(message, channel=channel)
        template = self.environment.get_template("message.html")
        return Markup(
            template.render(
                view=view,
                sender=sender,
                when=time_label(time),
                avatar=avatar_for(sender),
                message_id=message_id,
                h=self.helpers,
            )
        )

    def page(
        self,
        message: MessageView | Mapping[str, Any],
        *,
        title: str = "Message preview",
        sender: str = "dingpush",
        time: float | None = None,
        channel: str | None = None,
        findings: list[MarkdownFinding] | None = None,
    ) -> str:
        """Return a whole HTML page showing one message and what DingTalk will not render.

        The page stands alone (its stylesheet is inlined), so it can be saved to a file and
        opened from disk. ``findings`` default to :func:`findings_for` the message.
        """
        view: MessageView = self.view(message, channel=channel)
        template = self.environment.get_template("preview.html")
        return template.render(
            page_title=title,
            message=self.render(view, sender=sender, time=time),
            findings=findings_for(view) if findings is None else findings,
            inline_css=stylesheet(),
        )
