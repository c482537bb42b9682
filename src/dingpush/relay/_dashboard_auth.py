"""Who may use the dashboard: a login form for the API tokens, sessions, and CSRF checks.

With ``api_tokens`` in ``[relay]``, a browser signs in once with one of them; the relay keeps
the session in memory and gives the browser only an opaque random id in a cookie (``HttpOnly``,
``SameSite=Strict``, ``Path=/``, ``Secure`` over https). The bearer token itself is never stored
in the cookie, and sessions end when the process restarts. Every form that changes something
(retry, log out) carries a per-session CSRF token and is refused when the browser says it comes
from another site. Without tokens (loopback only, as the relay enforces) the dashboard is open,
and its forms still carry a per-process CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from dingpush import Clock
from dingpush.lowlevel import SYSTEM_CLOCK

from ._http import LOOPBACK_NAMES, RelayHosts, cross_site, own_page, token_matches

__all__ = ["COOKIE", "DashboardAuth", "Session", "safe_next"]

#: The session cookie's name.
COOKIE = "dingpush_session"
#: How long a sign-in lasts, at most (a restart ends it sooner).
SESSION_LIFETIME = 12 * 3600.0
#: Sessions kept at once; signing in beyond it ends the oldest (only token holders sign in).
MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its CSRF token, and when the sign-in ends."""

    csrf: str
    expires: float
    #: Who acts in this session, as acknowledgements and recalls record it: the label of the
    #: API token it signed in with (``api token #2``), ``dashboard`` on an open dashboard.
    label: str = "dashboard"


def _digest(session_id: str) -> str:
    # Sessions are kept under a hash of their id: the relay's memory holds no usable cookie.
    return hashlib.sha256(session_id.encode()).hexdigest()


class DashboardAuth:
    """Sessions and CSRF checks of one dashboard, for the relay's API tokens.

    Args:
        tokens: The relay's API tokens; none means the dashboard is open (no sign-in).
        hosts: The relay's names and own origins (``Relay.hosts``; loopback names when
            omitted): a form is accepted only from a page at one of them, whatever the
            request's ``Host`` says.
        clock: Where time comes from (sessions expire after ``lifetime`` seconds).
        lifetime: How long a sign-in lasts.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        hosts: RelayHosts | None = None,
        clock: Clock | None = None,
        lifetime: float = SESSION_LIFETIME,
    ) -> None:
        self._tokens = tuple(tokens)
        self._hosts = hosts or RelayHosts(frozenset(LOOPBACK_NAMES))
        self._clock = clock or SYSTEM_CLOCK
        self._lifetime = lifetime
        self._sessions: dict[str, Session] = {}
        # Open dashboards still put a CSRF token in their forms: one for the process.
        self._open = Session(secrets.token_urlsafe(32), float("inf"))

    def __repr__(self) -> str:
        mode = "open" if not self.required else f"{len(self._sessions)} sessions"
        return f"<DashboardAuth {mode}>"

    @property
    def required(self) -> bool:
        """Whether a browser must sign in (the relay has API tokens)."""
        return bool(self._tokens)

    # -- sessions ------------------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        """The request's session: the open one without tokens, None when not signed in."""
        if not self.required:
            return self._open
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        key = _digest(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires <= self._clock.time():
            del self._sessions[key]
            return None
        return session

    def sign_in(self, token: str) -> str | None:
        """Start a session for a valid API ``token``; return the cookie's value (or None)."""
        if not self.required or not token_matches(token, self._tokens):
            return None
        now = self._clock.time()
        self._forget_expired(now)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        session_id = secrets.token_urlsafe(32)
        number = next(i for i, t in enumerate(self._tokens, 1) if token_matches(token, [t]))
        self._sessions[_digest(session_id)] = Session(
            secrets.token_urlsafe(32), now + self._lifetime, f"api token #{number}"
        )
        return session_id

    def sign_out(self, request: Request) -> None:
        """End the request's session, if any."""
        session_id = request.cookies.get(COOKIE)
        if session_id:
            self._sessions.pop(_digest(session_id), None)

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]

    # -- cookies -------------------------------------------------------------------------------

    @staticmethod
    def set_cookie(response: Response, request: Request, session_id: str) -> None:
        """Give the browser its session id: a session cookie scripts cannot read."""
        response.set_cookie(
            COOKIE,
            session_id,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def clear_cookie(response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    # -- CSRF ----------------------------------------------------------------------------------

    def form_allowed(self, request: Request, session: Session, form: dict[str, str]) -> bool:
        """Whether a form post comes from this dashboard's own page in this session."""
        given = form.get("csrf", "")
        return self.same_site(request) and hmac.compare_digest(
            given.encode(), session.csrf.encode()
        )

    def same_site(self, request: Request) -> bool:
        """False when the browser says the request comes from another site.

        ``Origin`` (or, without it, ``Referer``) must be one of the relay's own origins, which
        come from its settings (``RelayHosts``), never from the request's ``Host``: a
        DNS-rebinding page sends its own name there. Browsers send ``Origin`` with every form
        post; a request without it (a tool, not a browser) still needs the CSRF token.
        """
        if cross_site(request, self._hosts) is not None:
            return False
        if request.headers.get("origin") is None:
            referer = request.headers.get("referer")
            if referer is not None:
                parts = urllib.parse.urlsplit(referer)
                return own_page(request, self._hosts, f"{parts.scheme}://{parts.netloc}")
        return True


def safe_next(value: str | None, root: str) -> str:
    """Where to go after signing in: a path on this relay only, never another site."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return root + "/"
