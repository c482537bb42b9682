"""The relay: ``dingpush serve``, a durable outbox in front of the library's clients.

Behind the ``relay`` extra. This ``__init__`` stays light on purpose: the outbox store layer
(:mod:`dingpush.relay.stores`) needs only the standard library, so the CLI and tests can use it
without the server's dependencies; the HTTP application imports Starlette and uvicorn in its own
modules. The library (``import dingpush``) never imports this package.
"""

from __future__ import annotations

__all__: list[str] = []
