"""Retries: a ``RetryPolicy`` value that computes whether and when to try again.

The policy only computes; the clients sleep (through their ``Clock``), so one policy serves the
sync and async clients alike. A robot's retry re-sends the same body with the same ``msgUuid``,
which DingTalk documents as its idempotency key: a retry after a lost answer is not a duplicate.
The app APIs have no such key, so there a failure that leaves it unknown whether DingTalk acted
(``maybe_delivered``) is not retried unless the policy accepts the risk (``retry_ambiguous``).
"""

from __future__ import annotations

import random
import typing
from dataclasses import dataclass

from dingpush._errors import (
    DingPushError,
    PlatformThrottled,
    ProtocolError,
    RateLimited,
    ServerBusy,
    TransportError,
)

__all__ = ["RetryPolicy", "RetryTypes", "as_retry_policy"]

# Platform-wide throttles and the back-off DingTalk advises for each (protocol §7).
_ONE_SECOND_PENALTY = frozenset({90018, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"})
_PER_MINUTE_PENALTY = frozenset({"Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry a send that failed for a transient reason.

    Retried: ``TransportError`` and ``Timeout`` (network), HTTP 5xx answers
    (``ProtocolError.transient``), ``ServerBusy`` (-1) and ``PlatformThrottled`` (90018, 90002
    and their v1.0 forms, with the back-off DingTalk advises). Never retried: security, token,
    size, content and robot-unavailable errors, which fail the same way every time.
    ``RateLimited`` is not the policy's business: the client waits out the robot's cool-down.

    On a channel DingTalk does not de-duplicate (an app's robot and work notifications), a
    failure after which DingTalk may have acted (``error.maybe_delivered``: a read time-out, a
    connection cut after the request went out, a gateway's error page) is retried only with
    ``retry_ambiguous=True``, at the risk of the message arriving twice.

    Args:
        max_attempts: Attempts in all, the first included (1 means never retry). DingTalk's
            advice for -1 is "at most 3 retries", hence 4.
        base_delay: Seconds before the first retry; each further retry doubles it.
        max_delay: Longest back-off between two attempts (platform advice may ask for more).
        jitter: Up to this fraction of the back-off is added at random, so that many clients
            failing together do not retry in lockstep.
        max_elapsed: Give up once this many seconds went on failed attempts and back-off
            (time spent waiting for a rate-limit slot is not counted).
        retry_ambiguous: Also retry, where DingTalk cannot de-duplicate, a failure that may
            have been delivered (a duplicate is then possible). Webhook robots always retry
            them: their ``msgUuid`` makes it safe.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    max_elapsed: float = 120.0
    retry_ambiguous: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError("max_attempts must be an integer >= 1 (1 means no retries)")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_elapsed < 0:
            raise ValueError("base_delay, max_delay and max_elapsed must be >= 0 seconds")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be a fraction between 0 and 1")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(max_attempts=1)

    @staticmethod
    def retryable(error: BaseException) -> bool:
        """Whether ``error`` may go away if the same request is sent again."""
        if isinstance(error, RateLimited) or not isinstance(error, DingPushError):
            return False
        if isinstance(error, ProtocolError):
            return error.transient
        return isinstance(error, TransportError | ServerBusy | PlatformThrottled)

    def delay(
        self,
        attempt: int,
        error: BaseException,
        elapsed: float,
        *,
        rand: float | None = None,
        idempotent: bool = True,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        Args:
            attempt: The number of the attempt that just failed (the first is 1).
            error: What it failed with.
            elapsed: Seconds already spent on failed attempts and back-off for this message.
            rand: A number in [0, 1) for the jitter; drawn at random when not given.
            idempotent: Whether DingTalk drops a repeated request (a webhook's ``msgUuid``);
                when not, a failure that may have been delivered is retried only with
                ``retry_ambiguous``.
        """
        if not self.retryable(error):
            return None
        if not idempotent and not self.retry_ambiguous and getattr(error, "maybe_delivered", False):
            return None
        return self.backoff(attempt, elapsed, floor=_advised(attempt, error), rand=rand)

    def backoff(
        self,
        attempt: int,
        elapsed: float,
        *,
        floor: float = 0.0,
        rand: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, whatever the reason, or ``None``.

        The doubling back-off with jitter, at least ``floor`` seconds; ``None`` once
        ``max_attempts`` or ``max_elapsed`` would be exceeded. :meth:`delay` adds the judgement
        of the error; a resend to flow-controlled users calls this directly.
        """
        if attempt >= self.max_attempts:
            return None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        u = random.random() if rand is None else rand
        wait = max(min(self.max_delay, backoff * (1 + self.jitter * u)), floor)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


def _advised(attempt: int, error: BaseException) -> float:
    """The least back-off DingTalk (or the answer itself) asks for before trying again."""
    floor = 0.0
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float):
        floor = float(retry_after)
    if isinstance(error, PlatformThrottled):
        if error.errcode in _ONE_SECOND_PENALTY:
            # §7: the per-app QPS penalty lasts one second: sleep a second and go on.
            floor = max(floor, 1.0)
        elif error.errcode in _PER_MINUTE_PENALTY:
            floor = max(floor, 60.0)
        else:
            # §7: 90002 and the other throttles: exponential back-off from one second.
            floor = max(floor, float(2 ** (attempt - 1)))
    return floor


#: What ``retry=`` accepts: ``True``/``None`` (the default policy), ``False`` (one attempt),
#: a number of attempts, or a ``RetryPolicy``.
RetryTypes: typing.TypeAlias = RetryPolicy | bool | int | None

_DEFAULT = RetryPolicy()
_NEVER = RetryPolicy.never()


def as_retry_policy(value: RetryTypes) -> RetryPolicy:
    """Normalise ``retry=``: ``True``/``None`` → default, ``False`` → never, ``3`` → 3 attempts."""
    if value is None or value is True:
        return _DEFAULT
    if value is False:
        return _NEVER
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int) and value >= 1:
        return RetryPolicy(max_attempts=value)
    raise TypeError(
        f"retry= takes True, False, a number of attempts (>= 1) or a RetryPolicy, not {value!r}"
    )
