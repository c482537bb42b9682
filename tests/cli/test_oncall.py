"""``recall``, ``read-status``, ``ding`` and ``listen`` against the emulator (§11–§14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from dingpush.testing import EmulatorServer

from .conftest import APP_SECRET, CID, Runner


def test_recall_and_read_status_of_a_group_message(corp: EmulatorServer, run: Runner) -> None:
    with corp.app_client("corp") as app:
        sent = app.group(CID).send("disk full on db-1")
    corp.emulator.read_app_message(sent.process_query_key, ["alice"])
    status = run("read-status", "--to", "room", sent.process_query_key)
    assert status.exit_code == 0 and "SUCCESS: read by 1: alice" in status.stdout
    recalled = run("recall", "--to", "room", "--json", sent.process_query_key)
    assert recalled.exit_code == 0, recalled.output
    assert json.loads(recalled.stdout) == {
        "recalled": [sent.process_query_key],
        "failed": {},
        "group": CID,
    }
    again = run("read-status", "--to", "corp", "--group", CID, "--json", sent.process_query_key)
    assert json.loads(again.stdout)["send_status"] == "RECALLED"


def test_one_to_one_read_status_and_an_unknown_key(corp: EmulatorServer, run: Runner) -> None:
    with corp.app_client("corp") as app:
        sent = app.users(["alice", "bob"]).send("on call tonight")
    corp.emulator.read_app_message(sent.process_query_key, ["bob"])
    status = run("read-status", "--to", "corp", sent.process_query_key)
    assert "read bob; unread alice" in status.stdout
    unknown = run("recall", "--to", "corp", "bm9wZQ==")
    assert unknown.exit_code == 4 and "invalid.processQueryKey" in unknown.stderr
    assert APP_SECRET not in unknown.output


def test_ding_status_and_recall(corp: EmulatorServer, run: Runner) -> None:
    sent = run("ding", "--to", "corp", "-u", "alice", "-u", "ghost", "--json", "db-1 down")
    assert sent.exit_code == 0, sent.output
    data = json.loads(sent.stdout)
    assert data["remind_type"] == "app" and data["failed"] == {"invalid userId": ["ghost"]}
    (ding_id,) = data["open_ding_ids"]
    corp.emulator.read_ding(ding_id, ["alice"])
    assert "read alice; unread -" in run("ding", "--to", "corp", "--status", ding_id).stdout
    assert run("ding", "--to", "corp", "--recall", ding_id).exit_code == 0
    assert corp.emulator.dings()[0].recalled_at is not None


def test_ding_without_quota_exits_3_and_falls_back(corp: EmulatorServer, run: Runner) -> None:
    corp.emulator.update_app("corp", paid_ding=False)
    refused = run("ding", "--to", "corp", "-u", "alice", "--remind", "call", "wake up")
    assert refused.exit_code == 3 and "fallback" in refused.stderr
    fell_back = run("ding", "--to", "corp", "-u", "alice", "--remind", "call", "--fallback", "x")
    assert fell_back.exit_code == 0 and "no call quota" in fell_back.stdout


def test_ding_usage(corp: EmulatorServer, run: Runner) -> None:
    assert run("ding", "--to", "corp", "no receivers").exit_code == 2
    assert run("ding", "--to", "corp", "--recall", "x", "--status", "y").exit_code == 2


def test_listen_prints_user_ids_and_conversation_ids(corp: EmulatorServer) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dingpush", "listen", "--to", "corp", "--count", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 30
        while corp.emulator.stream.connections("corp") == 0:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "listen did not connect"
            time.sleep(0.05)
        corp.emulator.post_as_user("corp", "alice", "hello", group="Ops")
        corp.emulator.post_as_user("corp", "bob", "hi")
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [(m["sender_user_id"], m["conversation_type"]) for m in lines] == [
        ("alice", "group"),
        ("bob", "oto"),
    ]
    assert lines[0]["conversation_id"] == CID and lines[0]["text"] == "hello"
    assert b"listening" in err and APP_SECRET.encode() not in out + err


def test_listen_names_the_extra_when_websockets_is_missing(corp: EmulatorServer) -> None:
    # As if `pip install dingpush[cli]` without the stream extra: websockets cannot be imported.
    code = (
        "import sys; sys.modules['websockets'] = None; "
        "from dingpush.cli import main; "
        "sys.argv = ['dingpush', 'listen', '--to', 'corp']; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=dict(os.environ), timeout=60
    )
    assert done.returncode == 3
    assert b"pip install 'dingpush[stream]'" in done.stderr
