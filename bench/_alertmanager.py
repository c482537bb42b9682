"""A real Alertmanager for tests and benchmarks: Debian's ``prometheus-alertmanager``, own ports.

One module for both: the benchmarks import it as ``bench._alertmanager`` and so do the tests
(pytest puts the checkout on ``sys.path``, ``pythonpath = ["."]`` in pyproject.toml).

``scripts/ensure-alertmanager`` (run by ``make test`` and ``.ci/run``) installs it; a missing
binary fails the test saying how to install it — nothing is skipped. The webhook receiver points
at a URL the test gives (the relay's receiver), with short ``group_wait``/``group_interval`` so
firing and resolved notifications arrive in seconds.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import shutil
import socket
import subprocess
import time
import typing
import urllib.error
import urllib.request

BINARY = "/usr/bin/prometheus-alertmanager"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iso(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return stamp.isoformat().replace("+00:00", "Z")


class Alertmanager:
    """One Alertmanager process; ``with Alertmanager(tmp, url) as am: am.fire([...])``."""

    def __init__(
        self,
        directory: pathlib.Path,
        webhook_url: str,
        *,
        group_by: typing.Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "2s",
        repeat_interval: str = "1h",
    ) -> None:
        if shutil.which(BINARY) is None:
            raise AssertionError(
                f"{BINARY} is missing: run scripts/ensure-alertmanager (apt-get install "
                "prometheus-alertmanager); make test does it"
            )
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "route": {
                "receiver": "dingpush",
                "group_by": list(group_by),
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": repeat_interval,
            },
            "receivers": [
                {
                    "name": "dingpush",
                    "webhook_configs": [
                        {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
                    ],
                }
            ],
        }
        # YAML is a superset of JSON: no YAML writer needed.
        (directory / "alertmanager.yml").write_text(json.dumps(config), encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "alertmanager.log"

    def start(self) -> Alertmanager:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    BINARY,
                    f"--config.file={self.directory / 'alertmanager.yml'}",
                    f"--storage.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=info",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"alertmanager exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"alertmanager did not become ready: {self.log()}")

    def log(self) -> str:
        return self._log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def fire(self, alerts: typing.Sequence[dict[str, typing.Any]]) -> None:
        """POST alerts to ``/api/v2/alerts`` (``endsAt`` in the past resolves them)."""
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200, reply.read()

    def metric(self, name: str) -> float:
        """The sum of a metric's samples in ``/metrics`` (e.g. failed notifications)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head == name or head.startswith(name + "{"):
                    total += float(value)
        return total

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Alertmanager:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def alert(
    name: str, labels: typing.Mapping[str, str] | None = None, *, ends: float | None = None
) -> dict[str, typing.Any]:
    """An alert for ``/api/v2/alerts``: firing, or resolved at ``ends``."""
    labels = dict(labels or {})
    body: dict[str, typing.Any] = {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on {labels.get('instance', 'somewhere')}"},
        "generatorURL": "http://prometheus.example:9090/graph",
    }
    if ends is not None:
        body["endsAt"] = iso(ends)
    return body
