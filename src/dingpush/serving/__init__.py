"""Serving dingpush's HTTP apps: binding, the event loop, readiness, signals, graceful stop.

The relay (``dingpush serve``) and the emulator (``dingpush emulator``, ``dingpush.testing``)
are served the same way, by this package, the one place dingpush drives uvicorn:

    from dingpush.serving import ServerSettings, bind_socket, serve

    sock = bind_socket("127.0.0.1", 0)          # PortInUse names the port, who holds it, the fix
    try:
        serve(app, sock, settings=ServerSettings(), ready=print)   # until SIGINT/SIGTERM
    finally:
        sock.close()

Behind the ``emulator`` and ``relay`` extras; importing it loads neither uvicorn nor
Starlette (they load when something is served).
"""

from __future__ import annotations

import inspect

from ._console import command_log_lines
from ._run import SIGNALS, BackgroundServer, Stops, loop_factory, run_server, serve, stop_on_signals
from ._settings import ServerSettings
from ._socket import CannotListen, PortInUse, base_url, bind_socket, port_holder

__all__ = [
    "SIGNALS",
    "BackgroundServer",
    "CannotListen",
    "PortInUse",
    "ServerSettings",
    "Stops",
    "base_url",
    "bind_socket",
    "command_log_lines",
    "loop_factory",
    "port_holder",
    "run_server",
    "serve",
    "stop_on_signals",
]

# Show `dingpush.serving.serve` in reprs and docs, not the private module it lives in.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or inspect.isfunction(_obj):
        _obj.__module__ = __name__
del _name, _obj
