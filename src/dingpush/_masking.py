"""Masking of secrets at every boundary: reprs, logs, exceptions, CLI output, API answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["Redactor", "install_log_redaction", "mask", "redact_url"]

# Query parameters and headers that carry credentials in DingTalk requests.
_SECRET_PARAMS = ("access_token", "sign", "appsecret", "appSecret", "session")
_PARAM_RE = re.compile(r"(?P<key>(?:{})=)(?P<value>[^&\s\"'<>]+)".format("|".join(_SECRET_PARAMS)))
_HEADER_RE = re.compile(r"(?i)(x-acs-dingtalk-access-token['\"]?\s*[:=]\s*['\"]?)([^'\"\s,}]+)")
_DINGTALK_URL_RE = re.compile(r"dingtalk://(?P<userinfo>[^@/\s]+@)?(?P<token>[^/?\s]+)")


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
    """Mask credential-bearing query parameters, headers and ``dingtalk://`` URLs in ``text``."""
    text = _PARAM_RE.sub(lambda m: m.group("key") + _mask_once(m.group("value")), text)
    text = _HEADER_RE.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    return _DINGTALK_URL_RE.sub(_mask_dingtalk_url, text)


def _mask_once(value: str) -> str:
    # A value masked before (``6c2a…e9f0``, ``****``) stays as it is: masking is idempotent.
    return value if value == "****" or "…" in value else mask(value)


def _mask_dingtalk_url(match: re.Match[str]) -> str:
    userinfo = "****@" if match.group("userinfo") else ""
    return f"dingtalk://{userinfo}{mask(match.group('token'))}"


class Redactor:
    """Replace known secret values, and credential-shaped URL parts, in text."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, mask(secret))
        return redact_url(text)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"


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
