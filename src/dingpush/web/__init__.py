"""Drawing messages the way DingTalk draws them: one renderer, its templates and its styles.

The emulator's chat view, the relay's dashboard and ``dingpush preview`` all draw messages
through :class:`MessageRenderer`. Templates (``templates/``) and assets (``static/``) ship as
package data. Needs the ``[emulator]`` extra (Jinja2).

    renderer = MessageRenderer(media_url=lambda media_id: f"/_emulator/media/{media_id}")
    html = renderer.render({"msgtype": "text", "text": {"content": "hi"}}, sender="ops")
"""

from __future__ import annotations

import importlib.resources

from ._html import MediaURL, image_src, markdown_html, safe_href, text_html
from ._render import (
    Avatar,
    MessageRenderer,
    TimeLabel,
    avatar_for,
    create_environment,
    findings_for,
    format_duration,
    stylesheet,
    time_label,
)
from ._views import (
    ActionCardView,
    AudioView,
    ButtonView,
    DingView,
    FeedCardView,
    FeedItemView,
    FileView,
    ImageView,
    LinkView,
    MarkdownView,
    MediaRef,
    MessageView,
    OAView,
    TextView,
    UnsupportedView,
    VideoView,
    view_for,
    view_from_app_robot,
    view_from_ding,
    view_from_robot,
    view_from_work_notice,
)

__all__ = [
    "STATIC_PACKAGE",
    "ActionCardView",
    "AudioView",
    "Avatar",
    "ButtonView",
    "DingView",
    "FeedCardView",
    "FeedItemView",
    "FileView",
    "ImageView",
    "LinkView",
    "MarkdownView",
    "MediaRef",
    "MediaURL",
    "MessageRenderer",
    "MessageView",
    "OAView",
    "TextView",
    "TimeLabel",
    "UnsupportedView",
    "VideoView",
    "avatar_for",
    "create_environment",
    "findings_for",
    "format_duration",
    "image_src",
    "markdown_html",
    "safe_href",
    "static_directory",
    "stylesheet",
    "text_html",
    "time_label",
    "view_for",
    "view_from_app_robot",
    "view_from_ding",
    "view_from_robot",
    "view_from_work_notice",
]

#: ``StaticFiles(packages=[STATIC_PACKAGE])`` serves the renderer's CSS and scripts.
STATIC_PACKAGE = ("dingpush.web", "static")


def static_directory() -> str:
    """Return the directory of the renderer's CSS and scripts (package data)."""
    return str(importlib.resources.files("dingpush.web") / "static")
