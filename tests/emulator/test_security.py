"""The three security settings of §1.2: 加签 (signature), keywords and the IP allow-list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dingpush._robot._signing import sign
from dingpush.emulator import Emulator, EmulatorOptions, RobotConfig, create_app
from dingpush.testing import FakeClock

from ._support import SECRET, TOKEN, Send, signed_query, text

pytestmark = pytest.mark.anyio

NOW_MS = 1_700_000_000_000  # FakeClock's default start, the protocol's second test vector
HOUR_MS = 3_600_000


@pytest.fixture
def signed(emulator: Emulator) -> Emulator:
    emulator.update_robot("ops", secret=SECRET)
    return emulator


def errcode_and_reason(emulator: Emulator) -> tuple[int | None, str]:
    record = emulator.requests()[-1]
    return record.errcode, record.reason


# -- 加签 ---------------------------------------------------------------------------------


def test_protocol_test_vectors() -> None:
    assert sign(SECRET, NOW_MS) == "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
    assert sign("this is secret", 1577262236757) == "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="


async def test_signed_request_with_the_documented_example_url(send: Send, signed: Emulator) -> None:
    query = "timestamp=1700000000000&sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"
    assert (await send(text(), query=query)).json() == {"errcode": 0, "errmsg": "ok"}


async def test_second_vector_with_plus_signs_encoded_once(
    send: Send, signed: Emulator, clock: FakeClock
) -> None:
    signed.update_robot("ops", secret="this is secret")
    clock.set(1577262236.757)
    query = "timestamp=1577262236757&sign=hmPWwU%2B7lVdm3ZZz0r9tSfx0L4Q26jWOZr9%2BGs6EZQM%3D"
    assert (await send(text(), query=query)).json()["errcode"] == 0


async def test_missing_sign_or_timestamp(send: Send, signed: Emulator) -> None:
    full = signed_query(SECRET, NOW_MS)
    for query in ("", full.split("&")[0], full.split("&")[1]):
        response = await send(text(), query=query)
        assert response.json() == {"errcode": 310000, "errmsg": "sign not match"}
        assert errcode_and_reason(signed) == (310000, "sign_missing")


async def test_wrong_secret(send: Send, signed: Emulator) -> None:
    response = await send(text(), query=signed_query("SECother", NOW_MS))
    assert response.json() == {"errcode": 310000, "errmsg": "sign not match"}
    assert errcode_and_reason(signed) == (310000, "signature")


async def test_double_encoded_sign_is_refused(send: Send, signed: Emulator) -> None:
    # x-cold/dingtalk-robot#7: an already-encoded sign handed to a library encoding it again.
    twice = "TSZbRFUuvaSQaRKUpF970OPCb2%252FLcQAP3wOvwZIzBZk%253D"
    response = await send(text(), query=f"timestamp={NOW_MS}&sign={twice}")
    assert response.json() == {"errcode": 310000, "errmsg": "sign not match"}


@pytest.mark.parametrize("skew_ms", [HOUR_MS + 1, -(HOUR_MS + 1), 5 * HOUR_MS])
async def test_timestamp_outside_the_hour(send: Send, signed: Emulator, skew_ms: int) -> None:
    timestamp = NOW_MS - skew_ms
    response = await send(text(), query=signed_query(SECRET, timestamp))
    assert response.json() == {"errcode": 310000, "errmsg": "invalid timestamp"}
    assert errcode_and_reason(signed) == (310000, "timestamp")


async def test_signature_expires_as_the_clock_moves(
    send: Send, signed: Emulator, clock: FakeClock
) -> None:
    query = signed_query(SECRET, NOW_MS)
    assert (await send(text(), query=query)).json()["errcode"] == 0
    clock.advance(3599.999)
    assert (await send(text(), query=query)).json()["errcode"] == 0
    clock.advance(0.002)
    assert (await send(text(), query=query)).json()["errmsg"] == "invalid timestamp"


@pytest.mark.parametrize("sign_direction", [1, -1])
async def test_window_boundary_is_inclusive_by_default(
    send: Send, signed: Emulator, sign_direction: int
) -> None:
    query = signed_query(SECRET, NOW_MS - sign_direction * HOUR_MS)
    assert (await send(text(), query=query)).json()["errcode"] == 0
    signed.options = EmulatorOptions(signature_window_inclusive=False)
    assert (await send(text(), query=query)).json()["errmsg"] == "invalid timestamp"


async def test_future_timestamps(send: Send, signed: Emulator) -> None:
    query = signed_query(SECRET, NOW_MS + 10 * 60_000)
    assert (await send(text(), query=query)).json()["errcode"] == 0
    signed.options = EmulatorOptions(accept_future_timestamps=False)
    assert (await send(text(), query=query)).json()["errmsg"] == "invalid timestamp"
    assert (await send(text(), query=signed_query(SECRET, NOW_MS))).json()["errcode"] == 0


@pytest.mark.parametrize("timestamp", ["abc", "1700000000000.0", "+1700000000000", "-5", " 1"])
async def test_malformed_timestamp(send: Send, signed: Emulator, timestamp: str) -> None:
    signature = signed_query(SECRET, NOW_MS).split("&")[1]
    response = await send(text(), query=f"timestamp={timestamp}&{signature}")
    assert response.json()["errmsg"] == "invalid timestamp"


async def test_raw_plus_in_sign(send: Send, signed: Emulator, clock: FakeClock) -> None:
    signed.update_robot("ops", secret="this is secret")
    clock.set(1577262236.757)
    # The '+' characters are not encoded, so query decoding turns them into spaces.
    raw = "timestamp=1577262236757&sign=hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM%3D"
    assert (await send(text(), query=raw)).json()["errmsg"] == "sign not match"
    signed.options = EmulatorOptions(plus_in_sign_as_space_ok=True)
    assert (await send(text(), query=raw)).json()["errcode"] == 0


async def test_sign_params_on_an_unsigned_robot(send: Send, emulator: Emulator) -> None:
    query = signed_query(SECRET, NOW_MS)
    assert (await send(text(), query=query)).json()["errcode"] == 0
    emulator.options = EmulatorOptions(ignore_sign_params_when_unsigned=False)
    assert (await send(text(), query=query)).json()["errmsg"] == "sign not match"
    assert (await send(text())).json()["errcode"] == 0


async def test_first_of_repeated_parameters_counts(send: Send, signed: Emulator) -> None:
    good = signed_query(SECRET, NOW_MS)
    stale = signed_query(SECRET, NOW_MS - 2 * HOUR_MS)
    assert (await send(text(), query=f"{good}&{stale}")).json()["errcode"] == 0
    assert (await send(text(), query=f"{stale}&{good}")).json()["errcode"] == 310000


async def test_description_style_errmsgs(send: Send, signed: Emulator) -> None:
    signed.options = EmulatorOptions(errmsg_style="description")
    wrong = (await send(text(), query=signed_query("SECother", NOW_MS))).json()
    stale = (await send(text(), query=signed_query(SECRET, 0))).json()
    assert wrong["errcode"] == stale["errcode"] == 310000
    assert wrong["errmsg"].startswith("description:机器人发送签名不匹配;solution:")
    assert stale["errmsg"].startswith("description:机器人发送签名过期;solution:")


# -- keywords -----------------------------------------------------------------------------

_URL = "https://example.com/k"
KEYWORD_CASES: list[tuple[str, dict[str, Any]]] = [
    ("text.content", {"msgtype": "text", "text": {"content": "ALERT: x"}}),
    ("markdown.title", {"msgtype": "markdown", "markdown": {"title": "ALERT", "text": "x"}}),
    ("markdown.text", {"msgtype": "markdown", "markdown": {"title": "t", "text": "# ALERT"}}),
    (
        "link.title",
        {"msgtype": "link", "link": {"title": "ALERT", "text": "x", "messageUrl": _URL}},
    ),
    ("link.text", {"msgtype": "link", "link": {"title": "t", "text": "ALERT", "messageUrl": _URL}}),
    (
        "actionCard.title",
        {
            "msgtype": "actionCard",
            "actionCard": {"title": "ALERT", "text": "x", "singleTitle": "go", "singleURL": _URL},
        },
    ),
    (
        "actionCard.singleTitle",
        {
            "msgtype": "actionCard",
            "actionCard": {"title": "t", "text": "x", "singleTitle": "ALERT", "singleURL": _URL},
        },
    ),
    (
        "actionCard.btns[].title",
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "t",
                "text": "x",
                "btns": [{"title": "no", "actionURL": _URL}, {"title": "ALERT", "actionURL": _URL}],
            },
        },
    ),
    (
        "feedCard.links[].title",
        {
            "msgtype": "feedCard",
            "feedCard": {"links": [{"title": "ALERT", "messageURL": _URL, "picURL": _URL}]},
        },
    ),
]


@pytest.mark.parametrize(("field", "payload"), KEYWORD_CASES, ids=[c[0] for c in KEYWORD_CASES])
async def test_keyword_in_any_visible_field(
    send: Send, emulator: Emulator, field: str, payload: dict[str, Any]
) -> None:
    emulator.update_robot("ops", keywords=("nothing", "ALERT"))
    assert (await send(payload)).json() == {"errcode": 0, "errmsg": "ok"}


@pytest.mark.parametrize(
    "payload",
    [
        text("all quiet"),
        text("alert", msgUuid="ALERT"),
        {"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": _URL + "/ALERT"}},
        {"msgtype": "image", "image": {"picURL": _URL + "/ALERT.png"}},
        {
            "msgtype": "feedCard",
            "feedCard": {"links": [{"title": "t", "messageURL": _URL + "ALERT", "picURL": _URL}]},
        },
    ],
    ids=["absent", "case-differs", "only-in-url", "image", "only-in-feed-url"],
)
async def test_keyword_missing(send: Send, emulator: Emulator, payload: dict[str, Any]) -> None:
    emulator.update_robot("ops", keywords=("ALERT",), accept_image=True)
    response = await send(payload)
    assert response.json() == {"errcode": 310000, "errmsg": "keywords not in content"}
    assert errcode_and_reason(emulator) == (310000, "keyword")


async def test_keyword_fields_are_configurable(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", keywords=("ALERT",))
    emulator.options = EmulatorOptions(keyword_fields=("text.content", "markdown.text"))
    markdown_title_only = {"msgtype": "markdown", "markdown": {"title": "ALERT", "text": "x"}}
    assert (await send(markdown_title_only)).json()["errcode"] == 310000
    assert (await send(text("ALERT"))).json()["errcode"] == 0


async def test_keyword_errmsg_description_style(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", keywords=("ALERT",))
    emulator.options = EmulatorOptions(errmsg_style="description")
    errmsg = (await send(text("quiet"))).json()["errmsg"]
    assert errmsg.startswith("description:关键词不匹配;solution:")


# -- IP allow-list ------------------------------------------------------------------------


async def post_from(emulator: Emulator, ip: str, headers: dict[str, str] | None = None) -> Any:
    transport = httpx.ASGITransport(app=create_app(emulator), client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://oapi.test") as client:
        response = await client.post(
            f"/robot/send?access_token={TOKEN}", json=text(), headers=headers or {}
        )
        return response.json()


@pytest.mark.parametrize(
    ("allowlist", "ip", "allowed"),
    [
        (("1.1.1.1",), "1.1.1.1", True),
        (("1.1.1.1",), "1.1.1.2", False),
        (("1.1.1.0/24",), "1.1.1.254", True),
        (("1.1.1.0/24",), "1.1.2.1", False),
        (("10.0.0.0/8", "192.168.0.0/16"), "192.168.7.7", True),
        (("1.1.1.0/24",), "::ffff:1.1.1.9", True),
        (("1.1.1.0/24",), "::1", False),
    ],
)
async def test_ip_allowlist(
    emulator: Emulator, allowlist: tuple[str, ...], ip: str, allowed: bool
) -> None:
    emulator.update_robot("ops", ip_allowlist=allowlist)
    answer = await post_from(emulator, ip)
    if allowed:
        assert answer == {"errcode": 0, "errmsg": "ok"}
    else:
        assert answer["errcode"] == 310000
        assert answer["errmsg"].startswith("ip ") and answer["errmsg"].endswith(" not in whitelist")
        assert errcode_and_reason(emulator) == (310000, "ip")


async def test_ip_errmsg_names_the_client(emulator: Emulator) -> None:
    emulator.update_robot("ops", ip_allowlist=("1.1.1.0/24",))
    answer = await post_from(emulator, "8.8.8.8")
    assert answer == {"errcode": 310000, "errmsg": "ip 8.8.8.8 not in whitelist"}


async def test_forwarded_for_is_trusted_only_when_asked(emulator: Emulator) -> None:
    emulator.update_robot("ops", ip_allowlist=("1.1.1.1",))
    headers = {"X-Forwarded-For": "1.1.1.1, 10.0.0.1"}
    assert (await post_from(emulator, "127.0.0.1", headers))["errcode"] == 310000
    emulator.options = EmulatorOptions(trust_forwarded_for=True)
    assert (await post_from(emulator, "127.0.0.1", headers))["errcode"] == 0
    assert emulator.requests()[-1].client_ip == "1.1.1.1"


def test_ipv6_allowlist_entries_are_refused_at_config_time() -> None:
    with pytest.raises(ValueError, match="IPv6"):
        RobotConfig("r", "t", ip_allowlist=("2001:db8::/32",))
    with pytest.raises(ValueError, match="not an IPv4"):
        RobotConfig("r", "t", ip_allowlist=("1.1.1.300",))


async def test_settings_combine(send: Send, emulator: Emulator) -> None:
    emulator.update_robot("ops", secret=SECRET, keywords=("ALERT",), ip_allowlist=("127.0.0.1",))
    query = signed_query(SECRET, NOW_MS)
    assert (await send(text("ALERT"), query=query)).json()["errcode"] == 0
    assert (await send(text("quiet"), query=query)).json()["errmsg"] == "keywords not in content"
    assert (await send(text("ALERT"))).json()["errmsg"] == "sign not match"
