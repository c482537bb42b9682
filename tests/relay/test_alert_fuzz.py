"""Schema-driven tests of the alert receivers: schemathesis posts any JSON (and the route's
token, right or wrong) to every receiver; never a 5xx, only documented answers, no secret."""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, status_code_conformance

from dingpush.alerts import AlertSettings, Route
from dingpush.relay import AlertReceivers, Relay, RobotTarget
from dingpush.relay._alerts import openapi_paths
from dingpush.relay._api import ENDPOINTS
from dingpush.relay._openapi import document
from dingpush.relay._serve import RelayServer
from dingpush.testing import EmulatorServer

from ._support import fast_settings

API_TOKEN = "alert-fuzz-api-token-0123456789"
ROUTE_TOKEN = "alert-fuzz-route-token-0123456789"
ROBOT_TOKEN = "alert-fuzz-robot-token-0123456789abcdef"
SECRETS = (API_TOKEN, ROUTE_TOKEN, ROBOT_TOKEN)


def _spec() -> dict[str, typing.Any]:
    spec = document(ENDPOINTS, auth=True)
    paths = copy.deepcopy(openapi_paths())
    for item in paths.values():
        for parameter in item["post"]["parameters"]:
            if parameter["name"] == "route":  # the configured table, so bodies reach the parser
                parameter["schema"] = {"enum": ["ops"]}
            if parameter["name"] == "token":
                parameter["schema"] = {"enum": [ROUTE_TOKEN, "not-the-route-token"]}
    spec["paths"] = paths
    return spec


schema = schemathesis.openapi.from_dict(_spec())


@pytest.fixture(scope="module")
def relay_url() -> Iterator[str]:
    with EmulatorServer() as emulator:
        emulator.add_robot("ops", ROBOT_TOKEN)
        alerts = AlertReceivers(
            AlertSettings(routes={"ops": Route(targets=["ops"])}), tokens={"ops": ROUTE_TOKEN}
        )
        relay = Relay(
            [RobotTarget("ops", emulator.webhook_url("ops"))],
            settings=fast_settings(api_tokens=(API_TOKEN,), port=0),
            alerts=alerts,
        )
        with RelayServer(relay) as server:
            yield server.url


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_any_json_to_any_receiver_is_never_a_server_error(case: typing.Any, relay_url: str) -> None:
    response = case.call(
        base_url=relay_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30
    )
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
    for secret in SECRETS:
        assert secret not in response.text, (case.method, case.formatted_path, response.text)
