"""Retries: a ``RetryPolicy`` value that decides whether and when to try again.

:meth:`RetryPolicy.decide` is the one decision after a failed attempt — retry, cool down or give
up — from the error, the attempt, the time already spent and whether the channel drops a repeat.
The library's engine and the relay's dispatcher both act on it. The policy only computes; the
callers sleep (through their ``Clock``) or schedule, so one policy serves the sync and async
clients and the relay's outbox alike.

A robot's retry re-sends the same body with the same ``msgUuid``, which DingTalk documents as
its idempotency key: a retry after a lost answer is not a duplicate.
The app APIs have no such key, so there a failure that leaves it unknown whether DingTalk acted
(``maybe_delivered``) is not retried unless the policy accepts the risk (``retry_ambiguous``).
"""

from __future__ import annotations

import math
import random
import typing
from dataclasses import dataclass

from dingpush._errors import (
    DingPushError,
    PartialDelivery,
    PlatformThrottled,
    ProtocolError,
    RateLimited,
    ServerBusy,
    TransportError,
)

__all__ = [
    "Decision",
    "DecisionKind",
    "DecisionReason",
    "RetryPolicy",
    "RetryTypes",
    "as_retry_policy",
]

# Platform-wide throttles and the back-off DingTalk advises for each (protocol §7).
_ONE_SECOND_PENALTY = frozenset({90018, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"})
_PER_MINUTE_PENALTY = frozenset({"Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"})

#: What to do after a failed attempt.
DecisionKind: typing.TypeAlias = typing.Literal["retry", "cool_down", "give_up"]
#: Why: ``transient`` and ``unknown`` retry, ``throttled`` cools down, the rest give up.
DecisionReason: typing.TypeAlias = typing.Literal[
    "transient", "unknown", "throttled", "permanent", "ambiguous", "attempts", "horizon"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What to do after a failed attempt, and why: the answer of :meth:`RetryPolicy.decide`.

    ``kind`` is one of:

    - ``"retry"``: send the same request again (same ``msgUuid``) after ``delay`` seconds.
      ``reason`` is ``"transient"`` (the error may pass) or ``"unknown"`` (an exception that is
      no ``DingPushError``, a bug: a durable queue retries it rather than lose the message).
    - ``"cool_down"``: DingTalk throttled the sender (``RateLimited``); it rests for its
      cool-down, which its rate limiter knows, and the same request may go again after it.
      Nothing was delivered, so this is safe on every channel.
    - ``"give_up"``: stop and report the error. ``reason`` says why: ``"permanent"`` (it would
      fail the same way again), ``"ambiguous"`` (DingTalk may have acted on it and the channel
      cannot drop a repeat), ``"attempts"`` (``max_attempts`` reached) or ``"horizon"`` (the
      next attempt would pass ``max_elapsed``).
    """

    kind: DecisionKind
    reason: DecisionReason
    #: For a retry: seconds before the next attempt; otherwise None.
    delay: float | None = None
    #: The attempt that just failed (the first is 1).
    attempt: int
    #: Seconds already spent on failed attempts and back-off.
    elapsed: float

    def __str__(self) -> str:
        if self.kind == "retry":
            what = "an unexpected error" if self.reason == "unknown" else "a transient failure"
            return f"{what}: attempt {self.attempt + 1} in {self.delay or 0.0:.1f} s"
        return _WORDS[self.reason].format(
            attempt=self.attempt, elapsed=format_seconds(self.elapsed)
        )


_WORDS: dict[str, str] = {
    "throttled": "DingTalk throttled the sender: it rests for its cool-down, then sends again",
    "permanent": "not transient: the same request would fail the same way",
    "ambiguous": (
        "DingTalk may have acted on it and this channel cannot drop a repeat, so it was not "
        "retried (retry_ambiguous accepts the risk of a duplicate)"
    ),
    "attempts": "gave up after {attempt} attempts (max_attempts)",
    "horizon": "gave up after {attempt} attempts over {elapsed} (the retry horizon)",
}


def format_seconds(seconds: float) -> str:
    """A duration as people read it.

    ``42.0`` → ``42 s``, ``5400`` → ``90 min``, ``9000`` → ``2.5 h``, infinity → ``ever``.
    """
    if not math.isfinite(seconds):
        return "ever"
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


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
        max_attempts: Attempts in all, the first included (1 means never retry); None for no
            count, when ``max_elapsed`` bounds the retries in time (the relay's outbox does).
            DingTalk's advice for -1 is "at most 3 retries", hence 4.
        base_delay: Seconds before the first retry; each further retry doubles it.
        max_delay: Longest back-off between two attempts (platform advice may ask for more).
        jitter: Up to this fraction of the back-off is added at random, so that many clients
            failing together do not retry in lockstep.
        max_elapsed: Give up once the next attempt would come more than this many seconds
            after the first failure (time spent on failed attempts and back-off; time spent
            waiting for a rate-limit slot is not counted).
        retry_ambiguous: Also retry, where DingTalk cannot de-duplicate, a failure that may
            have been delivered (a duplicate is then possible). Webhook robots always retry
            them: their ``msgUuid`` makes it safe.
    """

    max_attempts: int | None = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    max_elapsed: float = 120.0
    retry_ambiguous: bool = False

    def __post_init__(self) -> None:
        count = self.max_attempts
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError("max_attempts must be an integer >= 1, or None for no count")
        if count is not None and count < 1:
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

    def decide(
        self,
        error: BaseException,
        *,
        attempt: int,
        elapsed: float,
        idempotent: bool = True,
        rand: float | None = None,
    ) -> Decision:
        """After attempt ``attempt`` failed with ``error``: retry, cool down, or give up.

        A pure function of its arguments (and ``rand``): the library's engine sleeps or raises
        on the answer, the relay's dispatcher schedules the message or makes it a dead letter.
        A ``PartialDelivery`` is judged by the error that stopped it.

        Args:
            error: What the attempt failed with.
            attempt: The number of the attempt that just failed (the first is 1).
            elapsed: Seconds since the first failure: failed attempts and back-off.
            idempotent: Whether DingTalk drops a repeated request (a webhook's ``msgUuid``);
                when not, a failure that may have been delivered is retried only with
                ``retry_ambiguous``.
            rand: A number in [0, 1) for the jitter; drawn at random when not given.
        """
        if isinstance(error, PartialDelivery):
            error = error.error

        def answer(
            kind: DecisionKind, reason: DecisionReason, delay: float | None = None
        ) -> Decision:
            return Decision(kind=kind, reason=reason, delay=delay, attempt=attempt, elapsed=elapsed)

        if isinstance(error, RateLimited):
            return answer("cool_down", "throttled")
        known = isinstance(error, DingPushError)
        if known and not self.retryable(error):
            return answer("give_up", "permanent")
        if not idempotent and not self.retry_ambiguous and getattr(error, "maybe_delivered", False):
            return answer("give_up", "ambiguous")
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return answer("give_up", "attempts")
        wait = self._wait(attempt, _advised(attempt, error), rand)
        if elapsed + wait > self.max_elapsed:
            return answer("give_up", "horizon")
        return answer("retry", "transient" if known else "unknown", wait)

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

        :meth:`decide` for a client: only what :meth:`retryable` accepts is retried (an
        exception that is no ``DingPushError`` is not), and a throttle is not a retry.

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
        decision = self.decide(
            error, attempt=attempt, elapsed=elapsed, idempotent=idempotent, rand=rand
        )
        return decision.delay if decision.kind == "retry" else None

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
        ``max_attempts`` or ``max_elapsed`` would be exceeded. :meth:`decide` adds the judgement
        of the error; a resend to flow-controlled users calls this directly.
        """
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        wait = self._wait(attempt, floor, rand)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait

    def pause(self, failures: int, *, rand: float | None = None) -> float:
        """The doubling back-off after ``failures`` failures in a row, without any bound.

        The relay rests a target this long while it fails for transient causes (one probe
        after each pause), however long the outage lasts.
        """
        return self._wait(max(failures, 1), 0.0, rand)

    def _wait(self, attempt: int, floor: float, rand: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64))
        u = random.random() if rand is None else rand
        return max(min(self.max_delay, backoff * (1 + self.jitter * u)), floor)


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
