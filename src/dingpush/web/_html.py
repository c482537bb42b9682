"""HTML for DingTalk's markdown and text, escaped throughout: message text is untrusted.

Everything the parser of :mod:`dingpush._markdown._parse` kept as literal text is escaped and shown
as typed, as DingTalk shows it. Links and images pass :func:`safe_href` / :func:`image_src`,
so ``javascript:`` and other schemes never reach an attribute.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Collection, Iterable

from markupsafe import Markup, escape

from dingpush.markdown import (
    Block,
    Break,
    Emphasis,
    Heading,
    Image,
    Inline,
    LinkSpan,
    ListBlock,
    Mention,
    Paragraph,
    Quote,
    Strong,
    TextSpan,
    parse_markdown,
    parse_text,
)

from ._views import MediaRef

__all__ = ["MediaURL", "image_src", "markdown_html", "safe_href", "text_html"]

#: Turns a media id (from ``media/upload``) into a URL the page can load, or ``None``.
MediaURL = Callable[[str], str | None]

_SAFE_SCHEMES = ("http", "https", "mailto", "tel")
_IMAGE_SCHEMES = ("http", "https")


def safe_href(url: str) -> str | None:
    """Return ``url`` if a page may link to it, unwrapping DingTalk's side-panel links (§1.3).

    ``dingtalk://dingtalkclient/page/link?url=<encoded>&pc_slide=…`` opens ``<encoded>``;
    every scheme other than http, https, mailto and tel (``javascript:`` first) is refused.
    """
    url = url.strip()
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme == "dingtalk" and parsed.netloc == "dingtalkclient":
        inner = urllib.parse.parse_qs(parsed.query).get("url", [""])[0]
        return safe_href(inner) if inner and not inner.lower().startswith("dingtalk:") else None
    if scheme in _SAFE_SCHEMES and (parsed.netloc or scheme in ("mailto", "tel")):
        return url
    return None


def image_src(ref: MediaRef | str | None, media_url: MediaURL | None) -> str | None:
    """Return where an image loads from: its http(s) URL, or its media id through ``media_url``."""
    if isinstance(ref, str):
        ref = MediaRef.parse(ref)
    if ref is None:
        return None
    if ref.media_id:
        return media_url(ref.media_id) if media_url is not None else None
    scheme = urllib.parse.urlsplit(ref.url).scheme.lower()
    return ref.url if scheme in _IMAGE_SCHEMES else None


def _inline(nodes: Iterable[Inline], media_url: MediaURL | None) -> Markup:
    parts: list[Markup] = []
    for node in nodes:
        if isinstance(node, TextSpan):
            parts.append(escape(node.text))
        elif isinstance(node, Strong):
            parts.append(Markup("<strong>%s</strong>") % _inline(node.children, media_url))
        elif isinstance(node, Emphasis):
            parts.append(Markup("<em>%s</em>") % _inline(node.children, media_url))
        elif isinstance(node, LinkSpan):
            parts.append(_link(node, media_url))
        elif isinstance(node, Image):
            parts.append(_image(node, media_url))
        elif isinstance(node, Mention):
            parts.append(Markup('<span class="mention">@%s</span>') % node.target)
        elif isinstance(node, Break):
            # A soft break is a newline in the HTML, which the browser draws as a space.
            parts.append(Markup("<br>\n") if node.hard else Markup("\n"))
    return Markup("").join(parts)


def _link(node: LinkSpan, media_url: MediaURL | None) -> Markup:
    label = _inline(node.children, media_url)
    href = safe_href(node.url)
    if href is None:
        return Markup('<span class="md-link md-link--blocked" title="%s">%s</span>') % (
            f"not opened: {node.url}",
            label,
        )
    return Markup(
        '<a class="md-link" href="%s" target="_blank" rel="noopener noreferrer">%s</a>'
    ) % (
        href,
        label,
    )


def _image(node: Image, media_url: MediaURL | None) -> Markup:
    src = image_src(node.url, media_url)
    alt = node.alt or "image"
    if src is None:
        return Markup(
            '<span class="md-image md-image--missing" role="img" aria-label="%s">%s</span>'
        ) % (
            alt,
            f"[image: {node.url}]",
        )
    return Markup(
        '<img class="md-image" src="%s" alt="%s" loading="lazy" referrerpolicy="no-referrer">'
    ) % (src, alt)


def _blocks(blocks: Iterable[Block], media_url: MediaURL | None) -> Markup:
    parts: list[Markup] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(
                Markup('<p class="md-h md-h%d">%s</p>')
                % (block.level, _inline(block.children, media_url))
            )
        elif isinstance(block, Paragraph):
            parts.append(Markup("<p>%s</p>") % _inline(block.children, media_url))
        elif isinstance(block, Quote):
            parts.append(Markup("<blockquote>%s</blockquote>") % _blocks(block.children, media_url))
        elif isinstance(block, ListBlock):
            items = Markup("").join(
                Markup("<li>%s</li>") % _inline(item, media_url) for item in block.items
            )
            if block.ordered:
                parts.append(Markup('<ol start="%d">%s</ol>') % (block.start, items))
            else:
                parts.append(Markup("<ul>%s</ul>") % items)
    return Markup("\n").join(parts)


def markdown_html(
    text: str,
    *,
    mentions: Collection[str] = (),
    at_all: bool = False,
    media_url: MediaURL | None = None,
) -> Markup:
    """Draw markdown as DingTalk does (protocol §1.4); anything else appears as typed."""
    return _blocks(parse_markdown(text, mentions=mentions, at_all=at_all), media_url)


def text_html(text: str, *, mentions: Collection[str] = (), at_all: bool = False) -> Markup:
    """Draw a text message: line breaks kept, URLs clickable, named mentions highlighted."""
    return _inline(parse_text(text, mentions=mentions, at_all=at_all), None)
