"""``python -m bench.alert_loadgen URL SECONDS CONCURRENCY``: Alertmanager bodies at the relay.

Like :mod:`bench.loadgen`, in its own process with raw asyncio HTTP/1.1 and kept-alive
connections, but each request is an Alertmanager webhook body (version 4, one firing alert)
with its own group key and fingerprint, posted to ``URL`` (the relay's ``/alertmanager/NAME``):
every request is a new notification, never a duplicate. Prints one JSON line: answers by
status, requests per second, latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import typing
import urllib.parse

_TEMPLATE = {
    "version": "4",
    "status": "firing",
    "receiver": "dingpush",
    "groupLabels": {"alertname": "HighCPU"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example:9093",
    "truncatedAlerts": 0,
}


def body(worker: int, n: int) -> bytes:
    """A one-alert Alertmanager notification, unique to (worker, n)."""
    labels = {
        "alertname": "HighCPU",
        "severity": "critical",
        "instance": f"web-{worker:02d}-{n}:9100",
        "job": "node",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"CPU above 90% on web-{worker:02d}-{n}",
            "runbook_url": "https://runbooks.example/cpu",
        },
        "startsAt": "2026-11-28T05:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=cpu",
        "fingerprint": f"{worker:04x}{n:012x}",
    }
    payload = {
        **_TEMPLATE,
        "groupKey": f'{{}}:{{alertname="HighCPU", instance="web-{worker:02d}-{n}"}}',
        "commonLabels": labels,
        "alerts": [alert],
    }
    return json.dumps(payload).encode()


async def _client(
    host: str, port: int, path: str, deadline: float, worker: int, out: list[tuple[int, float]]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while time.perf_counter() < deadline:
            n += 1
            data = body(worker, n)
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            out.append((int(status_line.split()[1]), time.perf_counter() - started))
    finally:
        writer.close()


async def run(url: str, seconds: float, concurrency: int) -> dict[str, object]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out: list[tuple[int, float]] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_client(host, port, parts.path, deadline, i, out) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for status, _ in out:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    latencies = sorted(t for s, t in out if s == 200)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(out),
        "statuses": statuses,
        "accepted_per_s": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "elapsed": elapsed,
    }


def measure(url: str, seconds: float, concurrency: int) -> dict[str, typing.Any]:
    """Run this load generator in a process of its own against ``url``; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.alert_loadgen", url, str(seconds), str(concurrency)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    return typing.cast(dict[str, typing.Any], json.loads(done.stdout))


def main() -> int:
    url, seconds, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    try:  # as bench.loadgen does, so the two measure the server alike
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(url, seconds, concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
