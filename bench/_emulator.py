"""The emulator in its own OS process, configured through its ``/_emulator`` JSON API."""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import typing
from collections.abc import Callable, Iterable

import httpx


class EmulatorProcess:
    """``python -m dingpush.emulator --port 0`` in a child process, with a JSON-API client."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self._http = httpx.Client(timeout=30, trust_env=False)

    def __enter__(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "dingpush.emulator", "--port", "0", "--robot", "bench"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if "listening on" not in line:
            self.close()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[-1].strip()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def reset(self) -> None:
        """Forget robots, messages, windows and lock-outs."""
        self._api("POST", "/reset", json={"robots": True})

    def add_robot(
        self,
        name: str,
        *,
        rate: tuple[int, float] = (1_000_000_000, 1.0),
        lockout: float = 600.0,
        secret: str | None = None,
    ) -> str:
        """Register a robot (a lowercase hex token, which apprise insists on); return its URL."""
        token = secrets.token_hex(32)
        body: dict[str, typing.Any] = {
            "name": name,
            "token": token,
            "rate_limit": rate[0],
            "rate_window": rate[1],
            "lockout": lockout,
        }
        if secret is not None:
            body["secret"] = secret
        self._api("POST", "/robots", json=body)
        return f"{self.url}/robot/send?access_token={token}"

    def inject_fault(self, kind: str, **options: typing.Any) -> None:
        """Queue a fault (``count=None`` for every request), as ``Emulator.inject_fault``."""
        self._api("POST", "/faults", json={"kind": kind, **options})

    def stats(self, robot: str) -> dict[str, typing.Any]:
        """Accepted, duplicates and rejections by reason for one robot."""
        data = self._api("GET", "/stats")
        return typing.cast(dict[str, typing.Any], data["robots"][robot])

    def _api(self, method: str, path: str, **kwargs: typing.Any) -> typing.Any:
        response = self._http.request(method, f"{self.url}/_emulator{path}", **kwargs)
        response.raise_for_status()
        return response.json()


R = typing.TypeVar("R")


def command_line(
    description: str | None, run: Callable[..., Iterable[R]], line: Callable[[R], str]
) -> None:
    """A benchmark module's ``main``: ``--quick``, a fresh emulator process, a line per row."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with EmulatorProcess() as process:
        for row in run(process.url, quick=args.quick):
            print(line(row))
