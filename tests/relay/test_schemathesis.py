"""Schema-driven tests: schemathesis sends well-formed requests built from ``/openapi.json``.

For every operation the relay must never answer 5xx to a well-formed request (its outbox works
here, so a 503 would be a bug too), must answer only the statuses and bodies it documents, and
no answer may carry a secret of a target or an API token. The same generated bodies, given a
lone surrogate in one string or nested thousands of levels deep at one value, must be refused
with a 400 (DingTalk's 40035 at the ingress), never a 5xx.
"""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dingpush import sign
from dingpush.relay import Relay, RobotTarget, TargetOptions
from dingpush.relay._api import ENDPOINTS
from dingpush.relay._openapi import document
from dingpush.relay._serve import RelayServer
from dingpush.testing import EmulatorServer

from ._support import fast_settings

API_TOKEN = "schemathesis-api-token-0123456789"
ROBOT_TOKEN = "5c4e1f8a9b0d3e2f7a6c5b4e3d2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
ROBOT_SECRET = "SEC5b1e2d3c4b5a69788796a5b4c3d2e1f0"
INGRESS_TOKEN = "ingress-token-schemathesis-42"
INGRESS_SECRET = "SECingress-secret-for-schemathesis"
SECRETS = (API_TOKEN, ROBOT_TOKEN, ROBOT_SECRET, INGRESS_TOKEN, INGRESS_SECRET)

schema = schemathesis.openapi.from_dict(document(ENDPOINTS, auth=True))


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    with EmulatorServer() as emulator:
        emulator.add_robot("ops", ROBOT_TOKEN, secret=ROBOT_SECRET)
        target = RobotTarget(
            "ops",
            emulator.webhook_url("ops"),
            secret=ROBOT_SECRET,
            options=TargetOptions(ingress_token=INGRESS_TOKEN, ingress_secret=INGRESS_SECRET),
        )
        relay = Relay([target], settings=fast_settings(api_tokens=(API_TOKEN,), port=0))
        with RelayServer(relay) as server:
            yield server.url


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_no_secret_in_any_answer(case: typing.Any, relay_url: str) -> None:
    response = case.call(
        base_url=relay_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30
    )
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    for secret in SECRETS:
        assert secret not in response.text
        assert all(secret not in value for value in response.headers.values())


# -- bodies no schema describes: lone surrogates and deep nesting (issue 11, item 4) -----------

BODY_OPERATIONS = [(e.method, e.path) for e in ENDPOINTS if e.body is not None]
DEPTHS = (33, 100, 3_000, 100_000)


def _strings(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Paths to every string (value, or key: the path then ends in a ("key", k) marker)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield (*path, ("key", key))
            yield from _strings(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*path, index))


def _values(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _values(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _values(child, (*path, index))


def _replace(value: typing.Any, path: tuple[object, ...], new: typing.Any) -> typing.Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(head, tuple):  # rename a key, keeping its value
        return {(new if k == head[1] else k): v for k, v in value.items()}
    copy: typing.Any = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


def _at(value: typing.Any, path: tuple[object, ...]) -> typing.Any:
    for part in path:
        value = part[1] if isinstance(part, tuple) else value[part]
    return value


def _with_surrogate(body: typing.Any, data: st.DataObject) -> bytes:
    paths = list(_strings(body))
    if not paths:  # a key to cut into ("\ud800" could pair up with the half drawn below)
        body, paths = {"x": body}, [(("key", "x"),)]
    path = data.draw(st.sampled_from(paths))
    text = _at(body, path)
    cut = data.draw(st.integers(0, len(text)))
    half = chr(data.draw(st.integers(0xD800, 0xDFFF)))
    return json.dumps(_replace(body, path, text[:cut] + half + text[cut:])).encode()


def _nested(body: typing.Any, data: st.DataObject) -> bytes:
    path = data.draw(st.sampled_from(list(_values(body))))
    depth = data.draw(st.sampled_from(DEPTHS))
    marker = "\x00nested\x00"
    inner = json.dumps(_at(body, path))
    text = json.dumps(_replace(body, path, marker))
    return text.replace(json.dumps(marker), "[" * depth + inner + "]" * depth).encode()


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
@given(data=st.data())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_lone_surrogates_and_deep_nesting_are_refused_never_a_5xx(
    method: str, path: str, data: st.DataObject, relay_url: str
) -> None:
    case = data.draw(schema[path][method].as_strategy())
    mutate = data.draw(st.sampled_from([_with_surrogate, _nested]))
    # An optional body may be left out: mutate an empty object then.
    body = case.body if isinstance(case.body, dict | list | str | int | float) else {}
    content = mutate(body, data)
    params: dict[str, str] = {}
    if path == "/robot/send":  # past the token and 加签 checks, to the body
        now_ms = int(time.time() * 1000)
        params = {
            "access_token": INGRESS_TOKEN,
            "timestamp": str(now_ms),
            "sign": sign(INGRESS_SECRET, now_ms),
        }
    response = httpx.request(
        method,
        relay_url + case.formatted_path,
        params=params,
        content=content,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code < 500, response.text
    if path == "/robot/send":
        assert response.json()["errcode"] == 40035, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["rule"] in ("Unicode text", "at most 32 levels of nesting")
    for secret in SECRETS:
        assert secret not in response.text
