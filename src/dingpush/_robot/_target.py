"""Where a robot message goes: a webhook URL, a bare token, or an apprise-style dingtalk:// URL."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass, field

from dingpush._errors import ConfigError
from dingpush._masking import mask, redact_url

__all__ = ["DEFAULT_OAPI_BASE", "WebhookTarget", "oapi_base", "parse_robot_target"]

DEFAULT_OAPI_BASE = "https://oapi.dingtalk.com"
_WEBHOOK_PATH = "/robot/send"


def oapi_base(explicit: str | None = None) -> str:
    """The oapi host: an explicit setting, then ``$DINGPUSH_OAPI_BASE``, then DingTalk's."""
    base = explicit or os.environ.get("DINGPUSH_OAPI_BASE") or DEFAULT_OAPI_BASE
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"the oapi base {base!r} is not an http(s) URL: give e.g. https://oapi.dingtalk.com "
            "or the emulator's http://127.0.0.1:PORT"
        )
    return base.rstrip("/")


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A custom robot's endpoint, token, optional signing secret and default mentions."""

    endpoint: str
    token: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    mentions: tuple[str, ...] = ()
    markdown: bool = False

    def __repr__(self) -> str:
        return f"WebhookTarget({self.display!r}, signed={self.secret is not None})"

    @property
    def display(self) -> str:
        """The webhook URL with its token masked, safe for logs and output."""
        return f"{self.endpoint}?access_token={mask(self.token)}"

    @property
    def key(self) -> str:
        """A stable, secret-free identity of the robot (endpoint host plus token digest)."""
        digest = hashlib.sha256(f"{self.endpoint}\n{self.token}".encode()).hexdigest()
        return f"robot:{digest[:20]}"


def parse_robot_target(
    target: str | WebhookTarget, *, secret: str | None = None, base_url: str | None = None
) -> WebhookTarget:
    """Read any accepted form of a robot target; ``secret=`` wins over one in the URL."""
    if isinstance(target, WebhookTarget):
        parsed = target if secret is None else dataclasses.replace(target, secret=secret)
        _check_secret(parsed.secret)
        return parsed
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(
            "the robot target is empty: give the webhook URL "
            "(https://oapi.dingtalk.com/robot/send?access_token=…), its access_token, "
            "or a dingtalk://SECRET@TOKEN URL"
        )
    target = target.strip()
    if target.startswith("dingtalk://"):
        parsed = _parse_dingtalk_url(target, base_url)
    elif "://" in target:
        parsed = _parse_webhook_url(target)
    else:
        if "/" in target or "?" in target or "=" in target:
            raise ConfigError(
                f"{mask(target)!r} is neither a webhook URL nor a bare access_token: give the "
                "whole URL starting with https:// or only the value after access_token="
            )
        if not _TOKEN.fullmatch(target):
            raise ConfigError(
                f"{mask(target)!r} is not a webhook: give the URL starting with https:// "
                f"(https://oapi.dingtalk.com{_WEBHOOK_PATH}?access_token=…) or only its "
                "access_token, which is letters and digits (DingTalk's are 64 hex characters)"
            )
        parsed = WebhookTarget(oapi_base(base_url) + _WEBHOOK_PATH, target)
    if not _TOKEN.fullmatch(parsed.token):
        raise ConfigError(
            f"the access_token {mask(parsed.token)!r} has characters no webhook token has "
            "(spaces, slashes, quotes…): copy the webhook URL again from the robot's settings"
        )
    if secret is not None:
        parsed = dataclasses.replace(parsed, secret=secret)
    _check_secret(parsed.secret)
    return parsed


#: What a webhook token looks like: DingTalk's are 64 hex characters; emulators and tests use
#: names (``sandbox-token``), so letters, digits, ``-``, ``_`` and ``.`` pass, nothing else.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")


def _parse_webhook_url(url: str) -> WebhookTarget:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    token = (query.get("access_token") or [""])[0]
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{redact_url(url)!r} is not a webhook URL: a robot target is an https:// webhook "
            "URL, a dingtalk://SECRET@TOKEN URL or a bare access_token"
        )
    if not token:
        raise ConfigError(
            f"the webhook URL {redact_url(url)!r} has no access_token: copy the whole URL from the "
            "robot's settings in the group"
        )
    if parts.scheme == "http" and parts.hostname and parts.hostname.endswith("dingtalk.com"):
        raise ConfigError("DingTalk's endpoints are https:// only: use https://oapi.dingtalk.com")
    endpoint = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path or _WEBHOOK_PATH, "", "")
    )
    return WebhookTarget(endpoint, token)


def _parse_dingtalk_url(url: str, base_url: str | None) -> WebhookTarget:
    # apprise's form: dingtalk://{token}/, dingtalk://{secret}@{token}/{mobile}/..., with
    # ?token=, ?secret=, ?to= and ?format=markdown also honoured.
    parts = urllib.parse.urlsplit(url)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
    netloc = parts.netloc
    secret = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        secret = urllib.parse.unquote(userinfo) or None
    token = query.get("token") or urllib.parse.unquote(netloc)
    secret = query.get("secret") or secret
    mentions = [urllib.parse.unquote(p) for p in parts.path.split("/") if p]
    mentions += [m for m in query.get("to", "").replace(";", ",").split(",") if m.strip()]
    if not token:
        raise ConfigError(f"{redact_url(url)!r} has no token: use dingtalk://SECRET@TOKEN/")
    return WebhookTarget(
        oapi_base(base_url) + _WEBHOOK_PATH,
        token,
        secret,
        tuple(m.strip().lstrip("@") for m in mentions),
        query.get("format", "text").lower() == "markdown",
    )


def _check_secret(secret: str | None) -> None:
    if secret is not None and not secret.startswith("SEC"):
        raise ConfigError(
            "the signing secret does not start with SEC: copy it whole from 加签 in the "
            "robot's security settings (the string beginning with SEC)"
        )
