"""The relay's configuration and shell examples (docs/relay.md, README.md) load and run.

Markers before a fenced block (found by ``tests/_docblocks.py``, as for docs/cli.md):

* ``<!-- test: relay-config -->`` (toml): loaded by the relay's own loader (``load_relay``),
  with every ``${VAR}`` it names set in the environment;
* ``<!-- test: relay -->`` (sh): run with ``bash -e -o pipefail`` while the embedded relay
  (``dingpush serve`` with no configuration) listens; ``localhost:8080`` stands for its
  address, and the block's ``pip install`` and ``dingpush serve`` lines are left out (the test
  has installed and started it). Every JSON answer the block prints must be about a message
  the relay stored, and each stored message must reach the sandbox robot once.
* ``<!-- test: relay-oncall -->`` (sh): run the same way against a relay with an app-group
  target ``ops-group`` (an app of the emulator) and an open incident #1 in its incident store;
  every ``curl -f`` must succeed, and what the block did (a recall, an acknowledgement) must
  show in the emulator and the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import tomllib
import typing
from collections.abc import Iterator

import httpx
import pytest

from _docblocks import ROOT, Block, marked_blocks
from dingpush import AsyncApp
from dingpush.relay import AppTarget, Relay, RelayServer, RelaySettings
from dingpush.relay._config import load_relay
from dingpush.relay._incidents import IncidentState
from dingpush.relay._serve import Embedded, embedded
from dingpush.relay.stores import MemoryIncidentStore, SQLiteStore
from dingpush.testing import EmulatorServer

GUIDES = (ROOT / "README.md", ROOT / "docs" / "relay.md")
KINDS = ("relay-config", "relay", "relay-oncall")
_SETUP_LINE = re.compile(r"^\s*(pip install|dingpush serve)\b")


def blocks(kind: str) -> list[typing.Any]:
    return [
        pytest.param(block, id=f"{block.where}:{block.kind}")
        for guide in GUIDES
        for block in marked_blocks(guide, KINDS)
        if block.kind == kind
    ]


def test_the_guides_have_both_kinds_of_example() -> None:
    assert [p.values[0].path.name for p in blocks("relay-config")] == ["relay.md"]
    assert {p.values[0].path.name for p in blocks("relay")} == {"README.md", "relay.md"}


# -- the configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("relay-config"))
def test_configuration_example_loads(
    block: Block, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in set(re.findall(r"\$\{(\w+)\}", block.body)):
        # Secrets of robots start with SEC, as DingTalk's do; the rest are opaque tokens.
        monkeypatch.setenv(name, ("SEC" if name.endswith("SECRET") else "") + "0f3c9a7e5b1d4c2a")
    path = tmp_path / "dingpush.toml"
    path.write_text(block.body, encoding="utf-8")
    loaded = load_relay(str(path))
    assert loaded is not None
    relay, origin = loaded
    assert origin == str(path)
    written = tomllib.loads(block.body)
    assert set(relay.targets) == set(written["targets"])
    assert set(written["relay"]["targets"]) <= set(relay.targets)
    settings = relay.settings
    assert (settings.host, settings.port) == (written["relay"]["host"], written["relay"]["port"])
    assert len(settings.api_tokens) == len(written["relay"]["api_tokens"])
    assert isinstance(relay.store, SQLiteStore)  # never opened here: the path is the server's


# -- the shell examples, against a live relay ------------------------------------------------


@pytest.fixture
def sandbox_relay(tmp_path: pathlib.Path) -> Iterator[Embedded]:
    setup = embedded(port=0, directory=tmp_path)
    with RelayServer(setup.relay, emulator=setup.emulator, sock=setup.sock):
        yield setup


def _script(block: Block, url: str) -> str:
    lines = [line for line in block.body.splitlines() if not _SETUP_LINE.match(line)]
    return "\n".join(lines).replace("localhost:8080", url.removeprefix("http://"))


def _answers(output: str) -> list[dict[str, typing.Any]]:
    """Every JSON object printed (curl leaves no newline between answers)."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while (start := output.find("{", index)) != -1:
        value, index = decoder.raw_decode(output, start)
        found.append(value)
    return found


def _eventually(check: typing.Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within 30 s")
        time.sleep(0.02)


@pytest.mark.parametrize("block", blocks("relay"))
def test_shell_example_runs_against_a_live_relay(
    block: Block, sandbox_relay: Embedded, tmp_path: pathlib.Path
) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PATH"] = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _script(block, sandbox_relay.url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == block.exit, process.stdout + process.stderr
    with httpx.Client(base_url=sandbox_relay.url) as http:
        stored = {m["id"] for m in http.get("/v1/messages").json()["items"]}
        assert stored, "the example stored no message"
        answers = _answers(process.stdout)
        assert answers, process.stdout
        for answer in answers:  # no problem document (a 4xx/5xx) among them
            assert answer.get("id") in stored, answer

        def delivered() -> bool:
            items = http.get("/v1/messages?status=delivered").json()["items"]
            return {m["id"] for m in items} == stored

        _eventually(delivered, "every message of the example to be delivered")
    shown = [m.msg_uuid or "" for m in sandbox_relay.emulator.messages(robot="sandbox")]
    assert sorted(shown) == sorted(stored)  # each once


# -- recall and incidents, against a relay with an app target and an incident ------------------


@pytest.fixture
def oncall_relay(
    dingtalk_emulator: EmulatorServer,
) -> Iterator[tuple[RelayServer, MemoryIncidentStore]]:
    config = dingtalk_emulator.add_app("ops-app", groups=["Ops"])
    (cid,) = config.groups
    app = AsyncApp(
        config.app_key, config.app_secret, api_base=dingtalk_emulator.url, token_cache=False
    )
    target = AppTarget("ops-group", app, "app-group", open_conversation_id=cid, owns_app=True)
    incidents = MemoryIncidentStore()
    relay = Relay([target], settings=RelaySettings(port=0, idle_poll=0.2), incidents=incidents)
    with RelayServer(relay) as server:
        _run_async(
            incidents.open_incident(
                route="ops",
                group_key="DiskFull",
                title="DiskFull on db-1",
                labels={"alertname": "DiskFull", "instance": "db-1"},
                policy="page",
                targets=["ops-group"],
                due_at=time.time() + 300,
                now=time.time(),
            )
        )
        yield server, incidents


def _run_async(coroutine: typing.Any) -> typing.Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize("block", blocks("relay-oncall"))
def test_oncall_example_runs_against_a_live_relay(
    block: Block,
    oncall_relay: tuple[RelayServer, MemoryIncidentStore],
    dingtalk_emulator: EmulatorServer,
    tmp_path: pathlib.Path,
) -> None:
    server, incidents = oncall_relay
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    process = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", _script(block, server.url)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == block.exit, process.stdout + process.stderr
    assert process.stdout.strip(), "the example printed nothing"
    if "/recall" in block.body:
        recalled = [k for k in dingtalk_emulator.emulator.app_messages() if k.recalled_at]
        assert len(recalled) == 1, process.stdout
        assert '"outcome": "recalled"' in process.stdout
    if "/ack" in block.body:
        incident = _run_async(incidents.get(1))
        assert incident.state is IncidentState.ACKNOWLEDGED and incident.acknowledged_by == "alice"
        assert '["acknowledged","alice","api"]' in process.stdout
