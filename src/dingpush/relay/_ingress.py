"""The DingTalk-compatible ingress: ``POST /robot/send?access_token=RELAY_TOKEN[&timestamp&sign]``.

Tools that only know a webhook URL (DingtalkChatbot, Grafana, Jenkins, CI plugins) gain the
outbox by changing the host: each target has its own relay token (and optionally a ``SEC…``
secret checked like DingTalk's 加签), the body is a robot message (protocol §1.3), and the answer
is DingTalk's ``{"errcode":0,"errmsg":"ok"}`` once the message is committed. Refusals use
DingTalk's codes with HTTP 200, as DingTalk does; a store that cannot commit answers 503, so
the sender retries. A ``msgUuid`` in the body makes the sender's retries idempotent.
"""

from __future__ import annotations

import hmac
import json
import typing

from starlette.requests import Request
from starlette.responses import Response

from dingpush import sign

from ._http import BodyTooLarge, HTTPProblem, cross_site, parse_json, read_body, require_json
from ._relay import Relay
from .stores import StoreUnavailable

__all__ = ["robot_send"]

#: DingTalk's signature window (protocol §1.2): a timestamp more than an hour away is refused.
SIGNATURE_WINDOW_MS = 3_600_000


def _reply(errcode: int, errmsg: str, status: int = 200, **extra: typing.Any) -> Response:
    body = {"errcode": errcode, "errmsg": errmsg, **extra}
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        # A 503 says when to come back, as the API's does: senders that honour it wait.
        headers={"Retry-After": "1"} if status == 503 else None,
    )


def _signature_error(secret: str, query: typing.Mapping[str, str], now_ms: int) -> str | None:
    timestamp, given = query.get("timestamp"), query.get("sign")
    if not timestamp or not given:
        return "sign not match: this relay target requires timestamp and sign (加签)"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        return "invalid timestamp: not epoch milliseconds"
    if abs(now_ms - int(timestamp)) > SIGNATURE_WINDOW_MS:
        return "invalid timestamp: more than an hour away from the relay's clock"
    if not hmac.compare_digest(sign(secret, int(timestamp)).encode(), given.encode()):
        return "sign not match"
    return None


async def robot_send(relay: Relay, request: Request) -> Response:
    """Accept a robot message for the target whose relay token is ``access_token``."""
    query = request.query_params
    target = relay.ingress.get(query.get("access_token") or "")
    if target is None:
        return _reply(300001, "token is not exist: not a relay target's ingress token")
    secret = target.options.ingress_secret
    if secret is not None:
        why = _signature_error(secret, query, int(relay.clock.time() * 1000))
        if why is not None:
            return _reply(310000, why)
    if not relay.settings.api_tokens:
        # An ingress token is no secret from a page the user opens when it is the sandbox's;
        # a browser's cross-site post is refused like a failed security check (310000).
        why = cross_site(request, relay.hosts)
        if why is not None:
            return _reply(310000, f"security check failed: cross-site request refused ({why})")
    try:
        require_json(request)
    except HTTPProblem:
        # DingTalk takes a JSON body (protocol §1.1); 43004 is its answer to any other (§1.6).
        declared = request.headers.get("content-type") or "none"
        return _reply(
            43004, f"无效的HTTP HEADER Content-Type: send application/json, not {declared!r}"
        )
    try:
        body = await read_body(request, relay.settings.max_body)
    except BodyTooLarge:
        return _reply(460101, f"body too large: over the relay's {relay.settings.max_body} bytes")
    # A body DingTalk could not take is 40035 缺少参数 json, an unknown msgtype 400105 and an
    # oversized one 460101 (protocol §1.6); wrong JSON types (strict, see parse_message) are
    # refused with 40035 too. Unknown fields are ignored, as DingTalk seems to (§9.6).
    try:
        payload = parse_json(body)
        accepted = relay.check(target, payload, "")
    except HTTPProblem as exc:
        # Only a msgtype dingpush does not know is 400105; one that is not text at all is 40035.
        code = 400105 if exc.status == 422 and exc.field == "msgtype" else 40035
        if exc.rule == "size limit":
            code = 460101
        return _reply(code, exc.detail if code != 40035 else f"缺少参数 json: {exc.detail}")
    key = request.headers.get("idempotency-key") or None
    msg_uuid = payload.get("msgUuid") if isinstance(payload, dict) else None
    if key is None and isinstance(msg_uuid, str) and msg_uuid:
        key = f"ingress:{target.name}:{msg_uuid}"
    if key is not None and len(key) > 300:
        key = None
    try:
        answer = await relay.enqueue(accepted, key)
    except StoreUnavailable as exc:
        return _reply(
            -1, f"系统繁忙: the relay cannot store the message now ({relay.redact(str(exc))})", 503
        )
    return _reply(0, "ok", relay_id=answer.id)
