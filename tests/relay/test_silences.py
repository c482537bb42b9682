"""The Alertmanager API v2 silences client, against the real Alertmanager binary."""

from __future__ import annotations

import json
import pathlib
import time
import typing
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from bench._alertmanager import Alertmanager, free_port

from dingpush import ConfigError
from dingpush.relay._silences import (
    AlertmanagerError,
    Silences,
    filters,
    matchers,
    public_url,
)


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    directory: pathlib.Path = tmp_path_factory.mktemp("am")
    with Alertmanager(directory, f"http://127.0.0.1:{free_port()}/nowhere") as am:
        yield am


def _silences(am: Alertmanager) -> list[dict[str, typing.Any]]:
    with urllib.request.urlopen(f"{am.url}/api/v2/silences", timeout=10) as reply:
        return list(json.loads(reply.read()))


@pytest.mark.anyio
async def test_a_silence_has_the_labels_as_equality_matchers_and_the_person_as_creator(
    alertmanager: Alertmanager,
) -> None:
    labels = {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"}
    client = Silences(alertmanager.url)
    now = time.time()
    try:
        silence = await client.create(
            labels,
            created_by="alice",
            comment="dingpush incident #42: DiskFull",
            duration=7200,
            now=now,
        )
    finally:
        await client.aclose()
    assert silence.id and silence.ends_at == now + 7200
    (made,) = [s for s in _silences(alertmanager) if s["id"] == silence.id]
    assert made["createdBy"] == "alice"
    assert made["comment"] == "dingpush incident #42: DiskFull"
    assert made["status"] == {"state": "active"}
    assert sorted(
        (m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in made["matchers"]
    ) == [
        ("alertname", "DiskFull", False, True),
        ("instance", "db-1", False, True),
        ("severity", "critical", False, True),
    ]
    ends = made["endsAt"]
    assert isinstance(ends, str) and ends.startswith(
        time.strftime("%Y-%m-%d", time.gmtime(now + 7200))
    )


@pytest.mark.anyio
async def test_an_expired_silence_shows_as_expired(alertmanager: Alertmanager) -> None:
    client = Silences(alertmanager.url)
    try:
        silence = await client.create(
            {"alertname": "X"}, created_by="bob", comment="c", duration=60, now=time.time()
        )
        await client.expire(silence.id)
    finally:
        await client.aclose()
    (made,) = [s for s in _silences(alertmanager) if s["id"] == silence.id]
    assert made["status"] == {"state": "expired"}


@pytest.mark.anyio
async def test_alertmanager_refusing_says_why(alertmanager: Alertmanager) -> None:
    client = Silences(alertmanager.url)
    try:
        with pytest.raises(AlertmanagerError) as caught:
            # Alertmanager refuses a matcher with an empty name: its reason comes through.
            await client.create(
                {"": "x"}, created_by="a", comment="c", duration=60, now=time.time()
            )
    finally:
        await client.aclose()
    assert caught.value.status_code == 400
    assert f"Alertmanager at {alertmanager.url} refused the request (HTTP 400" in str(caught.value)
    assert not caught.value.transient


@pytest.mark.anyio
async def test_an_unreachable_alertmanager_is_named_without_its_credentials() -> None:
    port = free_port()
    client = Silences(f"http://relay:s3cret-password@127.0.0.1:{port}")
    try:
        with pytest.raises(AlertmanagerError) as caught:
            await client.create({"a": "b"}, created_by="a", comment="c", duration=60, now=0)
    finally:
        await client.aclose()
    text = str(caught.value)
    assert f"Alertmanager at http://127.0.0.1:{port} cannot be reached" in text
    assert "alertmanager_url" in text and caught.value.transient
    assert "s3cret" not in text and "s3cret" not in repr(client)


@pytest.mark.anyio
async def test_credentials_in_the_url_go_as_basic_auth_and_a_refusal_says_so() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(401, text="Unauthorized")

    client = Silences("https://ops:pa%40ss@am.example:9093/", transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(AlertmanagerError) as caught:
            await client.create({"a": "b"}, created_by="a", comment="c", duration=60, now=0)
    finally:
        await client.aclose()
    assert seen == ["Basic b3BzOnBhQHNz"]  # ops:pa@ss
    assert "Alertmanager at https://am.example:9093 refused the relay's credentials" in str(
        caught.value
    )
    assert "pa@ss" not in str(caught.value) and "pa%40ss" not in str(caught.value)


@pytest.mark.anyio
async def test_a_wrong_path_names_the_route_prefix() -> None:
    client = Silences(
        "http://am.example", transport=httpx.MockTransport(lambda r: httpx.Response(404))
    )
    try:
        with pytest.raises(AlertmanagerError, match=r"web\.route-prefix"):
            await client.create({"a": "b"}, created_by="a", comment="c", duration=60, now=0)
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_no_labels_or_no_duration_are_refused_before_calling() -> None:
    client = Silences(
        "http://am.example", transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    try:
        with pytest.raises(AlertmanagerError, match="no common labels"):
            await client.create({}, created_by="a", comment="c", duration=60, now=0)
        with pytest.raises(AlertmanagerError, match="longer than zero"):
            await client.create({"a": "b"}, created_by="a", comment="c", duration=0, now=0)
    finally:
        await client.aclose()


def test_a_url_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        Silences("am.example:9093")


def test_helpers() -> None:
    assert public_url("http://u:p@h:1/x/") == "http://h:1/x"
    assert public_url("http://h:9093/") == "http://h:9093"
    assert matchers({"b": "2", "a": "1"})[0] == {
        "name": "a",
        "value": "1",
        "isRegex": False,
        "isEqual": True,
    }


@pytest.mark.anyio
async def test_firing_counts_the_alerts_alertmanager_still_has_silenced_or_not(
    alertmanager: Alertmanager,
) -> None:
    from bench._alertmanager import alert

    labels = {"alertname": "Firing", "instance": 'db "1"'}
    client = Silences(alertmanager.url)
    try:
        assert await client.firing(labels) == 0
        alertmanager.fire([alert("Firing", {"instance": 'db "1"'})])
        assert await client.firing(labels) == 1
        await client.create(labels, created_by="a", comment="c", duration=600, now=time.time())
        assert await client.firing(labels) == 1  # silenced, still there
        alertmanager.fire([alert("Firing", {"instance": 'db "1"'}, ends=time.time() - 1)])
        assert await client.firing(labels) == 0
    finally:
        await client.aclose()


#: Values that would end the quoted value, split a list of matchers, or escape its quote.
AWKWARD = ('db "1", {x}', "back\\slash\\", 'quote" , b="c', "line\nbreak", "}", "{")


@pytest.mark.anyio
async def test_firing_matches_values_with_quotes_commas_braces_and_backslashes_exactly(
    alertmanager: Alertmanager,
) -> None:
    from bench._alertmanager import alert

    client = Silences(alertmanager.url)
    try:
        alertmanager.fire([alert("Awkward", {"instance": value}) for value in AWKWARD])
        alertmanager.fire([alert("Awkward", {"instance": "db"})])  # a neighbour, never counted
        for value in AWKWARD:
            assert await client.firing({"alertname": "Awkward", "instance": value}) == 1, value
        assert await client.firing({"alertname": "Awkward", "instance": 'db "1"'}) == 0
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_label_name_the_filter_cannot_take_neither_widens_nor_breaks_it(
    alertmanager: Alertmanager,
) -> None:
    """``instance!="db-2"`` would read as instance != "db-2"; ``service.name`` is refused."""
    from bench._alertmanager import alert

    client = Silences(alertmanager.url)
    try:
        alertmanager.fire([alert("Named", {"instance": "db-1"})])
        assert await client.firing({"alertname": "Named", "instance!": "db-2"}) == 0
        assert await client.firing({"alertname": "Named", "service.name": "api"}) == 0
        assert await client.firing({"alertname": "Named", "a b": "c", "instance": "db-1"}) == 0
        assert await client.firing({"alertname": "Named", "instance": "db-1"}) == 1
    finally:
        await client.aclose()


def test_filters_quote_values_and_leave_out_names_alertmanager_would_misread() -> None:
    assert filters({"b": 'x"y', "a": "1\\\n", "c.d": "e", "f!": "g", "h": "\ud800"}) == [
        'a="1\\\\\\n"',
        'b="x\\"y"',
    ]
