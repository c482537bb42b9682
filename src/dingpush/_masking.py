"""Masking of secrets at every boundary: reprs, logs, exceptions, CLI output, API answers."""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Iterable

__all__ = ["Redactor", "install_log_redaction", "mask", "redact_url"]

# Query parameters that carry credentials: DingTalk's, apprise's dingtalk:// (?token=, ?secret=)
# and the dashboard's session cookie. A name counts only at the start of a word, so "redesign="
# and "assign=" are left alone.
_SECRET_PARAMS = ("access_token", "sign", "appsecret", "session", "token", "secret")
# A value is what a query value or a token can hold (RFC 3986 unreserved, %-escapes, and +/= of
# Base64), plus the … and * of a value masked before. It never takes in the ) closing a
# markdown link, a quote, or the full stop ending a sentence.
_VALUE = r"[A-Za-z0-9_~%+/=*…-]+(?:\.[A-Za-z0-9_~%+/=*…-]+)*"
_PARAM_RE = re.compile(
    r"(?<![A-Za-z0-9])(?P<key>(?i:{})=)(?P<value>{})".format("|".join(_SECRET_PARAMS), _VALUE)
)
#: What every match of _PARAM_RE contains, lower-cased ("access_token=" holds "token=", …).
_PARAM_NEEDLES = ("token=", "sign=", "secret=", "session=")
_HEADER_RE = re.compile(r"(?i)(x-acs-dingtalk-access-token['\"]?\s*[:=]\s*['\"]?)([^'\"\s,}]+)")
_DINGTALK_URL_RE = re.compile(
    r"dingtalk://(?:(?P<userinfo>[A-Za-z0-9_~%+=*….-]+)@)?(?P<token>[A-Za-z0-9_~%+=*…-]+)"
)
# Words in capitals (TOKEN, SECRET, RELAY_TOKEN) are the templates of help texts, not values:
# real tokens and secrets are hex or Base64 and always carry digits or lower-case letters.
_TEMPLATE_RE = re.compile(r"[A-Z][A-Z_]*")
# DingTalk's own deep links (dingtalk://dingtalkclient/page/link?url=…, protocol §1.3).
_DINGTALK_HOSTS = ("dingtalkclient",)


def mask(value: str | None) -> str:
    """Return a form of ``value`` safe to show: enough to tell two apart, never enough to use.

    Long values keep their first and last four characters (``6c2a…e9f0``); short ones and
    signing secrets, which have a fixed ``SEC`` prefix, show nothing but asterisks.
    """
    if not value:
        return ""
    if value.startswith("SEC") or len(value) < 16:
        return "****"
    return f"{value[:4]}…{value[-4:]}"


def redact_url(text: str) -> str:
    """Mask the values of credential query parameters and headers, and ``dingtalk://`` URLs.

    Only the values change: the text around them (a markdown link's ``)``, a closing quote, a
    sentence's full stop, the templates of a help text) is left exactly as it was.
    """
    # In ASCII text each pattern runs only where its fixed part occurs (most log lines hold
    # none). Other text always goes through them: ignoring case, the patterns also match
    # letters such as ı and ſ that lower() does not turn into i and s.
    lower = text.lower() if text.isascii() else None
    if lower is None or any(key in lower for key in _PARAM_NEEDLES):
        text = _PARAM_RE.sub(lambda m: m.group("key") + _mask_once(m.group("value")), text)
    if lower is None or "x-acs-dingtalk-access-token" in lower:
        text = _HEADER_RE.sub(lambda m: m.group(1) + _mask_once(m.group(2)), text)
    if lower is None or "dingtalk://" in text:
        text = _DINGTALK_URL_RE.sub(_mask_dingtalk_url, text)
    return text


def _mask_once(value: str) -> str:
    # A value masked before (``6c2a…e9f0``, ``****``) stays as it is: masking is idempotent.
    if "…" in value or set(value) == {"*"} or _TEMPLATE_RE.fullmatch(value):
        return value
    return mask(value)


def _mask_dingtalk_url(match: re.Match[str]) -> str:
    userinfo, token = match.group("userinfo"), match.group("token")
    if userinfo is None and token.lower() in _DINGTALK_HOSTS:
        return match.group()
    secret = "" if userinfo is None else _mask_once(userinfo) + "@"
    return f"dingtalk://{secret}{_mask_once(token)}"


class Redactor:
    """Replace known secret values, and credential-shaped URL parts, in text."""

    __slots__ = ("_any", "_secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        # A relay with 500 targets holds ~1,000 secrets: testing each with ``in`` cost ~40 µs a
        # call, on every log line. One pattern over all of them (a trie, so the regex engine
        # follows one branch per character) tells in ~1.5 µs whether any occurs at all.
        self._any: re.Pattern[str] | None = None
        if len(self._secrets) > _FEW:
            try:
                self._any = _trie_pattern(self._secrets)
            except (RecursionError, re.error):  # secrets too long to nest: test each instead
                self._any = None

    def __call__(self, text: str) -> str:
        return redact_url(self.known(text))

    def known(self, text: str) -> str:
        """Mask only the secrets this redactor was given, nothing credential-shaped.

        For text people wrote, such as a message's payload: its own links (a report's
        ``?sign=…``) are not secrets of this configuration and show as written. Logs and
        errors go through the redactor itself, which also masks the ``sign=`` of a request.
        """
        if self._any is None or self._any.search(text) is not None:
            for secret in self._secrets:
                if secret in text:
                    text = text.replace(secret, mask(secret))
        return text

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"


#: Up to this many secrets, testing each with ``in`` is faster than one pattern over them all.
_FEW = 8


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """A pattern that finds any of ``words``: their trie, one alternative per next character."""
    root: dict[str, typing.Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def branch(node: dict[str, typing.Any]) -> str:
        alternatives = [re.escape(char) + branch(child) for char, child in node.items() if char]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        return f"(?:{body})?" if "" in node else body

    return re.compile(branch(root))


class _RedactingFilter(logging.Filter):
    """Mask credentials in records of libraries that log request URLs (httpx logs them at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


_installed = False


def install_log_redaction() -> None:
    """Attach the redacting filter to the loggers that may print a DingTalk request URL."""
    global _installed
    if _installed:
        return
    for name in ("httpx", "httpcore", "dingpush"):
        logging.getLogger(name).addFilter(_RedactingFilter())
    _installed = True
