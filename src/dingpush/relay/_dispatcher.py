"""The dispatcher: claims due messages per target and delivers them through the library.

Each target has its own worker task(s), so a slow or cooling-down robot never holds up the
others. A worker asks the target's limiter how long until a slot is free (cool-downs included)
and sleeps that long instead of claiming; with a slot free it claims one message under a lease,
sends it with ``wait=False`` (nothing sleeps inside a send), and settles it: delivered, a retry
scheduled in the outbox (transient failures, throttles), or a dead letter (permanent ones). When
the backlog would wait longer than ``coalesce_after``, its text and markdown are merged into
digests first. A housekeeping task requeues messages whose lease ran out (a relay that died
mid-send) and prunes old deliveries.

Shutdown stops claiming, gives in-flight sends ``shutdown_deadline`` seconds (less when
``hurry()`` is called: a second SIGINT/SIGTERM), then cancels them and releases their messages
to the queue: the same ``msgUuid`` goes again on the next start, and DingTalk drops a copy it
already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import random
import typing
from collections.abc import Callable, Mapping

from dingpush import (
    Clock,
    Decision,
    DingPushError,
    LimiterUnavailable,
    PartialDelivery,
    PlatformThrottled,
    RateLimited,
    RetryPolicy,
    parse_message,
)
from dingpush.lowlevel import format_seconds

from ._coalesce import DIGEST_KIND, backlog_wait, digest_payload, plan_digests, threshold
from ._leases import TargetLeases, needs_lease
from ._metrics import Metrics
from ._outage import Outages
from ._settings import RelaySettings
from ._targets import MERGEABLE_KINDS, RelayTarget
from .stores import Claim, InvalidTransition, NewMessage, OutboxMessage, OutboxStore, StoreError

__all__ = ["Dispatcher"]

log = logging.getLogger("dingpush.relay")
#: One line per delivery outcome (delivered, retry, cooldown, failed), at INFO.
delivery_log = logging.getLogger("dingpush.relay.delivery")

#: The most queued messages one coalescing pass reads (a larger backlog is merged in passes).
COALESCE_SCAN = 2000
#: The least time between two looks at a target's backlog for coalescing.
COALESCE_INTERVAL = 0.25
#: How long before a target's next slot its backlog is merged.
COALESCE_LEAD = 0.5
#: Pause after an unexpected error in a worker, so a persistent fault does not spin.
ERROR_PAUSE = 1.0
#: The outbox kind of a DING an escalation step sends: its payload is the DING's request
#: (``user_ids``, ``content``, ``remind_type``, ``fallback``), delivered by ``RelayTarget.ding``.
DING_KIND = "ding"

#: Told of each message settled for good: ``(message, "delivered" | "failed", reply or error)``.
SettleHook = Callable[[OutboxMessage, str, typing.Any], typing.Awaitable[None]]


class Dispatcher:
    """Delivers the outbox's messages to their targets; ``start()``, then ``stop()``."""

    def __init__(
        self,
        store: OutboxStore,
        targets: Mapping[str, RelayTarget],
        *,
        settings: RelaySettings,
        metrics: Metrics,
        clock: Clock,
        redact: Callable[[str], str],
        tz: datetime.tzinfo | None = None,
        leases: TargetLeases | None = None,
    ) -> None:
        self.store = store
        #: In a fleet: which targets this instance serves alone (digests, order).
        self.leases = leases
        self.targets = targets
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.redact = redact
        self.tz = tz
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._housekeeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._hurry = asyncio.Event()
        self._coalesce_checked: dict[str, float] = {}
        self.policy = settings.retry_policy
        self.outages = Outages(self.policy, clock)
        #: Told of every delivery and dead letter (the escalation engine's timelines).
        self.on_settled: SettleHook | None = None

    @property
    def running(self) -> bool:
        return bool(self._workers) and not self._stopping

    async def start(self) -> None:
        """Requeue what a previous run left behind, then start a worker per target slot."""
        with contextlib.suppress(StoreError):
            await self._requeue()
        for target in self.targets.values():
            self._wake[target.name] = asyncio.Event()
            for slot in range(target.options.concurrency):
                self._workers.append(
                    asyncio.create_task(self._work(target), name=f"relay:{target.name}:{slot}")
                )
        self._housekeeper = asyncio.create_task(self._housekeep(), name="relay:housekeeping")

    def kick(self, target: str | None = None) -> None:
        """Wake ``target``'s workers (every worker when None): something may be due."""
        events = self._wake.values() if target is None else [self._wake.get(target)]
        for event in events:
            if event is not None:
                event.set()

    async def stop(self, deadline: float | None = None) -> None:
        """Stop claiming; let in-flight sends finish within ``deadline`` seconds, then release."""
        if self._stopping:
            return
        self._stopping = True
        self._stopped.set()
        self.kick()
        deadline = self.settings.shutdown_deadline if deadline is None else deadline
        tasks = list(self._workers)
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            tasks.append(self._housekeeper)
        if self._workers:
            pending = await self._drain(deadline)
            if pending:
                log.warning(
                    "%d deliveries still in flight %s: releasing them to the queue",
                    len(pending),
                    "when hurried" if self._hurry.is_set() else f"after {deadline:.0f} s",
                )
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        if self.leases is not None:
            await self.leases.release()

    def hurry(self) -> None:
        """Stop waiting for in-flight sends: a running or later :meth:`stop` releases them now."""
        self._hurry.set()

    async def _drain(self, deadline: float) -> list[asyncio.Task[None]]:
        """Wait for the workers until ``deadline`` or :meth:`hurry`; returns those still busy."""
        finished = asyncio.ensure_future(asyncio.wait(self._workers, timeout=deadline))
        hurried = asyncio.ensure_future(self._hurry.wait())
        try:
            await asyncio.wait([finished, hurried], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancelling asyncio.wait() leaves the workers it waited for running.
            for waiter in (finished, hurried):
                waiter.cancel()
            await asyncio.gather(finished, hurried, return_exceptions=True)
        return [task for task in self._workers if not task.done()]

    # -- workers ------------------------------------------------------------------------------

    async def _work(self, target: RelayTarget) -> None:
        wake = self._wake[target.name]
        while not self._stopping:
            wake.clear()
            try:
                pause = await self._step(target)
            except asyncio.CancelledError:
                raise
            except (StoreError, LimiterUnavailable) as exc:  # the database (of a fleet) is away
                log.warning("outbox unavailable for %s: %s", target.name, self.redact(str(exc)))
                pause = ERROR_PAUSE
            except Exception:
                log.exception("dispatcher error for target %s", target.name)
                pause = ERROR_PAUSE
            if pause > 0 and not self._stopping:
                await self._idle(wake, pause)

    async def _step(self, target: RelayTarget) -> float:
        """One turn of a worker; returns how long to sleep before the next (0: go on)."""
        hold = self.outages.wait(target.name)
        if hold > 0:
            return hold  # the target is resting, or another worker's probe is out
        probe = self.outages.get(target.name) is not None
        try:
            return await self._turn(target, probe=probe)
        finally:
            if probe:
                self.outages.abandoned(target.name)  # a probe that did not report

    async def _turn(self, target: RelayTarget, *, probe: bool) -> float:
        alone = True  # in a fleet, only the holder of the target's lease merges and orders
        if self.leases is not None and needs_lease(target):
            if not self.leases.holds(target.name):
                idle = await self._idle_for(target)  # take a lease for work only
                if idle is not None:
                    return idle
            alone = await self.leases.hold(target.name)
            if not alone and target.options.concurrency == 1:
                return self.leases.recheck
        wait = target.delay()
        if not probe and alone:  # a target that is down keeps its backlog whole: merge it later
            if wait > COALESCE_LEAD and target.options.coalesce:
                # Nothing can go before the slot: merge just before it, when the backlog is
                # whole (merging earlier would send several small digests where one would do).
                return wait - COALESCE_LEAD
            if self._should_coalesce(target) and await self._coalesce(target, wait):
                return 0.0
        if wait > 0:
            return wait
        claims = await self.store.claim(1, lease=self.settings.lease, target=target.name)
        if not claims:
            return await self._idle_for(target) or 0.001
        return await self._deliver(target, claims[0])

    async def _idle_for(self, target: RelayTarget) -> float | None:
        """How long to sleep when ``target`` has nothing due; None when something is."""
        due = await self.store.next_due(target=target.name)
        if due is None:
            return self.settings.idle_poll
        wait = due - self.clock.time()
        return None if wait <= 0 else min(wait, self.settings.idle_poll)

    async def _idle(self, wake: asyncio.Event, seconds: float) -> None:
        wake_task = asyncio.ensure_future(wake.wait())
        stop_task = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait(
                {wake_task, stop_task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            wake_task.cancel()
            stop_task.cancel()

    # -- coalescing ---------------------------------------------------------------------------

    def _should_coalesce(self, target: RelayTarget) -> bool:
        """Look at the backlog at most every ``COALESCE_INTERVAL`` seconds per target."""
        if not target.options.coalesce:
            return False
        now = self.clock.monotonic()
        if now - self._coalesce_checked.get(target.name, -COALESCE_INTERVAL) < COALESCE_INTERVAL:
            return False
        self._coalesce_checked[target.name] = now
        return True

    async def _coalesce(self, target: RelayTarget, wait: float) -> bool:
        """Merge the backlog into digests when its last message would wait too long."""
        after = target.options.coalesce_after
        if after is None:
            after = self.settings.coalesce_after
        capacity = target.capacity
        needed = threshold(delay=wait, limit=capacity.limit, window=capacity.window, after=after)
        now = self.clock.time()
        sample = await self.store.list_queued(target.name, kinds=MERGEABLE_KINDS, limit=needed)
        due = [m for m in sample if m.due_at <= now]
        if len(due) < needed:
            return False
        queued = await self.store.list_queued(
            target.name, kinds=MERGEABLE_KINDS, limit=COALESCE_SCAN
        )
        due = [m for m in queued if m.due_at <= now]
        waits = backlog_wait(len(due), delay=wait, limit=capacity.limit, window=capacity.window)
        digests = plan_digests(due, measure=target.measure, limit=target.body_limit, tz=self.tz)
        made = 0
        for digest in digests:
            new = NewMessage(
                target=target.name,
                kind=DIGEST_KIND,
                payload=digest_payload(digest.message),
                due_at=digest.due_at,
            )
            try:
                await self.store.digest(digest.originals, new)
            except InvalidTransition as exc:  # claimed or retried meanwhile: plan again later
                log.debug("digest for %s skipped: %s", target.name, exc)
                continue
            made += 1
            self.metrics.count("digests", target.name)
            self.metrics.count("digested", target.name, len(digest.originals))
        if made:
            log.info(
                "coalesced %d queued messages of %s into %d digests (they would have waited "
                "%.0f s at %s)",
                sum(len(d.originals) for d in digests),
                target.name,
                made,
                waits,
                target.capacity,
            )
        return made > 0

    # -- delivery -----------------------------------------------------------------------------

    async def _deliver(self, target: RelayTarget, claim: Claim) -> float:
        """Send one claimed message and settle it; returns how long the worker should pause."""
        try:
            if claim.message.kind == DING_KIND:
                request = json.loads(claim.message.payload)
                send = functools.partial(target.ding, request)
            else:
                message = parse_message(json.loads(claim.message.payload))
                send = functools.partial(target.send, message, claim.id)
        except (ValueError, DingPushError) as exc:
            await self._fail(target, claim, f"the stored message cannot be read: {exc}", None)
            return 0.0
        try:
            try:
                reply = await send()
            except DingPushError as exc:
                return await self._settle_error(target, claim, exc)
            except Exception as exc:  # a bug, or a library error we do not know: retry later
                log.exception("sending %s to %s failed unexpectedly", claim.id, target.name)
                await self._settle_error(target, claim, exc)
                return 0.0
            await self.store.mark_delivered(claim, reply=reply)
        except asyncio.CancelledError:
            # Shutdown: hand the message back; its msgUuid de-duplicates a send that landed.
            with contextlib.suppress(StoreError):
                await asyncio.shield(self.store.release([claim]))
            raise
        self._reached(target)
        self.metrics.count("delivered", target.name)
        if claim.message.kind == DING_KIND:
            self.metrics.count("dings", target.name)
            if isinstance(reply, Mapping) and reply.get("fell_back_from"):
                self.metrics.count("ding_fallbacks", target.name)
        self.metrics.observe_latency(target.name, self.clock.time() - claim.message.created_at)
        self._log(claim, "delivered", carries=claim.message.carries or None)
        await self._settled(claim.message, "delivered", reply)
        return 0.0

    async def _settled(self, message: OutboxMessage, outcome: str, detail: typing.Any) -> None:
        hook = self.on_settled
        if hook is None:
            return
        try:
            await hook(message, outcome, detail)
        except Exception:  # the delivery stands; only a timeline entry is missing
            log.exception("recording the %s of %s failed", outcome, message.id)

    async def _settle_error(self, target: RelayTarget, claim: Claim, exc: BaseException) -> float:
        """Act on ``RetryPolicy.decide()``: schedule a retry, cool down, or a dead letter."""
        error = exc.error if isinstance(exc, PartialDelivery) else exc
        if isinstance(error, RateLimited) and error.refused_locally and exc is error:
            # No slot after all (another worker, or a budget the client keeps beyond the
            # target's, took it): nothing was sent, no attempt spent; wait for the slot.
            await self.store.release([claim])
            return max((error.retry_at or 0.0) - self.clock.time(), 0.001)
        errcode = _errcode(error)
        jitter = random.random()  # one draw for the message's back-off and the target's rest
        decision = self.policy.decide(
            exc,
            attempt=claim.message.attempts + 1,
            elapsed=await self._failing_for(claim),
            idempotent=target.idempotent,
            rand=jitter,
        )
        text = self.redact(f"{type(error).__name__}: {error}")
        pause = self._note_health(target, error, text, jitter)
        if decision.kind == "cool_down":
            assert isinstance(error, RateLimited)
            if not error.refused_locally:
                self.metrics.count("throttled", target.name)
            retry_at = max(error.retry_at or self.clock.time() + target.delay(), self.clock.time())
            await self.store.schedule_retry(
                claim, retry_at=retry_at, error=self.redact(str(exc)), errcode=errcode
            )
            self.metrics.count("retries", target.name)
            self._log(claim, "cooldown", next_in=retry_at - self.clock.time(), errcode=errcode)
            return 0.0
        if isinstance(error, PlatformThrottled) and not error.refused_locally:
            self.metrics.count("throttled", target.name)
        if decision.kind == "give_up":
            await self._fail(target, claim, self._gave_up(decision, exc, text), errcode)
            return 0.0
        delay = max(decision.delay or 0.0, pause)
        await self.store.schedule_retry(
            claim, retry_at=self.clock.time() + delay, error=text, errcode=errcode
        )
        self.metrics.count("retries", target.name)
        self._log(claim, "retry", next_in=delay, errcode=errcode, error=text)
        return 0.0

    async def _failing_for(self, claim: Claim) -> float:
        """Seconds since the first attempt of this message's current run (the horizon's start).

        Its attempts since it was enqueued or last retried by hand are the last ``attempts``
        entries of its history; with none, this is its first attempt.
        """
        now = self.clock.time()
        count = claim.message.attempts
        if count:
            history = await self.store.attempts(claim.id)
            if len(history) >= count:
                first = history[-count]
                return max(now - (first.started_at or first.finished_at), 0.0)
        return max(now - (claim.lease_until - self.settings.lease), 0.0)

    def _note_health(
        self, target: RelayTarget, error: BaseException, text: str, jitter: float
    ) -> float:
        """Tell the outages what a failure says about the target; the pause it starts, if any."""
        if not isinstance(error, DingPushError) or getattr(error, "refused_locally", False):
            return 0.0  # a bug, or refused before it left: nothing learnt about the target
        if isinstance(error, RateLimited | PlatformThrottled) or not RetryPolicy.retryable(error):
            self._reached(target)  # DingTalk answered: it is up, whatever it said
            return 0.0
        return self.outages.failed(target.name, text, rand=jitter)

    def _reached(self, target: RelayTarget) -> None:
        if self.outages.succeeded(target.name) is not None:
            self.kick(target.name)  # wake the workers that waited for the probe

    def _gave_up(self, decision: Decision, exc: BaseException, text: str) -> str:
        """The dead letter's reason, in words."""
        if decision.reason == "ambiguous":
            return (
                f"{text} — DingTalk may have delivered it, and this channel cannot drop a "
                "repeat, so it was not retried: retry it by hand if it did not arrive "
                "(or set retry_ambiguous in [relay] retry)"
            )
        if decision.reason == "horizon":
            return (
                f"gave up after {decision.attempt} attempts over "
                f"{format_seconds(decision.elapsed)} (give_up_after = "
                f"{format_seconds(self.settings.give_up_after)}): {text}"
            )
        if decision.reason == "attempts":
            return f"gave up after {decision.attempt} attempts (retry.max_attempts): {text}"
        return self.redact(str(exc))

    async def _fail(
        self, target: RelayTarget, claim: Claim, error: str, errcode: typing.Any
    ) -> None:
        await self.store.fail(claim, error=error, errcode=errcode)
        self.metrics.count("failed", target.name)
        self._log(claim, "failed", errcode=errcode, error=error)
        await self._settled(claim.message, "failed", error)

    def _log(
        self,
        claim: Claim,
        outcome: str,
        *,
        next_in: float | None = None,
        errcode: typing.Any = None,
        error: str | None = None,
        carries: int | None = None,
    ) -> None:
        """One line per delivery outcome (issue: nothing was logged without ``-v``)."""
        fields = [
            f"outcome={outcome}",
            f"target={claim.message.target}",
            f"id={claim.id}",
            f"attempts={claim.message.attempts + 1}",
            f"latency={self.clock.time() - claim.message.created_at:.3f}s",
        ]
        if carries:
            fields.append(f"carries={carries}")
        if next_in is not None:
            fields.append(f"next_in={next_in:.1f}s")
        if errcode is not None:
            fields.append(f"errcode={errcode}")
        if error is not None:
            fields.append("error=" + json.dumps(error, ensure_ascii=False))
        level = logging.WARNING if outcome == "failed" else logging.INFO
        if not delivery_log.isEnabledFor(level):
            return
        line = "delivery " + " ".join(fields)
        # Only an error carries free text; the other fields are names, ids and numbers. (The
        # relay's log filter masks every record again.)
        delivery_log.log(level, "%s", line if error is None else self.redact(line))

    # -- housekeeping -------------------------------------------------------------------------

    async def _requeue(self) -> None:
        requeued = await self.store.requeue_expired()
        if requeued:
            log.info("requeued %d messages whose lease expired", len(requeued))
            self.kick()

    async def _housekeep(self) -> None:
        interval = max(min(self.settings.lease / 3, 30.0), 0.05)
        last_prune = self.clock.time()
        while not self._stopping:
            await asyncio.sleep(interval)
            try:
                await self._requeue()
                now = self.clock.time()
                if now - last_prune >= 3600:
                    last_prune = now
                    pruned = await self.store.prune(before=now - self.settings.retention)
                    if pruned:
                        log.info("pruned %d delivered messages", pruned)
            except StoreError as exc:
                log.warning("outbox housekeeping failed: %s", self.redact(str(exc)))


def _errcode(error: BaseException) -> int | str | None:
    code = getattr(error, "errcode", None)
    if isinstance(code, bool) or not isinstance(code, int | str):
        return None
    return code
