"""The relay's dashboard at ``/``: its targets, a live list of messages, one message, retries.

Server-rendered pages (Jinja2 templates of :mod:`dingpush.web`, the chat view's renderer for
the preview) and a little plain JavaScript that polls for the parts that change. The data comes
from the API's own functions (``message_page``, ``message_detail``, ``retry_failed``,
:meth:`Relay.target_views`), so the dashboard and ``/v1/…`` cannot disagree. Sign-in, sessions
and CSRF checks are in :mod:`._dashboard_auth`.

    app = create_app(relay, extra_routes=dashboard_routes(relay))
"""

from __future__ import annotations

import typing
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from dingpush.web import (
    STATIC_PACKAGE,
    MessageRenderer,
    create_environment,
    findings_for,
    time_label,
)

from ._api import RESEND_CANCELLED, message_detail, message_page, retry_failed
from ._bulk_retry import from_form, retry_dead_letters
from ._dashboard_alerts import alerts_routes
from ._dashboard_auth import DashboardAuth, Session, safe_next
from ._dashboard_views import (
    attempt_rows,
    channel_payload,
    list_rows,
    message_row,
    pretty_json,
    target_rows,
)
from ._http import HTTPProblem, read_body
from ._oncall_api import check_name
from ._playground import playground_routes
from ._recall import recall_message
from ._relay import Relay
from .stores import (
    IncidentNotFound,
    InvalidTransition,
    MessageNotFound,
    Status,
    StoreUnavailable,
)

__all__ = ["PAGE_SIZE", "dashboard_routes"]

#: Messages on one page of the list.
PAGE_SIZE = 25
#: How often the pages ask for what changed, in milliseconds.
POLL_MS = 1000
_FORM_LIMIT = 16 * 1024
_HEADERS = {
    # Message text is untrusted: no inline script can run, whatever slipped through escaping.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src * data:; media-src *; connect-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]

#: What the message's page says after a recall, by the recall's outcome.
_RECALL_NOTICES = {
    "recalled": "Recalled: DingTalk took the message out of the chat.",
    "partly_recalled": (
        "Partly recalled: DingTalk did not take every part back (see DingTalk's answer); "
        "recall again to retry them."
    ),
    "cancelled": "Cancelled: it was still queued and will not be sent (a dead letter now).",
}


class _Urls:
    """The dashboard's URLs, under whatever path the relay is mounted at."""

    def __init__(self, request: Request) -> None:
        self.root = str(request.scope.get("root_path", "")).rstrip("/")

    @staticmethod
    def _query(query: Mapping[str, str | None]) -> str:
        given = urllib.parse.urlencode({k: v for k, v in query.items() if v})
        return f"?{given}" if given else ""

    def static(self, path: str) -> str:
        return f"{self.root}/ui/static/{path}"

    def home(self, **query: str | None) -> str:
        return f"{self.root}/{self._query(query)}"

    def updates(self, **query: str | None) -> str:
        return f"{self.root}/ui/updates{self._query(query)}"

    def message(self, message_id: str) -> str:
        return f"{self.root}/ui/messages/{urllib.parse.quote(message_id, safe='')}"

    def message_updates(self, message_id: str) -> str:
        return self.message(message_id) + "/updates"

    def retry(self, message_id: str) -> str:
        return self.message(message_id) + "/retry"

    def recall(self, message_id: str) -> str:
        return self.message(message_id) + "/recall"

    def bulk_retry(self) -> str:
        return f"{self.root}/ui/retry"

    def login(self, next: str | None = None) -> str:
        return f"{self.root}/ui/login{self._query({'next': next})}"

    def logout(self) -> str:
        return f"{self.root}/ui/logout"

    def docs(self) -> str:
        return f"{self.root}/docs"


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form (no multipart: the dashboard's forms carry a few fields)."""
    body = await read_body(request, _FORM_LIMIT)
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20
        )
    except ValueError:
        raise HTTPProblem(400, "the form has too many fields") from None
    return dict(pairs)


_RETRY_FIELDS = ("target", "errcode", "error", "failed_since", "failed_before")


def _retried_notice(query: Mapping[str, str]) -> str | None:
    """After a bulk retry (``?retried=N``): what happened, and whether more are left."""
    count = query.get("retried", "")
    if not count.isdigit():
        return None
    number = int(count)
    text = f"Queued again: {number:,} dead letter{'s' if number != 1 else ''}."
    if query.get("more"):
        text += " More match the filter: retry again to queue the next ones."
    return text + _left_out(query.get("left_out", ""))


def _left_out(count: int | str) -> str:
    """Those recalled while queued that a filter without errcode ``cancelled`` left out."""
    number = count if isinstance(count, int) else int(count) if count.isdigit() else 0
    if not number:
        return ""
    were = "was" if number == 1 else "were"
    return (
        f" {number:,} recalled before sending {were} left out: "
        "put cancelled in Errcode to send them after all."
    )


def _filters(request: Request) -> dict[str, str]:
    """The list's filters from the query string; empty values mean "any"."""
    query = request.query_params
    return {k: v for k in ("status", "target", "cursor") if (v := query.get(k, "").strip())}


class _Dashboard:
    """The dashboard's request handlers, bound to one relay."""

    def __init__(self, relay: Relay, links: Sequence[tuple[str, str]], poll_ms: int) -> None:
        self.relay = relay
        self.links = tuple(links)
        self.poll_ms = poll_ms
        self.auth = DashboardAuth(relay.settings.api_tokens, hosts=relay.hosts, clock=relay.clock)
        self.environment = create_environment()
        self.renderer = MessageRenderer(environment=self.environment)

    # -- rendering -----------------------------------------------------------------------------

    def _common(self, request: Request, session: Session | None) -> dict[str, typing.Any]:
        urls = _Urls(request)
        return {
            "url": urls,
            "static_url": urls.static,
            "csrf": session.csrf if session else "",
            "signed_in": self.auth.required and session is not None,
            "links": self.links,
            "poll_ms": self.poll_ms,
        }

    def _render(self, template: str, context: Mapping[str, typing.Any]) -> str:
        # A last net under the masking done upstream (errors and replies are redacted where
        # they come from): no page carries a configured secret. Only those: a message's own
        # links show as written (issue 11).
        return self.relay.redact.known(self.environment.get_template(template).render(**context))

    def _page(
        self,
        request: Request,
        template: str,
        session: Session | None,
        *,
        status: int = 200,
        **context: typing.Any,
    ) -> Response:
        html = self._render(template, {**self._common(request, session), **context})
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def _fragments(
        self,
        request: Request,
        session: Session,
        names: Mapping[str, str],
        context: Mapping[str, typing.Any],
    ) -> Response:
        full = {**self._common(request, session), **context}
        fragments = {element: self._render(template, full) for element, template in names.items()}
        return JSONResponse({"fragments": fragments}, headers={"Cache-Control": "no-store"})

    def _error(self, request: Request, status: int, title: str, detail: str) -> Response:
        session = self.auth.session(request)
        return self._page(
            request, "dashboard/error.html", session, status=status, page_title=title, detail=detail
        )

    def _to_login(self, request: Request) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(_Urls(request).login(here), status_code=303)

    def guarded(self, handler: Handler) -> Handler:
        """Answer the outbox's failures with a page rather than a stack trace."""

        async def serve(request: Request) -> Response:
            try:
                return await handler(request)
            except MessageNotFound:
                message_id = request.path_params.get("id", "")
                return self._error(
                    request,
                    404,
                    "No such message",
                    f"The outbox has no message {message_id!r}: delivered messages are pruned "
                    "after the relay's retention period.",
                )
            except IncidentNotFound as exc:
                return self._error(request, 404, "No such incident", str(exc))
            except StoreUnavailable as exc:
                return self._error(
                    request,
                    503,
                    "The outbox is unavailable",
                    f"The outbox cannot be read right now; reload in a moment "
                    f"({self.relay.redact(str(exc))}).",
                )
            except HTTPProblem as exc:
                return self._error(request, exc.status, "Request refused", exc.detail)

        return serve

    # -- the list ------------------------------------------------------------------------------

    async def _home_context(self, request: Request) -> tuple[int, dict[str, typing.Any]]:
        filters = _filters(request)
        views = await self.relay.target_views()
        targets = target_rows(views)
        status, error, rows, next_cursor = 200, None, [], None
        try:
            page = await message_page(self.relay, {**filters, "limit": str(PAGE_SIZE)})
        except HTTPProblem as exc:  # an unknown target or status, a cursor we did not make
            status, error = exc.status, exc.detail
        else:
            rows, next_cursor = list_rows(self.relay, page.items), page.next_cursor
        urls = _Urls(request)
        return status, {
            "page_title": "Relay dashboard",
            "targets": targets,
            "target_names": sorted(self.relay.targets),
            "statuses": [s.value for s in Status],
            "filters": filters,
            "rows": rows,
            "error": error,
            "next_cursor": next_cursor,
            "updates_url": urls.updates(**filters),
            "dead_letters": sum(view["failed"] for view in views),
            "retry_form": {},
            "notice": _retried_notice(request.query_params),
        }

    async def home(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        status, context = await self._home_context(request)
        return self._page(request, "dashboard/home.html", session, status=status, **context)

    async def updates(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return JSONResponse({"login": _Urls(request).login()}, status_code=401)
        _, context = await self._home_context(request)
        names = {
            "targets-body": "dashboard/_targets.html",
            "messages-body": "dashboard/_messages.html",
            "pager": "dashboard/_pager.html",
        }
        return self._fragments(request, session, names, context)

    # -- one message ---------------------------------------------------------------------------

    async def _detail_context(self, message_id: str) -> dict[str, typing.Any]:
        detail = await message_detail(self.relay, message_id)
        payload = detail["payload"]  # masked by the relay, as the API shows it
        shown, channel = channel_payload(self.relay, detail["target"], payload, detail["kind"])
        view = self.renderer.view(shown, channel=channel)
        row = message_row(self.relay, detail, payload)
        return {
            "page_title": f"Message {message_id}",
            "message": row,
            "detail": detail,
            "originals": detail["originals"],
            "attempts": attempt_rows(detail),
            "rendered": self.renderer.render(view, sender=row.target, time=detail["created_at"]),
            "findings": findings_for(view),
            "payload_json": pretty_json(payload),
            "reply_json": None if detail["reply"] is None else pretty_json(detail["reply"]),
            "retryable": row.status.value == Status.FAILED,
            # recalled while queued (OutboxMessage.cancelled): a retry asks to confirm
            "cancelled": detail["status"] == Status.FAILED
            and detail["last_errcode"] == "cancelled",
            "recallable": self._recallable(detail),
            "incident": await self._incident_of(message_id, detail),
            "recalled": detail["recalled"],
            "recalled_at": time_label((detail["recalled"] or {}).get("at")),
            "notice": None,
            "problem": None,
        }

    async def _incident_of(self, message_id: str, detail: Mapping[str, typing.Any]) -> typing.Any:
        """The incident the message (or the digest it went out in) is about, if any."""
        for candidate in (message_id, detail.get("digest_id"), *detail["originals"]):
            if candidate:
                incident = await self.relay.incidents.find_by_message(candidate)
                if incident is not None:
                    return incident
        return None

    def _recallable(self, detail: Mapping[str, typing.Any]) -> bool:
        """An app-robot message in the chat (or on its way) that was not recalled yet."""
        target = self.relay.targets.get(detail["target"])
        if target is None or target.recall_refusal() is not None:
            return False
        recalled = detail["recalled"]
        if recalled is not None:  # some parts DingTalk did not take back: they may be retried
            reply = detail["reply"] or {}
            return int(recalled["keys"]) < len(reply.get("process_query_keys") or ())
        return "recall" in detail["links"]

    async def message(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        message_id = request.path_params["id"]
        context = await self._detail_context(message_id)
        if request.query_params.get("retried"):
            context["notice"] = "Queued again: the dispatcher takes it up at once."
        done = request.query_params.get("recalled")
        if done:
            context["notice"] = _RECALL_NOTICES.get(done, _RECALL_NOTICES["recalled"])
        urls = _Urls(request)
        return self._page(
            request,
            "dashboard/detail.html",
            session,
            updates_url=urls.message_updates(message_id),
            **context,
        )

    async def message_updates(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return JSONResponse({"login": _Urls(request).login()}, status_code=401)
        context = await self._detail_context(request.path_params["id"])
        names = {
            "detail-status": "dashboard/_detail_status.html",
            "detail-attempts": "dashboard/_attempts.html",
        }
        return self._fragments(request, session, names, context)

    async def retry(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        form = await _form(request)
        if not self.auth.form_allowed(request, session, form):
            return self._forbidden(request)
        message_id = request.path_params["id"]
        resend = form.get(RESEND_CANCELLED) == "yes"
        try:
            await retry_failed(self.relay, message_id, resend_cancelled=resend)
        except (InvalidTransition, HTTPProblem) as exc:
            context = await self._detail_context(message_id)
            status = context["message"].status.label
            context["problem"] = (
                "It was recalled before it was sent: tick “Send it after all” to retry it."
                if isinstance(exc, HTTPProblem)
                else f"Only a failed message can be retried; this one is {status}."
            )
            return self._page(request, "dashboard/detail.html", session, status=409, **context)
        target = _Urls(request).message(message_id) + "?retried=1"
        return RedirectResponse(target, status_code=303)

    async def recall_page(self, request: Request) -> Response:
        """Ask before recalling: a recall takes the message out of the chat for everyone."""
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        message_id = request.path_params["id"]
        context = await self._detail_context(message_id)
        return self._page(
            request,
            "dashboard/recall.html",
            session,
            page_title=f"Recall message {message_id}?",
            message=context["message"],
            recallable=context["recallable"],
            who=session.label,
        )

    async def recall(self, request: Request) -> Response:
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        form = await _form(request)
        if not self.auth.form_allowed(request, session, form):
            return self._forbidden(request)
        message_id = request.path_params["id"]
        given = form.get("by", "").strip()
        try:
            who = check_name(given, "by") if given else session.label
            answer = await recall_message(self.relay, message_id, who=who, via="dashboard")
        except (HTTPProblem, InvalidTransition) as exc:
            context = await self._detail_context(message_id)
            status = exc.status if isinstance(exc, HTTPProblem) else 409
            detail = exc.detail if isinstance(exc, HTTPProblem) else str(exc)
            context["problem"] = f"Not recalled: {self.relay.redact(detail)}"
            urls = _Urls(request)
            return self._page(
                request,
                "dashboard/detail.html",
                session,
                status=status,
                updates_url=urls.message_updates(message_id),
                **context,
            )
        target = _Urls(request).message(message_id) + "?recalled=" + answer["outcome"]
        return RedirectResponse(target, status_code=303)

    async def bulk_retry(self, request: Request) -> Response:
        """The home page's form: count (preview) or retry the dead letters of a filter."""
        session = self.auth.session(request)
        if session is None:
            return self._to_login(request)
        form = await _form(request)
        if not self.auth.form_allowed(request, session, form):
            return self._forbidden(request)
        retry = from_form(self.relay, form)
        result = await retry_dead_letters(self.relay, retry)
        if not retry.dry_run:
            query = {
                "retried": str(result["retried"]),
                "more": "1" if result["more"] else None,
                "left_out": str(result["cancelled_left_out"] or "") or None,
            }
            return RedirectResponse(_Urls(request).home(**query), status_code=303)
        status, context = await self._home_context(request)
        count = result["retried"]
        more = " or more" if result["more"] else ""
        context["notice"] = (
            f"{count:,}{more} dead letter{'s' if count != 1 else ''} match this filter: "
            "Retry them to queue them again."
            if count
            else "No dead letter matches this filter."
        ) + _left_out(result["cancelled_left_out"])
        context["retry_form"] = {k: form.get(k, "") for k in _RETRY_FIELDS}
        return self._page(request, "dashboard/home.html", session, status=status, **context)

    def _forbidden(self, request: Request) -> Response:
        return self._error(
            request,
            403,
            "Form refused",
            "This form did not come from this dashboard's own page (another site, or a page "
            "older than the session): go back, reload the page and try again.",
        )

    # -- signing in ----------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        next_url = safe_next(request.query_params.get("next"), _Urls(request).root)
        if self.auth.session(request) is not None:
            return RedirectResponse(next_url, status_code=303)
        return self._login_form(request, next_url)

    def _login_form(
        self, request: Request, next_url: str, error: str | None = None, status: int = 200
    ) -> Response:
        return self._page(
            request,
            "dashboard/login.html",
            None,
            status=status,
            page_title="Sign in",
            next=next_url,
            error=error,
        )

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        next_url = safe_next(form.get("next"), _Urls(request).root)
        if not self.auth.required:
            return RedirectResponse(next_url, status_code=303)
        if not self.auth.same_site(request):
            return self._forbidden(request)
        session_id = self.auth.sign_in(form.get("token", "").strip())
        if session_id is None:
            error = "That is not one of this relay's API tokens ([relay] api_tokens)."
            return self._login_form(request, next_url, error, status=401)
        response = RedirectResponse(next_url, status_code=303)
        self.auth.set_cookie(response, request, session_id)
        return response

    async def logout(self, request: Request) -> Response:
        session = self.auth.session(request)
        urls = _Urls(request)
        if session is None or not self.auth.required:
            return RedirectResponse(urls.home(), status_code=303)
        if not self.auth.form_allowed(request, session, await _form(request)):
            return self._forbidden(request)
        self.auth.sign_out(request)
        response = RedirectResponse(urls.login(), status_code=303)
        self.auth.clear_cookie(response, request)
        return response


def dashboard_routes(
    relay: Relay,
    *,
    links: Sequence[tuple[str, str]] = (),
    poll_ms: int = POLL_MS,
) -> list[BaseRoute]:
    """The dashboard's routes, for ``create_app(relay, extra_routes=…)``.

    ``/`` (targets and messages), ``/ui/messages/{id}`` (one message; ``POST …/retry``;
    ``…/recall``: a confirmation page, and ``POST`` recalls),
    ``POST /ui/retry`` (dead letters in bulk, by target, error and time),
    ``/ui/playground`` (the alert template playground), ``/ui/alerts`` (the on-call loop's
    incidents, ``_dashboard_alerts``), ``/ui/login``, ``/ui/logout``,
    ``/ui/updates`` and ``/ui/messages/{id}/updates`` (the parts
    that change, for the pages' script) and ``/ui/static/…``. ``links`` adds ``(label, path)``
    entries to the header (the embedded emulator's chat view).
    """
    view = _Dashboard(relay, links, poll_ms)
    guarded = view.guarded
    return [
        Route("/", guarded(view.home), methods=["GET"], name="dashboard"),
        Route("/ui/updates", guarded(view.updates), methods=["GET"]),
        Route("/ui/messages/{id}", guarded(view.message), methods=["GET"]),
        Route("/ui/messages/{id}/updates", guarded(view.message_updates), methods=["GET"]),
        Route("/ui/messages/{id}/retry", guarded(view.retry), methods=["POST"]),
        Route("/ui/messages/{id}/recall", guarded(view.recall_page), methods=["GET"]),
        Route("/ui/messages/{id}/recall", guarded(view.recall), methods=["POST"]),
        Route("/ui/retry", guarded(view.bulk_retry), methods=["POST"]),
        Route("/ui/login", guarded(view.login_page), methods=["GET"]),
        Route("/ui/login", guarded(view.login), methods=["POST"]),
        Route("/ui/logout", guarded(view.logout), methods=["POST"]),
        *playground_routes(view),
        *alerts_routes(view),
        Mount("/ui/static", app=StaticFiles(packages=[STATIC_PACKAGE]), name="dashboard-static"),
    ]
