"""Property tests of the sans-I/O checks: signing and keyword matching hold for any input."""

from __future__ import annotations

import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from dingpush._robot._signing import sign
from dingpush.emulator import EmulatorOptions, RobotConfig
from dingpush.emulator._webhook import check_keywords, check_signature

OPTIONS = EmulatorOptions()
HOUR_MS = 3_600_000
NOW_MS = 1_700_000_000_000

secrets_ = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)


def decoded_query(secret: str, timestamp: int) -> list[tuple[str, str]]:
    """Encode the signature once as a client should, then decode once as the server does."""
    raw = f"timestamp={timestamp}&sign={urllib.parse.quote_plus(sign(secret, timestamp))}"
    return urllib.parse.parse_qsl(raw, keep_blank_values=True)


@given(secret=secrets_, skew=st.integers(-HOUR_MS, HOUR_MS))
def test_a_fresh_signature_always_passes(secret: str, skew: int) -> None:
    robot = RobotConfig("r", "t", secret=secret)
    assert check_signature(robot, decoded_query(secret, NOW_MS + skew), NOW_MS, OPTIONS) is None


@given(secret=secrets_, skew=st.integers(HOUR_MS + 1, 10 * HOUR_MS), sign_=st.sampled_from([1, -1]))
def test_a_stale_signature_always_fails(secret: str, skew: int, sign_: int) -> None:
    robot = RobotConfig("r", "t", secret=secret)
    query = decoded_query(secret, NOW_MS + sign_ * skew)
    verdict = check_signature(robot, query, NOW_MS, OPTIONS)
    assert verdict is not None and verdict.reason == "timestamp"


@given(secret=secrets_, other=secrets_)
def test_another_secret_never_passes(secret: str, other: str) -> None:
    robot = RobotConfig("r", "t", secret=secret)
    verdict = check_signature(robot, decoded_query(other, NOW_MS), NOW_MS, OPTIONS)
    assert (verdict is None) == (secret == other)


@given(
    keywords=st.lists(st.text(min_size=1).filter(str.strip), min_size=1, max_size=10),
    content=st.text(),
)
def test_keywords_match_as_substrings(keywords: list[str], content: str) -> None:
    robot = RobotConfig("r", "t", keywords=tuple(keywords))
    payload = {"msgtype": "text", "text": {"content": content}}
    verdict = check_keywords(robot, payload, OPTIONS)
    assert (verdict is None) == any(k in content for k in keywords)
