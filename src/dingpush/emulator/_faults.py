"""Injected faults: the ways a real DingTalk (or the network in front of it) lets a client down."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["Fault", "FaultBook", "FaultKind", "fault_answer"]

#: ``errcode``: HTTP 200 with a chosen errcode (default -1 系统繁忙, "retry later");
#: ``http500``: a gateway error page; ``delay``: answer late (client time-outs);
#: ``drop``: start the response, then cut the connection.
FaultKind = Literal["errcode", "http500", "delay", "drop"]

_SYSTEM_BUSY = (-1, "系统繁忙")
# What Alibaba's Tengine gateway serves when the backend fails: HTML, not the JSON contract.
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
    "<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>Tengine</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A snapshot of one injected fault; ``remaining`` is ``None`` when unlimited."""

    id: int
    kind: FaultKind
    remaining: int | None
    probability: float
    robot: str | None
    path: str | None
    errcode: int | None
    errmsg: str | None
    delay: float
    after_accept: bool
    seed: int | None
    fired: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``/_emulator/faults``."""
        return dataclasses.asdict(self)


def fault_answer(fault: Fault) -> tuple[int | None, int | None, str | None]:
    """Return ``(http_status, errcode, errmsg)`` a fault answers with; ``None`` parts are absent.

    ``delay`` answers normally (later), so it has no answer of its own: ``(200, None, None)``
    means "keep the normal answer".
    """
    if fault.kind == "errcode":
        errcode = _SYSTEM_BUSY[0] if fault.errcode is None else fault.errcode
        default_msg = _SYSTEM_BUSY[1] if errcode == _SYSTEM_BUSY[0] else "injected fault"
        return 200, errcode, fault.errmsg or default_msg
    if fault.kind == "http500":
        return 500, None, None
    if fault.kind == "drop":
        return None, None, None
    return 200, None, None


def gateway_page() -> str:
    """Return the HTML body of an ``http500`` fault."""
    return _GATEWAY_PAGE


@dataclass(slots=True)
class _Slot:
    fault: Fault
    rng: random.Random


class FaultBook:
    """The queue of pending faults; not thread-safe, the emulator calls it under its lock."""

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._next_id = 1

    def add(
        self,
        kind: FaultKind,
        *,
        count: int | None = 1,
        probability: float = 1.0,
        robot: str | None = None,
        path: str | None = None,
        errcode: int | None = None,
        errmsg: str | None = None,
        delay: float = 0.0,
        after_accept: bool = False,
        seed: int | None = None,
    ) -> Fault:
        """Queue a fault and return its snapshot; see :meth:`Emulator.inject_fault`."""
        if kind not in get_args(FaultKind):
            raise ValueError(f"fault kind must be one of {get_args(FaultKind)}, not {kind!r}")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("fault count must be a positive integer or None (unlimited)")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("fault probability must be between 0 and 1")
        if not delay >= 0:
            raise ValueError("fault delay must be >= 0 seconds")
        if errcode is not None and kind != "errcode":
            raise ValueError("errcode= only applies to faults of kind 'errcode'")
        fault = Fault(
            id=self._next_id,
            kind=kind,
            remaining=count,
            probability=probability,
            robot=robot,
            path=path,
            errcode=errcode,
            errmsg=errmsg,
            delay=delay,
            after_accept=after_accept,
            seed=seed,
        )
        self._next_id += 1
        self._slots.append(_Slot(fault, random.Random(seed)))
        return fault

    def take(self, *, path: str, robot: str | None, after_accept: bool) -> Fault | None:
        """Fire the first matching fault, if its draw succeeds, and return its snapshot."""
        for slot in self._slots:
            fault = slot.fault
            if fault.after_accept != after_accept:
                continue
            if fault.robot is not None and fault.robot != robot:
                continue
            if fault.path is not None and fault.path != path:
                continue
            # A failed draw leaves the request alone and does not use up the count.
            if fault.probability < 1.0 and slot.rng.random() >= fault.probability:
                continue
            remaining = None if fault.remaining is None else fault.remaining - 1
            slot.fault = dataclasses.replace(fault, remaining=remaining, fired=fault.fired + 1)
            if remaining == 0:
                self._slots.remove(slot)
            return slot.fault
        return None

    def pending(self) -> list[Fault]:
        """Return snapshots of the faults still queued, oldest first."""
        return [slot.fault for slot in self._slots]

    def clear(self) -> None:
        """Remove every queued fault."""
        self._slots.clear()
