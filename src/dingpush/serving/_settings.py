"""How dingpush's servers are served: the uvicorn settings, as data."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """How uvicorn serves one of dingpush's apps.

    Args:
        log_level: uvicorn's level (``"info"`` for the relay's command, ``"warning"`` for the
            emulator and servers in threads). Its start-up lines are never shown: the command
            prints its banner instead.
        access_log: one log line per request; off by default (the relay logs deliveries).
        lifespan: run the app's lifespan (start-up and shutdown events).
        graceful_timeout: seconds open requests get after a stop before they are cut.
        console_logging: install uvicorn's console handlers, as a command wants; ``False``
            leaves logging to the host (pytest captures it).
    """

    log_level: str = "warning"
    access_log: bool = False
    lifespan: bool = False
    graceful_timeout: float = 5.0
    console_logging: bool = True
