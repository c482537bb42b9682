"""``python -m bench.loadgen URL SECONDS CONCURRENCY [--alertmanager]``: a lean load generator.

Runs in its own process so that it never shares a GIL with the server it measures. Each of
``CONCURRENCY`` connections (kept alive) sends ``POST /v1/messages`` with a ~400-byte markdown
alert and a fresh ``Idempotency-Key``, waits for the answer, and sends the next; it prints one
JSON line: answers by status, requests per second and latency percentiles. Raw asyncio streams
and pre-encoded requests keep its own cost per request far below the server's.

A URL whose path is a robot webhook (``…/robot/send?access_token=…``) is posted the alert as a
robot's markdown message instead, and HTTP 200 counts as accepted: the emulator's ceiling,
what no client of it can exceed.

With ``--alertmanager`` each request is an Alertmanager webhook body (version 4, one firing
alert) with its own group key and fingerprint, posted to ``URL`` (the relay's
``/alertmanager/NAME``): every request is a new notification, never a duplicate, and HTTP 200
counts as accepted.
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

BODY = json.dumps(
    {
        "target": "bench",
        "message": {
            "msgtype": "markdown",
            "markdown": {
                "title": "CPU alert",
                "text": "### web-01 CPU 97%\n\n- **severity**: critical\n- **since**: "
                "2026-11-28 13:05:00 +08:00\n- **runbook**: https://runbooks.example.com/cpu\n\n"
                "> 磁盘和 CPU 告警：请值班同学尽快处理。@ops-lead",
            },
            "at": {"atUserIds": ["ops-lead"]},
        },
    },
    ensure_ascii=False,
).encode()
ROBOT_BODY = json.dumps(json.loads(BODY)["message"], ensure_ascii=False).encode()


_ALERT_TEMPLATE = {
    "version": "4",
    "status": "firing",
    "receiver": "dingpush",
    "groupLabels": {"alertname": "HighCPU"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example:9093",
    "truncatedAlerts": 0,
}


def alertmanager_body(worker: int, n: int) -> bytes:
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
        **_ALERT_TEMPLATE,
        "groupKey": f'{{}}:{{alertname="HighCPU", instance="web-{worker:02d}-{n}"}}',
        "commonLabels": labels,
        "alerts": [alert],
    }
    return json.dumps(payload).encode()


#: The bytes of request ``n`` on connection ``worker``.
Requests = typing.Callable[[int, int], bytes]


def _fixed_body(host: str, port: int, path: str, body: bytes) -> Requests:
    """The same pre-encoded body each time, with a fresh ``Idempotency-Key``."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()

    def request(worker: int, n: int) -> bytes:
        return head + f"Idempotency-Key: lg-{worker}-{n}\r\n\r\n".encode() + body

    return request


def _alertmanager_bodies(host: str, port: int, path: str) -> Requests:
    """A new Alertmanager notification each time (no idempotency key: Alertmanager sends none)."""

    def request(worker: int, n: int) -> bytes:
        data = alertmanager_body(worker, n)
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode() + data

    return request


async def _client(
    host: str,
    port: int,
    requests: Requests,
    deadline: float,
    worker: int,
    out: list[tuple[int, float]],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while time.perf_counter() < deadline:
            n += 1
            request = requests(worker, n)
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


async def run(
    url: str, seconds: float, concurrency: int, *, alertmanager: bool = False
) -> dict[str, object]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests: Requests
    if alertmanager:  # the relay's Alertmanager receiver
        requests, accepted = _alertmanager_bodies(host, port, parts.path), 200
    elif parts.path.endswith("/robot/send"):  # the emulator's webhook: DingTalk's robot body
        requests = _fixed_body(host, port, f"{parts.path}?{parts.query}", ROBOT_BODY)
        accepted = 200
    else:  # the relay's API
        path = (parts.path.rstrip("/") or "") + "/v1/messages"
        requests, accepted = _fixed_body(host, port, path, BODY), 202
    out: list[tuple[int, float]] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_client(host, port, requests, deadline, i, out) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for status, _ in out:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    latencies = sorted(t for s, t in out if s == accepted)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(out),
        "statuses": statuses,
        "accepted_per_s": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
        "elapsed": elapsed,
    }


def measure(
    url: str, seconds: float, concurrency: int, *, alertmanager: bool = False
) -> dict[str, typing.Any]:
    """Run the load generator in a process of its own against ``url``; its JSON result."""
    flags = ["--alertmanager"] if alertmanager else []
    run = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, str(seconds), str(concurrency), *flags],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    return typing.cast(dict[str, typing.Any], json.loads(run.stdout))


def main() -> int:
    url, seconds, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    alertmanager = sys.argv[4:] == ["--alertmanager"]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(url, seconds, concurrency, alertmanager=alertmanager))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
