"""Alertmanager's API v2 silences: what ``@robot silence 2h`` makes.

A silence is made for an incident's labels (the alert group's common labels, as equality
matchers), with the person who asked as ``createdBy``, a comment naming the incident, and
``endsAt`` = now + the duration asked for::

    [relay]
    alertmanager_url = "http://127.0.0.1:9093"   # credentials may sit in the URL (basic auth)

Errors are :class:`AlertmanagerError` values that name Alertmanager's URL (never the
credentials it may carry) and say what to fix.
"""

from __future__ import annotations

import datetime
import json
import re
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from dingpush import ConfigError, DingPushError

__all__ = ["AlertmanagerError", "Silence", "Silences", "filters", "matchers", "public_url"]

#: The API v2 path silences are created at and listed from.
SILENCES_PATH = "/api/v2/silences"


class AlertmanagerError(DingPushError):
    """Alertmanager did not make the silence; the message says why and what to fix.

    ``transient`` is true when trying again later may work (Alertmanager down, a 5xx).
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.transient = transient


def public_url(url: str) -> str:
    """``url`` without the user and password it may carry (for messages and logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


def matchers(labels: Mapping[str, str]) -> list[dict[str, typing.Any]]:
    """Equality matchers for every label (API v2 ``matchers``), sorted by name."""
    return [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(labels.items())
    ]


def _iso(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence Alertmanager made: its id, until when, and for which labels."""

    id: str
    created_by: str
    starts_at: float
    ends_at: float
    labels: Mapping[str, str]
    comment: str


class Silences:
    """An async client of one Alertmanager's silences (``POST /api/v2/silences``).

    Args:
        url: Alertmanager's base URL (``http://127.0.0.1:9093``); ``user:password@`` in it is
            sent as basic auth and never shown.
        timeout: seconds a call may take.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"alertmanager_url = {public_url(url)!r} is not an http(s) URL: write where "
                'Alertmanager listens, e.g. "http://127.0.0.1:9093"'
            )
        auth = None
        if parts.username is not None:
            auth = httpx.BasicAuth(
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            )
        self.url = public_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url, auth=auth, timeout=timeout, transport=transport, trust_env=False
        )

    def __repr__(self) -> str:
        return f"Silences({self.url!r})"

    async def create(
        self,
        labels: Mapping[str, str],
        *,
        created_by: str,
        comment: str,
        duration: float,
        now: float,
    ) -> Silence:
        """Silence alerts with exactly these labels for ``duration`` seconds from ``now``."""
        if not labels:
            raise AlertmanagerError(
                "the incident has no common labels to silence by: silence it in Alertmanager's "
                f"web page ({self.url}/#/silences/new) instead"
            )
        if duration <= 0:
            raise AlertmanagerError("a silence must last longer than zero: ask e.g. for 2h")
        body = {
            "matchers": matchers(labels),
            "startsAt": _iso(now),
            "endsAt": _iso(now + duration),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._call("POST", SILENCES_PATH, body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError(
                f"Alertmanager at {self.url} answered without a silenceID: is this URL an "
                "Alertmanager (API v2, version 0.16 or later)?"
            )
        return Silence(silence_id, created_by, now, now + duration, dict(labels), comment)

    async def firing(self, labels: Mapping[str, str]) -> int:
        """How many alerts with these labels Alertmanager still has (silenced ones included).

        Alertmanager sends no resolved notification for alerts that were silenced when they
        resolved; asking is how the relay learns that a silenced incident is over.
        """
        query = [("filter", f) for f in filters(labels)]
        query += [(flag, "true") for flag in ("active", "silenced", "inhibited", "unprocessed")]
        answer = await self._call("GET", "/api/v2/alerts?" + urllib.parse.urlencode(query), None)
        if not isinstance(answer, list):
            raise AlertmanagerError(
                f"Alertmanager at {self.url} answered /api/v2/alerts without a list: is this "
                "URL an Alertmanager?"
            )
        # The filter narrows; the count is of the alerts that carry every label exactly (a
        # label the filter cannot express is checked here only).
        return sum(1 for item in answer if _carries(item, labels))

    async def expire(self, silence_id: str) -> None:
        """End a silence now (``DELETE /api/v2/silence/{id}``)."""
        await self._call("DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id)}", None)

    async def _call(self, method: str, path: str, body: object) -> typing.Any:
        where = f"Alertmanager at {self.url}"
        try:
            response = await self._http.request(
                method,
                path,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except httpx.TimeoutException:
            raise AlertmanagerError(
                f"{where} did not answer in time: check that it is up and reachable from the "
                "relay ([relay] alertmanager_url)",
                transient=True,
            ) from None
        except httpx.HTTPError as exc:
            raise AlertmanagerError(
                f"{where} cannot be reached ({type(exc).__name__}): check that it runs and "
                "that [relay] alertmanager_url points at it",
                transient=True,
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise AlertmanagerError(
                f"{where} refused the relay's credentials (HTTP {status}): put the user and "
                "password its proxy expects in [relay] alertmanager_url "
                '("http://user:password@host:9093")',
                status_code=status,
            )
        if status == 404:
            raise AlertmanagerError(
                f"{where} has no {path} (HTTP 404): the URL must be Alertmanager's base URL "
                "(with its --web.route-prefix, if any), and Alertmanager 0.16 or later",
                status_code=status,
            )
        if status >= 400:
            detail = _detail(response.content)
            raise AlertmanagerError(
                f"{where} refused the request (HTTP {status}: {detail})"
                + ("; it may work later" if status >= 500 else ""),
                status_code=status,
                transient=status >= 500,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerError(
                f"{where} answered HTTP {status} with something that is not JSON: is this URL "
                "an Alertmanager?",
                status_code=status,
            ) from None

    async def aclose(self) -> None:
        await self._http.aclose()


#: A label name Alertmanager's filter takes as it is (Prometheus's label names).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def filters(labels: Mapping[str, str]) -> list[str]:
    r"""The ``filter`` matchers (``/api/v2/alerts?filter=…``) that select alerts with ``labels``.

    Each is ``name="value"``, the value double-quoted with ``\\``, ``\"`` and ``\n`` escaped:
    what both of Alertmanager's matcher parsers (the classic one and the UTF-8 one of 0.27+)
    read as exactly that value, whatever quotes, commas, braces or backslashes it holds. A
    label whose name is not a plain label name (``service.name``, ``a!``) is left out rather
    than written so that it reads as another matcher (``a!="x"`` is ``a != "x"``): leaving
    one out only widens the answer, which :meth:`Silences.firing` checks label by label.
    """
    written = []
    for name, value in sorted(labels.items()):
        if not _LABEL_NAME.fullmatch(name) or not _encodable(value):
            continue
        quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        written.append(f'{name}="{quoted}"')
    return written


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not a value Alertmanager can hold
        return False
    return True


def _carries(alert: object, labels: Mapping[str, str]) -> bool:
    """Whether an alert of ``/api/v2/alerts`` has every one of ``labels``, exactly.

    An empty value is an absent label, as in Alertmanager's own matching.
    """
    if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
        return False
    have = alert["labels"]
    return all(have.get(name, "") == value for name, value in labels.items())


def _detail(content: bytes) -> str:
    """Alertmanager's error body: a JSON string (API v2) or text, shortened."""
    text = content.decode("utf-8", "replace").strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or json.dumps(value)
    return str(value)[:300] or "no detail"
