"""The relay in its own OS process (``python -m dingpush.relay --config``), for the benchmarks."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class BenchTarget:
    name: str
    url: str
    rate: str = "20/60s"
    coalesce: bool = False
    coalesce_after: str | None = None


def _config(targets: Sequence[BenchTarget], store: str, extra: Sequence[str] = ()) -> str:
    lines: list[str] = []
    for t in targets:
        lines += [f"[targets.{t.name}]", 'kind = "robot"', f'webhook = "{t.url}"']
        lines += [f'rate = "{t.rate}"', ""]
    lines += ["[relay]", "port = 0", f'store = "{store}"', 'lease = "60s"', *extra, ""]
    for t in targets:
        lines += [f"[relay.targets.{t.name}]", f"coalesce = {'true' if t.coalesce else 'false'}"]
        if t.coalesce_after is not None:
            lines.append(f'coalesce_after = "{t.coalesce_after}"')
        lines.append("")
    return "\n".join(lines)


class RelayProcess:
    """A relay serving ``targets`` with an SQLite outbox in a temporary directory.

    Args:
        cpu: Pin the process to this one CPU (``sched_setaffinity``), to measure one core.
        extra: More TOML appended to the configuration (the alert benchmarks' ``[routes]``).
        python: The interpreter that runs the relay (another checkout's venv, to compare).
        profile: Run the relay under ``cProfile`` and write its stats to this file on exit.
    """

    def __init__(
        self,
        targets: Sequence[BenchTarget],
        *,
        store: str = "outbox.sqlite",
        cpu: int | None = None,
        extra: str | Sequence[str] = "",
        python: str = sys.executable,
        profile: str | None = None,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="dingpush-bench-relay-")
        folder = pathlib.Path(self._dir.name)
        if isinstance(extra, str):  # more tables ([routes.NAME]…)
            config = _config(targets, store, ()) + extra
        else:  # more lines of [relay]
            config = _config(targets, store, extra)
        (folder / "dingpush.toml").write_text(config, encoding="utf-8")
        self._cpu = cpu
        module = ["dingpush.relay"] if profile is None else ["bench._profiled_relay", profile]
        self.process = subprocess.Popen(
            [python, "-m", *module, "--config", "dingpush.toml"],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parent.parent)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if cpu is not None:
            os.sched_setaffinity(self.process.pid, {cpu})
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first.startswith("dingpush relay listening on "):
            self.close()
            raise RuntimeError(f"the relay did not start: {first!r}")
        self.url = first.split()[4]
        self.http = httpx.Client(base_url=self.url, timeout=60, trust_env=False)

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self._dir.name)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the relay process has used so far."""
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        parts = fields.split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(parts[11]) + int(parts[12])) / ticks

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds by thread: ``main`` (the event loop) and the others by their name."""
        ticks = os.sysconf("SC_CLK_TCK")
        totals: dict[str, float] = {}
        for task in pathlib.Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                if task.name == str(self.process.pid):
                    name = "main"
                parts = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended meanwhile
                continue
            totals[name] = totals.get(name, 0.0) + (int(parts[11]) + int(parts[12])) / ticks
        return totals

    def delivered(self) -> dict[str, int]:
        """Messages delivered per target, from the relay's own metrics."""
        text = self.http.get("/metrics").text
        counts: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("dingpush_relay_delivered_total{"):
                name = line.split('"')[1]
                counts[name] = int(float(line.rsplit(" ", 1)[1]))
        return counts

    def post_spread(self, total: int, targets: int) -> None:
        """Queue ``total`` text messages (``alert N``) over the targets ``t0``…, round robin,
        through ``/v1/messages:batch``, 1,000 a request."""
        for first in range(0, total, 1000):
            batch = [
                {
                    "target": f"t{n % targets}",
                    "message": {"msgtype": "text", "text": {"content": f"alert {n}"}},
                }
                for n in range(first, min(first + 1000, total))
            ]
            self.http.post("/v1/messages:batch", json={"messages": batch}).raise_for_status()

    def metric(self, name: str) -> int:
        total = 0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(f"dingpush_relay_{name}_total{{"):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def wait(self, check: typing.Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(every)
        return check()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no lease given up."""
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        if getattr(self, "http", None) is not None:
            self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._dir.cleanup()

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
