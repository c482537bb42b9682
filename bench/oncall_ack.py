"""``@robot ack`` to the group's confirmation, against the emulator (issue 16's ≤ 1 s target).

    python -m bench.oncall_ack [--quick]

A relay (in a thread of this process, with an in-memory incident store) serves an app-group
target in the emulator's group; for each run an incident is opened in its store, then "alice"
posts ``ack`` with ``@robot`` through the emulator's control API (``POST
/_emulator/people/post``), and the figure is the time from before that post to the moment the
group's confirmation ("#N acknowledged by alice") is in the emulator's chat (``GET
/_emulator/messages``). Two receiving modes, each its own app of the same emulator process:

* HTTP callbacks: the emulator makes a signed POST to the relay's ``/callbacks/APP`` (§12),
  whose answer is the reply (§12.3);
* Stream mode: the relay's Stream client gets the frame (§13) and replies through the
  message's sessionWebhook (§12.4).

Wall-clock time on a shared machine: noisy; ``run()`` returns the rows for the harness.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from dataclasses import dataclass

import httpx

TARGET_S = 1.0
USER = "alice"
GROUP = "Oncall"


@dataclass(frozen=True)
class Row:
    mode: str
    latency_ms: list[float]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _measure(url: str, mode: str, runs: int) -> Row:
    from dingpush import AsyncApp
    from dingpush.alerts import AlertSettings, Person, Route
    from dingpush.relay import AlertReceivers, AppTarget, Relay, RelayServer, RelaySettings
    from dingpush.relay._receivers import ChatReceivers, ReceivingApp
    from dingpush.relay.stores import MemoryIncidentStore

    control = httpx.Client(base_url=url + "/_emulator", timeout=30, trust_env=False)
    name = f"ack{mode}"
    key, secret = f"dingbench{name}", f"bench-secret-{name}-0123456789abcdef"
    body = {"name": name, "app_key": key, "app_secret": secret, "users": [USER]}
    created = control.post("/apps", json={**body, "groups": [GROUP], "api_qps": 0})
    created.raise_for_status()
    cid = next(iter(created.json()["groups"]))
    store = MemoryIncidentStore()
    app = AsyncApp(key, secret, api_base=url, token_cache=None)
    relay = Relay(
        [AppTarget("oncall", app, "app-group", open_conversation_id=cid, owns_app=True)],
        settings=RelaySettings(port=_free_port()),
        alerts=AlertReceivers(
            AlertSettings(
                routes={"ops": Route(targets=["oncall"])},
                people={USER: Person(user_id=USER)},
            )
        ),
        incidents=store,
        chat=ChatReceivers([ReceivingApp(name, key, secret, url)], mode=mode),
    )
    latency = []
    with RelayServer(relay) as server:
        if mode == "callback":
            patch = {"callback_url": f"{server.url}/callbacks/{name}"}
            control.patch(f"/apps/{name}", json=patch).raise_for_status()
        else:
            deadline = time.monotonic() + 30
            while control.get("/stream", params={"app": name}).json()["connections"] < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the relay's Stream client did not connect")
                time.sleep(0.02)
        for i in range(runs):
            incident = asyncio.run(
                store.open_incident(
                    route="ops",
                    group_key=f"g{i}",
                    title=f"bench {i}",
                    labels={"alertname": "Bench"},
                    policy=None,
                    targets=["oncall"],
                    due_at=None,
                    now=time.time(),
                )
            )
            last = control.get("/messages", params={"conversation": cid}).json()["messages"]
            since = last[-1]["id"] if last else 0
            expected = f"#{incident.number} acknowledged by {USER}"
            started = time.perf_counter()
            post = {"app": name, "user": USER, "text": "ack", "group": GROUP}
            control.post("/people/post", json=post).raise_for_status()
            deadline = time.monotonic() + 30
            while True:
                found = control.get(
                    "/messages", params={"conversation": cid, "since_id": since}
                ).json()["messages"]
                if any(m["payload"].get("text", {}).get("content") == expected for m in found):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{expected!r} never reached the group")
                time.sleep(0.002)
            latency.append((time.perf_counter() - started) * 1000)
    control.close()
    return Row(mode, latency)


def run(url: str, *, quick: bool = False) -> list[Row]:
    runs = 5 if quick else 30
    return [_measure(url, "callback", runs), _measure(url, "stream", runs)]


def main() -> None:
    from bench._emulator import command_line

    command_line(
        __doc__,
        run,
        lambda row: (
            f"{row.mode}: p50 {statistics.median(row.latency_ms):.1f} ms, "
            f"max {max(row.latency_ms):.1f} ms ({len(row.latency_ms)} runs)"
        ),
    )


if __name__ == "__main__":
    main()
