"""What can go wrong in an outbox store.

DingPushError
└── StoreError                      the outbox store refused or failed an operation
    ├── StoreUnavailable            transient: cannot commit now (disk full, locked, I/O);
    │                               the relay answers 503 so the sender retries
    ├── MessageNotFound             no message has this id (the relay answers 404)
    ├── InvalidTransition           the message's status does not allow this (409)
    ├── LeaseLost                   the claim no longer holds the message (its lease expired)
    ├── IncidentNotFound            no incident has this number (the relay answers 404)
    └── IncompatibleOutbox          the file is not a dingpush outbox, or a newer one
        (also a ConfigError)        written by a newer dingpush: fix the path or upgrade
"""

from __future__ import annotations

from dingpush import ConfigError, DingPushError

__all__ = [
    "IncidentNotFound",
    "IncompatibleOutbox",
    "InvalidTransition",
    "LeaseLost",
    "MessageNotFound",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(DingPushError):
    """The outbox store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The outbox cannot commit right now; nothing was stored, retry later."""

    transient = True


class MessageNotFound(StoreError):
    """No message in the outbox has this id."""

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id
        super().__init__(
            f"no message {message_id!r} in the outbox (ids are the UUIDs returned on enqueue; "
            "delivered messages are removed once pruned)"
        )


class InvalidTransition(StoreError):
    """The message's status does not allow this operation."""

    def __init__(self, message: str, *, message_id: str, status: str) -> None:
        self.message_id = message_id
        self.status = status
        super().__init__(message)


class LeaseLost(StoreError):
    """This claim no longer holds the message: its lease expired and it went back to the queue."""

    def __init__(self, message_id: str, status: str) -> None:
        self.message_id = message_id
        self.status = status
        super().__init__(
            f"the lease on message {message_id!r} was lost (it is now {status}): the lease "
            "expired before the message was settled, so it was requeued or claimed again; "
            "claim with a longer lease if sends take this long"
        )


class IncompatibleOutbox(StoreError, ConfigError):
    """The outbox file cannot be used by this version of dingpush."""


class IncidentNotFound(StoreError):
    """No incident has this number."""

    def __init__(self, number: int) -> None:
        self.number = number
        super().__init__(
            f"no incident {number}: check the number (it is the one the alert message shows, "
            "as in '@robot ack 42')"
        )
