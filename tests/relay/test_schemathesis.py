"""Schema-driven tests: schemathesis sends well-formed requests built from ``/openapi.json``.

For every operation the relay must never answer 5xx to a well-formed request (its outbox works
here, so a 503 would be a bug too), must answer only the statuses and bodies it documents, and
no answer may carry a secret of a target or an API token.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

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
