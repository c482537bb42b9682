"""One grammar for durations, sizes and rates, read the same way by every entry point.

The library (``Rate.parse``), the configuration file, the relay's ``[relay]`` table and both
emulator commands all read these forms through this module, so a value that works in one place
works in every other::

    duration   500ms  10s  10m  2h  1d  1.5h  600        (a bare number is seconds)
    size       512KiB  10MB  1MiB  2GB  1048576           (a bare number is bytes)
    rate       20/60s  20/min  20/1m  5000/1m  1/1s  100/500ms  5/2   (COUNT/PERIOD)

Duration units are ``ms``, ``s`` (``sec``), ``m`` (``min``), ``h`` and ``d``, in lower case;
size units are ``B``, ``KB``/``KiB``, ``MB``/``MiB`` and ``GB``/``GiB`` in any case (KB is
1,000 bytes, KiB 1,024). A rate's period may leave out its amount (``20/min`` is ``20/1min``).
A mistake raises ``ValueError`` naming the value and the accepted forms. A duration is at most
100 years (:data:`MAX_DURATION`), a size at most 2**53 bytes: a value beyond either is a typo,
and would overflow a clock or a date wherever it is used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Rate", "parse_duration", "parse_size"]

#: Seconds in each duration unit.
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
DURATION_UNITS["d"] = 86400.0
#: Bytes in each size unit (matched without regard to case).
SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}

#: The longest duration any setting takes: 100 years, in seconds.
MAX_DURATION = 100 * 365.25 * 86400.0
#: The largest size: what a float holds exactly.
MAX_SIZE = 2**53

#: What each grammar accepts, as the errors say it.
DURATION_FORMS = "seconds (600) or a number with a unit, e.g. 500ms, 10s, 10m, 2h or 1d"
SIZE_FORMS = (
    "bytes (1048576) or a number with a unit, e.g. 512KiB, 10MB or 1MiB "
    "(B, KB, KiB, MB, MiB, GB, GiB)"
)
RATE_FORMS = "COUNT/PERIOD, e.g. 20/60s, 20/min, 5000/1m or 100/500ms"

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION_UNIT = "|".join(sorted(DURATION_UNITS, key=len, reverse=True))
_DURATION = re.compile(rf"\s*{_NUMBER}\s*({_DURATION_UNIT})?\s*")
_SIZE = re.compile(rf"\s*{_NUMBER}\s*([KMG]i?B|B)?\s*", re.IGNORECASE)
_PERIOD = re.compile(rf"\s*{_NUMBER}?\s*({_DURATION_UNIT})?\s*")
_COUNT = re.compile(r"\s*(\d+)\s*")


def _number(value: object) -> float | None:
    """A TOML/JSON number (never a boolean), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: no duration or size is that long
        return None
    return number if math.isfinite(number) else None


def parse_duration(value: str | float) -> float:
    """Read a duration as seconds: ``"500ms"``, ``"10s"``, ``"10m"``, ``"2h"``, ``"1d"`` or ``600``.

    Raises:
        ValueError: naming the value and the accepted forms; negative durations included.
    """
    seconds = _number(value)
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if seconds is None or seconds < 0:
        raise ValueError(f"{_shown(value)} is not a duration: write {DURATION_FORMS}")
    if not seconds <= MAX_DURATION:  # inf too: a string of 309 digits reads as infinity
        raise ValueError(f"{_shown(value)} is longer than 100 years: write {DURATION_FORMS}")
    return seconds


def parse_size(value: str | int) -> int:
    """Read a size as bytes: ``"512KiB"``, ``"10MB"``, ``"1MiB"`` or ``1048576``.

    Raises:
        ValueError: naming the value and the accepted forms; negative sizes included.
    """
    size: float | None = _number(value) if isinstance(value, int) else None
    if isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = float(match.group(1)) * SIZE_UNITS[(match.group(2) or "b").lower()]
    if size is None or size < 0:
        raise ValueError(f"{_shown(value)} is not a size: write {SIZE_FORMS}")
    if not size <= MAX_SIZE:  # inf too: a string of 309 digits reads as infinity
        raise ValueError(f"{_shown(value)} is larger than 2**53 bytes: write {SIZE_FORMS}")
    return int(size)


def _shown(value: object) -> str:
    """The value as an error shows it: shortened when it is long (a 400-digit typo)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…{text[-8:]} ({len(text)} characters)"


def parse_rate_parts(text: str) -> tuple[int, float]:
    """Read ``COUNT/PERIOD`` as ``(count, seconds)``; ``Rate.parse`` is the public face.

    Raises:
        ValueError: naming the value and the accepted forms.
    """
    count_text, slash, period_text = text.partition("/") if isinstance(text, str) else ("", "", "")
    count = _COUNT.fullmatch(count_text) if slash else None
    period = _PERIOD.fullmatch(period_text) if slash else None
    if count is None or period is None or not (period.group(1) or period.group(2)):
        raise ValueError(f"rate {_shown(text)} is not of the form {RATE_FORMS}")
    amount = float(period.group(1)) if period.group(1) else 1.0
    window = amount * DURATION_UNITS[period.group(2) or "s"]
    limit = int(count.group(1))
    if limit < 1 or not 0 < window <= MAX_DURATION:
        raise ValueError(
            f"rate {_shown(text)} must allow at least one message in a period longer than zero "
            "and at most 100 years: "
            f"write {RATE_FORMS}"
        )
    return limit, window


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` messages in any ``window`` seconds; ``Rate.parse("20/60s")``."""

    limit: int
    window: float

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError(f"rate limit must be an integer >= 1, got {self.limit!r}")
        if not (isinstance(self.window, int | float) and self.window > 0):
            raise ValueError(f"rate window must be > 0 seconds, got {self.window!r}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read ``"20/60s"``, ``"20/min"``, ``"5000/1m"``, ``"3/1.5s"`` or ``"100/500ms"``.

        The period is a duration in the grammar every entry point shares (see
        ``dingpush.parse_duration``); a bare number is seconds, a unit alone means one of it.

        Raises:
            ValueError: naming the text and the accepted forms.
        """
        return cls(*parse_rate_parts(text))

    @classmethod
    def coerce(cls, value: Rate | str) -> Rate:
        """Accept a ``Rate`` or its text form, the shorthand every client takes."""
        return value if isinstance(value, Rate) else cls.parse(value)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window:g}s"
