"""Target leases: in a fleet, the per-target work that must happen once is done by one instance.

Coalescing a target's backlog into digests, and sending a ``concurrency = 1`` target's
messages in their order, are done by the one instance holding the target's lease in the
database (``target_leases``, one statement to take or renew it: see
:meth:`PostgresStore.hold_target`). Other targets proceed on every instance; a target whose
lease another instance holds is left to it (its messages are still accepted everywhere).

A lease lasts ``target_lease`` seconds on the database's clock and its holder renews it after
a third of that, so a holder that dies (``kill -9``, a lost machine, a partition from the
database) loses it within ``target_lease``, and another instance, which asks again every third
of it, takes the target over: the failover time is at most about ``4/3 × target_lease``. A
clean shutdown gives the leases up at once.

Between the answers of the database this keeps what it learnt for a third of the lease, so a
busy target costs one statement per third of a lease, not one per message. An instance asks
for a target's lease only when the target has a message due (the dispatcher looks first), so
the instances that see the work share the targets, rather than the first to start taking all.
"""

from __future__ import annotations

import logging
import time
import typing
import uuid
from collections.abc import Callable

from ._targets import RelayTarget
from .stores import StoreError

__all__ = ["LeaseStore", "TargetLeases"]

log = logging.getLogger("dingpush.relay")


class LeaseStore(typing.Protocol):
    """What target leases need of the outbox (``PostgresStore`` has it)."""

    async def hold_target(self, target: str, holder: str, seconds: float) -> bool: ...

    async def release_targets(self, holder: str) -> int: ...


def needs_lease(target: RelayTarget) -> bool:
    """Whether a target has work that one instance at a time must do (digests, order)."""
    return target.options.concurrency == 1 or target.options.coalesce


class TargetLeases:
    """This instance's target leases.

    Args:
        store: Where the leases live.
        seconds: How long a lease lasts without renewal (``[relay] target_lease``).
        monotonic: The local clock that times renewals (the leases themselves use the
            database's).
    """

    def __init__(
        self,
        store: LeaseStore,
        *,
        seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not seconds > 0:
            raise ValueError(f"a target lease must last longer than zero, not {seconds!r}")
        self.store = store
        self.seconds = float(seconds)
        #: This instance's name in ``target_leases.holder``.
        self.holder = uuid.uuid4().hex
        self._monotonic = monotonic
        self._held: dict[str, float] = {}  # target → when to renew
        self._elsewhere: dict[str, float] = {}  # target → when to ask again

    def __repr__(self) -> str:
        return f"<TargetLeases {self.holder[:8]} holding {sorted(self._held)}>"

    @property
    def recheck(self) -> float:
        """Seconds between two asks for a target another instance holds."""
        return self.seconds / 3

    def holds(self, target: str) -> bool:
        """Whether this instance holds ``target``'s lease, as last learnt (no round trip)."""
        return self._held.get(target, -1.0) > self._monotonic()

    def held(self) -> list[str]:
        """The targets this instance believes it holds."""
        now = self._monotonic()
        return sorted(t for t, renew in self._held.items() if renew > now)

    async def hold(self, target: str) -> bool:
        """Whether this instance serves ``target`` alone now (taking or renewing the lease).

        A database error propagates (``StoreError``): the worker pauses, as for any outbox
        error, and this instance stops counting on the lease.
        """
        now = self._monotonic()
        if self._held.get(target, -1.0) > now:
            return True
        if self._elsewhere.get(target, -1.0) > now:
            return False
        try:
            ours = await self.store.hold_target(target, self.holder, self.seconds)
        except StoreError:
            self._held.pop(target, None)
            raise
        if ours:
            if target not in self._held:
                log.info("this instance now serves target %s (lease %s)", target, self.holder[:8])
            self._held[target] = now + self.recheck
            self._elsewhere.pop(target, None)
        else:
            if self._held.pop(target, None) is not None:
                log.warning("target %s moved to another instance", target)
            self._elsewhere[target] = now + self.recheck
        return ours

    async def release(self) -> None:
        """Give up every lease (a clean shutdown), so others take the targets over at once."""
        self._held.clear()
        try:
            await self.store.release_targets(self.holder)
        except StoreError as exc:  # they run out by themselves
            log.warning("could not give up the target leases: %s", exc)
