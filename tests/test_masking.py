"""The redactor: secrets and secret query values masked, every other character left as it was."""

from __future__ import annotations

import pytest

from dingpush._masking import Redactor, mask, redact_url

TOKEN = "6c2a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7ee9f0"
SECRET = "SEC5b1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5"

MASKED = [
    (
        f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
        "https://oapi.dingtalk.com/robot/send?access_token=6c2a…e9f0",
    ),
    (
        f"POST /robot/send?access_token={TOKEN}&timestamp=1700000000000&sign=TSZb%2FLc%3D done",
        "POST /robot/send?access_token=6c2a…e9f0&timestamp=1700000000000&sign=**** done",
    ),
    # A masked value ends where a query value ends: the ) of a markdown link stays.
    (
        "[report](https://r.example/x?sign=abc123XYZ) then",
        "[report](https://r.example/x?sign=****) then",
    ),
    (
        "[s](https://r.example/?a=1&session=q8Zr0-AbCdEf_123456789)",
        "[s](https://r.example/?a=1&session=q8Zr…6789)",
    ),
    (
        "Set-Cookie: dingpush_session=Zr0AbCdEf123456789x; Path=/",
        "Set-Cookie: dingpush_session=Zr0A…789x; Path=/",
    ),
    (
        "https://oapi.dingtalk.com/gettoken?appkey=dingabc&appsecret=Xy9_zzzzQQQQ1234abcd.",
        "https://oapi.dingtalk.com/gettoken?appkey=dingabc&appsecret=Xy9_…abcd.",
    ),
    (
        '{"x-acs-dingtalk-access-token": "a1b2c3d4e5f6a7b8c9d0"}',
        '{"x-acs-dingtalk-access-token": "a1b2…c9d0"}',
    ),
    (f"dingtalk://{SECRET}@{TOKEN}/13800000000", "dingtalk://****@6c2a…e9f0/13800000000"),
    (f"'dingtalk://{TOKEN}/'", "'dingtalk://6c2a…e9f0/'"),
    (
        f"dingtalk://x@y/?token={TOKEN}&secret={SECRET}",
        "dingtalk://****@****/?token=6c2a…e9f0&secret=****",
    ),
]

UNCHANGED = [
    # DingTalk's own deep link (protocol §1.3) carries no secret.
    "[open](dingtalk://dingtalkclient/page/link?url=https%3A%2F%2Fexample.com%2Fr&pc_slide=false)",
    "dingtalk://dingtalkclient/action/openapp?corpid=ding123&container_type=work_platform",
    # Help texts: the templates the user needs, and their punctuation.
    "give the whole URL starting with https:// or only the value after access_token=. Fix: copy it",
    "'dingtalk://' has no token: use dingtalk://SECRET@TOKEN/",
    "http://RELAY/robot/send?access_token=RELAY_TOKEN&timestamp=…&sign=…",
    "set access_token=<token> or sign=${SIGN} in the URL",
    "the query access_token= is empty",
    "redesign=yes and assign=later are not credentials",
    # Masking is idempotent.
    "https://oapi.dingtalk.com/robot/send?access_token=6c2a…e9f0&sign=****",
    "dingtalk://****@6c2a…e9f0/13800000000",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_secret_values_are_masked(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact_url(expected) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_secrets_is_left_exactly_as_it_was(text: str) -> None:
    assert redact_url(text) == text
    assert Redactor([TOKEN, SECRET])(text) == text


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    redact = Redactor([TOKEN, SECRET, "relay-api-token-0123456789"])
    text = f'{{"text": "line\\n{SECRET}", "token": "{TOKEN}"}} Bearer relay-api-token-0123456789.'
    assert redact(text) == '{"text": "line\\n****", "token": "6c2a…e9f0"} Bearer rela…6789.'


def test_a_redactor_of_many_secrets_masks_each_and_leaves_other_text_alone() -> None:
    """Past a few secrets one pattern finds them (a relay of 500 targets holds ~1,000)."""
    tokens = [f"{n:04x}" + "ab" * 30 for n in range(600)]
    secrets = [f"SEC{n:04x}" + "cd" * 30 for n in range(600)]
    redact = Redactor([*tokens, *secrets, "short-secret", "short-secret-longer"])
    assert redact._any is not None
    for text in UNCHANGED:
        assert redact(text) == text
    text = f"a {tokens[599]} b {secrets[0]}. c short-secret-longer d short-secret"
    masked = redact(text)
    assert masked == f"a {mask(tokens[599])} b ****. c shor…nger d ****"
    assert tokens[599] not in masked and "short-secret" not in masked


def test_a_redactor_of_secrets_too_long_for_one_pattern_still_masks_them() -> None:
    secrets = [f"{n:02d}" + "x" * 5000 for n in range(20)]
    redact = Redactor(secrets)
    assert redact._any is None
    assert redact(f"[{secrets[7]}]") == f"[{mask(secrets[7])}]"


@pytest.mark.parametrize(
    "text",
    [
        "see ?ACCESS_TOKEN=6c2a0123456789abcdef0123456789e9f0 there",
        "X-Acs-Dingtalk-Access-Token: 6c2a0123456789abcdef0123456789e9f0",
        "sıgn=6c2a0123456789abcdef0123456789e9f0 ſecret=6c2a0123456789abcdef0123456789e9f0",
    ],
)
def test_a_credential_is_masked_whatever_its_case_or_letters(text: str) -> None:
    """The ASCII shortcut (no "token=" etc.: no pattern runs) never skips a match."""
    assert "0123456789abcdef" not in redact_url(text)


def test_known_masks_the_configured_secrets_alone() -> None:
    # For text people wrote (a relay message's payload): its own links are no secret of ours.
    redact = Redactor(["SECb1a2c3d4e5f6", "6c2a0123456789abcdefe9f0"])
    text = (
        "[report](https://r.example/x?sign=abc123&token=t0k) sent with SECb1a2c3d4e5f6 to "
        "https://oapi.dingtalk.com/robot/send?access_token=6c2a0123456789abcdefe9f0"
    )
    assert redact.known(text) == (
        "[report](https://r.example/x?sign=abc123&token=t0k) sent with **** to "
        "https://oapi.dingtalk.com/robot/send?access_token=6c2a…e9f0"
    )
    assert "sign=****" in redact(text) and "token=****" in redact(text)  # logs: still masked
