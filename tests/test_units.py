"""The one grammar of durations, sizes and rates that every entry point reads."""

from __future__ import annotations

import pytest

from dingpush import Rate, parse_duration, parse_size

DURATIONS = [
    ("500ms", 0.5),
    ("10s", 10.0),
    ("10sec", 10.0),
    ("10m", 600.0),
    ("10min", 600.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    ("1.5h", 5400.0),
    ("0", 0.0),
    ("600", 600.0),
    (" 10 s ", 10.0),
    (600, 600.0),
    (0.25, 0.25),
]


@pytest.mark.parametrize(("value", "seconds"), DURATIONS, ids=[repr(v) for v, _ in DURATIONS])
def test_durations(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "soon", "10 M", "10y", "-5s", "1e3", "s", "10s10m", -1, True, float("inf"), 10**400],
)
def test_a_bad_duration_names_the_value_and_the_forms(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    message = str(caught.value)
    if len(repr(value)) <= 40:  # a longer one (10**400) is shown shortened
        assert message.startswith(f"{value!r} is not")
    assert message.endswith(
        " is not a duration: write seconds (600) or a number with a unit, e.g. 500ms, "
        "10s, 10m, 2h or 1d"
    )


SIZES = [
    ("10MB", 10_000_000),
    ("512KiB", 524_288),
    ("1MiB", 1_048_576),
    ("1mib", 1_048_576),
    ("2GB", 2_000_000_000),
    ("1GiB", 1024**3),
    ("1.5KB", 1500),
    ("100B", 100),
    ("100", 100),
    (1_048_576, 1_048_576),
    (0, 0),
]


@pytest.mark.parametrize(("value", "size"), SIZES, ids=[repr(v) for v, _ in SIZES])
def test_sizes(value: str | int, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "big", "10TB", "10 M", "-1KB", -1, 1.5, True])
def test_a_bad_size_names_the_value_and_the_forms(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(value)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"{value!r} is not a size: write bytes (1048576) or a number with a unit, e.g. 512KiB, "
        "10MB or 1MiB (B, KB, KiB, MB, MiB, GB, GiB)"
    )


RATES = [
    ("20/min", 20, 60.0),
    ("20/60s", 20, 60.0),
    ("20/1m", 20, 60.0),
    ("20/m", 20, 60.0),
    ("1/1s", 1, 1.0),
    ("5000/1m", 5000, 60.0),
    ("100/500ms", 100, 0.5),
    ("3/1.5s", 3, 1.5),
    ("5/2", 5, 2.0),
    ("100/h", 100, 3600.0),
    ("3/1d", 3, 86400.0),
    (" 20 / 60 s ", 20, 60.0),
]


@pytest.mark.parametrize(("text", "limit", "window"), RATES, ids=[r[0] for r in RATES])
def test_rates(text: str, limit: int, window: float) -> None:
    assert Rate.parse(text) == Rate(limit, window)


@pytest.mark.parametrize("text", ["", "fast", "20", "20/", "/60s", "x/1s", "20/60y", "2.5/1s"])
def test_a_bad_rate_names_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        Rate.parse(text)
    assert str(caught.value) == (
        f"rate {text!r} is not of the form COUNT/PERIOD, e.g. 20/60s, 20/min, 5000/1m or 100/500ms"
    )


@pytest.mark.parametrize("text", ["0/60s", "20/0s", "20/0ms"])
def test_a_rate_must_allow_a_message(text: str) -> None:
    with pytest.raises(ValueError, match="at least one message in a period longer than zero"):
        Rate.parse(text)


def test_the_period_of_a_rate_is_a_duration() -> None:
    for period in ("500ms", "10s", "10m", "2h", "1d", "90"):
        assert Rate.parse(f"1/{period}").window == parse_duration(period)


@pytest.mark.parametrize("value", ["9" * 400, "9" * 400 + "ms", 1e308, "36600d", 4e9])
def test_a_duration_over_100_years_is_refused_and_shown_short(value: object) -> None:
    # A string of 309 digits reads as infinity: accepted, it stopped a relay's dispatcher
    # (coalesce_after) or crashed its start (shutdown_deadline); a huge silence_max made a
    # chat command answer 500 (a date past year 9999).
    with pytest.raises(ValueError, match="longer than 100 years") as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert len(str(caught.value)) < 200
    assert parse_duration("36500d") == 36500 * 86400


@pytest.mark.parametrize("value", ["9" * 400, "9" * 400 + "GiB", "99999999999TB"])
def test_a_size_past_what_a_float_holds_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="bytes") as caught:
        parse_size(value)
    assert len(str(caught.value)) < 250


def test_a_rate_period_over_100_years_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 100 years"):
        Rate.parse("5/" + "9" * 400 + "s")
