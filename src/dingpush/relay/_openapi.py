"""``/openapi.json`` from ``ENDPOINTS``, and ``/docs``: a self-contained page that reads it.

The page carries its own script and style (no CDN: the relay may run where there is no
internet) and lists every operation with its parameters, body and answers.
"""

from __future__ import annotations

import typing
from importlib import resources

from dingpush import __version__

from ._api import Endpoint
from ._http import OPEN_PATHS
from ._schemas import SCHEMAS

__all__ = ["docs_page", "document"]

_DESCRIPTION = (
    "dingpush relay: accepts DingTalk messages durably and delivers them at DingTalk's pace, "
    "with retries, digests and dead letters. A 202 means the message is committed to the "
    "outbox; a 5xx means nothing was stored and the request may be retried (a 4xx never "
    "has a transient cause). Errors are application/problem+json."
)


def _content(schema: str | None, media_type: str) -> dict[str, typing.Any]:
    if schema is None:
        return {media_type: {"schema": {"type": "string"}}}
    kind = "application/problem+json" if schema == "Problem" else media_type
    return {kind: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _guard_answers(endpoint: Endpoint) -> dict[int, tuple[str, str | None]]:
    """What HostGuard and the API's guard answer on this operation (``_http``, ``_api``)."""
    answers: dict[int, tuple[str, str | None]] = {}
    if endpoint.path not in OPEN_PATHS:
        answers[421] = ("The Host names no name of this relay (see allowed_hosts).", "Problem")
    if endpoint.method != "GET" and endpoint.tag != "ingress":
        answers[403] = (
            "Without API tokens: a browser's request from another site (Origin, "
            "Sec-Fetch-Site) changes nothing.",
            "Problem",
        )
        if endpoint.body is not None:
            answers[415] = ("The body is not declared as application/json.", "Problem")
    return answers


def _operation(endpoint: Endpoint) -> dict[str, typing.Any]:
    responses = {**_guard_answers(endpoint), **endpoint.responses}
    operation: dict[str, typing.Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": {
            str(status): {"description": text, "content": _content(schema, endpoint.media_type)}
            for status, (text, schema) in sorted(responses.items())
        },
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": dict(p.schema),
            }
            for p in endpoint.params
        ]
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": endpoint.body_required,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{endpoint.body}"}}
            },
        }
    if not endpoint.auth:
        operation["security"] = []
    operation.update(endpoint.extra)
    return operation


def document(endpoints: typing.Iterable[Endpoint], *, auth: bool) -> dict[str, typing.Any]:
    """The OpenAPI 3.1 description of ``endpoints``."""
    paths: dict[str, dict[str, typing.Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    doc: dict[str, typing.Any] = {
        "openapi": "3.1.0",
        "info": {"title": "dingpush relay", "version": __version__, "description": _DESCRIPTION},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc


def docs_page() -> str:
    """The ``/docs`` page (package data, so it ships in the wheel)."""
    return resources.files(__package__).joinpath("docs.html").read_text(encoding="utf-8")
