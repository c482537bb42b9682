"""Each command with two entry points is one command: ``dingpush emulator`` and
``python -m dingpush.emulator``, ``dingpush serve`` and ``python -m dingpush.relay`` take the
same options with the same defaults and do the same thing (issue 12)."""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence

import click
import httpx
import pytest

from dingpush.cli._emulator import emulator as emulator_command
from dingpush.cli._serve import serve as serve_command
from dingpush.config import (
    CONFIG_OPTION,
    EMULATOR_OPTIONS,
    SERVE_OPTIONS,
    VERBOSE_OPTION,
    add_arguments,
    option_values,
)
from dingpush.emulator import EmulatorCommand
from dingpush.emulator.__main__ import _parser as emulator_parser
from dingpush.relay.__main__ import main as relay_main

SECRET = "SEC" + "5d41402abc4b2a76b9719d911017c592" * 2
WEBHOOK = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123"

EMULATOR_ARGS = [
    pytest.param([], id="defaults"),
    pytest.param(["--rate", "20/min"], id="rate-20/min"),
    pytest.param(["--rate", "5000/1m", "--lockout", "10m"], id="rate-and-lockout"),
    pytest.param(
        [
            *("--robot", f"ops:ops-tok:{SECRET}:ALERT,告警", "--robot", "plain"),
            *("--keyword", "K", "--ip", "10.0.0.0/8", "--ip", "127.0.0.1"),
            *("--rate-errcode", "410100", "--host", "0.0.0.0", "--port", "0"),
        ],
        id="robots-keywords-ips",
    ),
    pytest.param(
        ["--app", "corp:dingcorpkey:corp-secret", "--app-user", "alice", "--app-group", "Ops"],
        id="apps",
    ),
]


def _argparse_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, object]:
    return dict(vars(parser.parse_args(list(argv))))


def _click_values(command: click.Command, argv: Sequence[str]) -> dict[str, object]:
    with command.make_context(command.name or "", list(argv)) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("argv", EMULATOR_ARGS)
def test_the_emulator_commands_read_the_same_options(argv: list[str]) -> None:
    parsed = _argparse_values(emulator_parser(), argv)
    assert parsed.pop("config") is None  # dingpush's global --config, for python -m
    by_argparse = option_values(parsed, EMULATOR_OPTIONS)
    by_click = option_values(_click_values(emulator_command, argv), EMULATOR_OPTIONS)
    assert by_argparse == by_click
    assert EmulatorCommand.from_options(by_argparse) == EmulatorCommand.from_options(by_click)


def test_the_emulator_defaults() -> None:
    command = EmulatorCommand.from_options(
        option_values(_click_values(emulator_command, []), EMULATOR_OPTIONS)
    )
    assert (command.host, command.port) == ("127.0.0.1", 8765)
    [robot] = command.robots
    assert (robot.name, robot.token, robot.rate_limit, robot.rate_window) == (
        "sandbox",
        "sandbox-token",
        20,
        60.0,
    )
    assert robot.lockout == 600.0 and command.options.rate_limit_errcode == 130101


def test_per_robot_keywords_and_shared_ones() -> None:
    argv = ["--robot", "ops:t::ALERT,告警", "--robot", "dev", "--keyword", "K"]
    values = option_values(_click_values(emulator_command, argv), EMULATOR_OPTIONS)
    ops, dev = EmulatorCommand.from_options(values).robots
    assert (ops.token, ops.secret, ops.keywords) == ("t", None, ("ALERT", "告警", "K"))
    assert (dev.token, dev.keywords) == ("dev-token", ("K",))


BAD_EMULATOR_ARGS = [
    (["--rate", "fast"], "rate 'fast' is not of the form COUNT/PERIOD"),
    (["--lockout", "soon"], "'soon' is not a duration"),
    (["--port", "99999"], "'99999' is not a port number"),
    (["--rate-errcode", "42"], "'42' is not a throttle errcode: give 130101 or 410100"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_EMULATOR_ARGS)
def test_both_emulator_commands_refuse_a_bad_option_alike(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        emulator_parser().parse_args(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(click.BadParameter) as refused:
        _click_values(emulator_command, argv)
    assert refused.value.exit_code == 2 and message in refused.value.format_message()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--robot", ":token"], "robot ':token' has no name"),
        (["--robot", "a", "--robot", "a:t"], "--robot 'a' is given twice"),
        (["--ip", "::1"], "'::1' is IPv6; DingTalk allow-lists are IPv4 only"),
    ],
)
def test_a_robot_the_emulator_cannot_create_is_a_usage_error(argv: list[str], message: str) -> None:
    values = option_values(_argparse_values(emulator_parser(), argv), EMULATOR_OPTIONS)
    with pytest.raises(ValueError, match=re.escape(message)):
        EmulatorCommand.from_options(values)
    process = subprocess.run(
        [sys.executable, "-m", "dingpush", "emulator", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2 and message in process.stderr


SERVE_ARGS = [[], ["--host", "0.0.0.0", "--port", "0"], ["--directory", "/tmp", "--port", "9"]]


@pytest.mark.parametrize("argv", SERVE_ARGS)
def test_serve_and_python_m_relay_read_the_same_options(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser, (CONFIG_OPTION, *SERVE_OPTIONS))
    by_argparse = option_values(
        _argparse_values(parser, ["--config", "x.toml", *argv]), SERVE_OPTIONS
    )
    by_click = option_values(_click_values(serve_command, argv), SERVE_OPTIONS)
    assert by_argparse == by_click


# -- the done-when: each pair run with the same arguments, the results compared ----------------


def _command(entry: str, *args: str) -> list[str]:
    if entry == "dingpush":
        return [sys.executable, "-m", "dingpush", *args]
    return [sys.executable, "-m", entry, *args[1:]]  # args[0] is dingpush's command name


@contextlib.contextmanager
def _started(command: list[str], cwd: pathlib.Path, until: str) -> Iterator[list[str]]:
    """Start ``command``; yield its banner, read up to the line that starts with ``until``."""
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline()]
            while not lines[-1].strip().startswith(until) and lines[-1]:
                lines.append(process.stdout.readline())
            assert lines[-1], (lines, process.stderr.read() if process.stderr else "")
            yield [line.rstrip("\n") for line in lines]
        finally:
            process.terminate()
            process.wait(timeout=30)


def _normalised(lines: list[str], url: str) -> list[str]:
    return [re.sub(r"\(pid \d+\)", "(pid N)", line.replace(url, "URL")) for line in lines]


EMULATOR_RUN = [
    "emulator",
    "--port",
    "0",
    "--rate",
    "20/min",
    "--robot",
    f"ops:ops-token:{SECRET}:ALERT",
    "--robot",
    "plain",
    "--ip",
    "127.0.0.1",
    "--app",
    "corp:dingcorpkey:corp-app-secret-0123456789",
    "--app-user",
    "alice",
]


def test_dingpush_emulator_and_python_m_dingpush_emulator_serve_the_same(
    tmp_path: pathlib.Path,
) -> None:
    results = []
    for entry in ("dingpush", "dingpush.emulator"):
        with _started(_command(entry, *EMULATOR_RUN), tmp_path, "control API:") as banner:
            url = banner[0].rsplit(" ", 1)[1]
            with httpx.Client(base_url=url, trust_env=False) as client:
                robots = client.get("/_emulator/robots").json()
                sent = client.post(
                    "/robot/send?access_token=plain-token",
                    json={"msgtype": "text", "text": {"content": "20/min works"}},
                ).json()
            results.append((_normalised(banner, url), robots, sent))
    assert results[0] == results[1]
    banner, robots, sent = results[0]
    assert banner[:2] == [
        "DingTalk emulator listening on URL",
        "  robot ops (signed, keyword ALERT, IPs 127.0.0.1): URL/robot/send?access_token=ops-token",
    ]
    assert [r["rate_limit"] for r in robots["robots"]] == [20, 20]
    assert sent == {"errcode": 0, "errmsg": "ok"}
    assert SECRET not in "\n".join(banner)


@pytest.mark.parametrize(("name", "module"), [("emulator", "emulator"), ("serve", "relay")])
def test_both_emulator_and_relay_commands_stop_alike_on_ctrl_c_and_sigterm(
    tmp_path: pathlib.Path, name: str, module: str
) -> None:
    # dingpush emulator ≡ python -m dingpush.emulator; dingpush serve ≡ python -m dingpush.relay:
    # each pair ends with the same status and last words after SIGINT (Ctrl-C) and SIGTERM.
    results: dict[str, list[tuple[str, int, list[str]]]] = {}
    for command in ("dingpush", f"dingpush.{module}"):
        for sig in (signal.SIGINT, signal.SIGTERM):
            args = (name, "--port", "0", *(("--store", "memory") if name == "serve" else ()))
            with subprocess.Popen(
                _command(command, *args),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ) as process:
                assert process.stdout is not None
                assert "listening on" in process.stdout.readline()  # signals are handled now
                process.send_signal(sig)
                _, err = process.communicate(timeout=30)
            last = [line for line in err.splitlines() if not line.startswith("INFO:")][-1:]
            results.setdefault(command, []).append((sig.name, process.returncode, last))
    first, second = results.values()
    assert first == second
    if name == "emulator":
        assert first == [("SIGINT", 130, ["Aborted."]), ("SIGTERM", 0, [])]
    else:
        assert [code for _, code, _ in first] == [0, 0]


def _relay_config(tmp_path: pathlib.Path, relay: str = '[relay]\nstore = "memory"\n') -> str:
    path = tmp_path / "dingpush.toml"
    path.write_text(f'[targets.ops]\nwebhook = "{WEBHOOK}"\n{relay}', encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("verbose", [(), ("-v",)], ids=["quiet", "verbose"])
def test_dingpush_serve_and_python_m_dingpush_relay_serve_the_same(
    tmp_path: pathlib.Path, verbose: tuple[str, ...]
) -> None:
    config = _relay_config(tmp_path)
    banners = []
    for entry in ("dingpush", "dingpush.relay"):
        args = ("serve", "--config", config, "--port", "0", *verbose)
        with _started(_command(entry, *args), tmp_path, "outbox:") as banner:
            url = banner[0].split()[4]
            assert httpx.get(f"{url}/healthz", trust_env=False).status_code == 200
            banners.append(_normalised(banner, url))
    assert banners[0] == banners[1]
    assert banners[0][0].startswith("dingpush relay listening on URL")


def test_both_relay_commands_refuse_a_bad_file_alike(tmp_path: pathlib.Path) -> None:
    config = _relay_config(tmp_path, '[relay]\nport = "x"\nlease = "never"\n')
    results = []
    for entry in ("dingpush", "dingpush.relay"):
        process = subprocess.run(
            _command(entry, "serve", "--config", config),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        results.append((process.returncode, process.stdout, process.stderr))
    assert results[0] == results[1]
    assert results[0][0] == 3 and results[0][2].startswith("Error: the configuration has 2 ")


def test_python_m_dingpush_relay_returns_the_errors_exit_status(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _relay_config(tmp_path, '[relay]\nhost = "0.0.0.0"\n')
    assert relay_main(["--config", config]) == 3
    assert "without API tokens" in capsys.readouterr().err


# -- [emulator]: the same command reads the same file ------------------------------------------

EMULATOR_TABLE = """\
[targets.ops]
webhook = "http://127.0.0.1:8765/robot/send?access_token=ops-token"

[emulator]
port = 9
rate = "5/1s"
keywords = ["ALERT"]

[emulator.robots.ops]
secret = "${OPS_SECRET}"
keywords = ["告警"]
ip_allowlist = ["127.0.0.1"]
lockout = "1m"

[emulator.robots.fast]
token = "fast-token"
rate = "1000/1s"

[emulator.apps.corp]
app_key = "dingcorpkey"
app_secret = "corp-app-secret-0123456789"
users = ["alice"]
groups = ["Ops"]
"""


def test_the_emulator_table_gives_robots_with_their_own_keywords(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dingpush.config import emulator_values

    monkeypatch.setenv("OPS_SECRET", SECRET)
    path = tmp_path / "dingpush.toml"
    path.write_text(EMULATOR_TABLE, encoding="utf-8")
    argv = ["--port", "0", "--robot", "extra", "--keyword", "K", "--app-user", "bob"]
    commands = [
        EmulatorCommand.from_options(emulator_values(parsed, str(path)))
        for parsed in (
            _click_values(emulator_command, argv),
            _argparse_values(emulator_parser(), argv),
        )
    ]
    assert commands[0] == commands[1]
    command = commands[0]
    assert command.port == 0  # the command line wins
    ops, fast, extra = command.robots
    assert (ops.name, ops.token, ops.secret) == ("ops", "ops-token", SECRET)
    assert ops.keywords == ("告警", "ALERT", "K") and ops.ip_allowlist == ("127.0.0.1",)
    assert (ops.rate_limit, ops.rate_window, ops.lockout) == (5, 1.0, 60.0)
    assert (fast.token, fast.rate_limit, fast.keywords) == ("fast-token", 1000, ("ALERT", "K"))
    assert (extra.token, extra.rate_limit, extra.lockout) == ("extra-token", 5, 600.0)
    [corp] = command.apps
    assert corp.app_key == "dingcorpkey" and corp.users == ("alice", "bob")
    assert "corp-app-secret-0123456789" not in "\n".join(command.banner("http://h"))


def test_the_cli_keeps_the_emulator_table_for_the_emulator(tmp_path: pathlib.Path) -> None:
    from dingpush.config import load_config

    path = tmp_path / "dingpush.toml"
    path.write_text(EMULATOR_TABLE, encoding="utf-8")
    config = load_config(path, env={})
    assert list(config.targets) == ["ops"] and config.tables["emulator"]["port"] == 9


def test_both_emulator_commands_refuse_a_bad_emulator_table_alike(tmp_path: pathlib.Path) -> None:
    (tmp_path / "dingpush.toml").write_text(
        '[emulator]\nrate = "fast"\nkeyword = "x"\n[emulator.robots.ops]\nkeywords = "ALERT"\n'
        'secret = "${NOT_SET_ANYWHERE}"\n',
        encoding="utf-8",
    )
    results = []
    for entry in ("dingpush", "dingpush.emulator"):
        process = subprocess.run(
            _command(entry, "emulator", "--port", "0"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        results.append((process.returncode, process.stderr))
    assert results[0] == results[1]
    code, stderr = results[0]
    assert code == 3
    assert stderr.splitlines() == [
        "Error: the configuration has 4 problems:",
        "  dingpush.toml:2: emulator.rate: 'fast' is not a rate. Fix: write COUNT/PERIOD, e.g. "
        '"20/60s" or "20/1m"',
        "  dingpush.toml:3: emulator.keyword: unknown setting; did you mean 'keywords'? Fix: use "
        "one of host, port, rate, lockout, rate_errcode, keywords, ip_allowlist, robots, apps",
        "  dingpush.toml:5: emulator.robots.ops.keywords: must be a list of strings, not a "
        'string. Fix: write keywords = ["a", "b"]',
        "  dingpush.toml:6: emulator.robots.ops.secret: refers to ${NOT_SET_ANYWHERE}, which is "
        "not set. Fix: export NOT_SET_ANYWHERE=… in the environment that runs dingpush, or "
        "write ${NOT_SET_ANYWHERE:-fallback}",
    ]


def test_the_guides_emulator_table_and_banner_are_what_the_command_reads_and_prints(
    tmp_path: pathlib.Path,
) -> None:
    from dingpush.config import emulator_values

    guide = (pathlib.Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    section = guide.split("## The emulator", 1)[1]
    command_line, banner, table = re.findall(r"```\w*\n(.*?)\n```", section, re.DOTALL)[:3]
    argv = command_line.split()[2:]
    values = emulator_values(_click_values(emulator_command, argv), env={})
    assert EmulatorCommand.from_options(values).banner("http://127.0.0.1:8765") == (
        banner.splitlines()
    )
    path = tmp_path / "dingpush.toml"
    path.write_text(table, encoding="utf-8")
    values = emulator_values({}, str(path), env={"OPS_SECRET": SECRET})
    [ops] = EmulatorCommand.from_options(values).robots
    assert (ops.token, ops.keywords, ops.lockout) == ("ops-token", ("告警", "ALERT"), 600.0)


def test_config_is_the_same_option_for_dingpush_and_the_python_m_entry_points() -> None:
    # dingpush's global --config is declared in cli/_common.py, which every command imports:
    # it stays free of dingpush.config (not loaded by `dingpush --version`), so the two
    # declarations are kept equal here.
    [config] = [p for p in serve_command.params if p.name == "config"]
    assert isinstance(config, click.Option)
    assert (tuple(config.opts), config.metavar, config.help) == (
        CONFIG_OPTION.flags,
        CONFIG_OPTION.metavar,
        CONFIG_OPTION.help,
    )


def test_verbose_is_the_same_switch_for_dingpush_and_the_python_m_entry_points() -> None:
    [verbose] = [p for p in serve_command.params if p.name == "verbose"]
    assert isinstance(verbose, click.Option) and verbose.is_flag
    assert (tuple(verbose.opts + verbose.secondary_opts), verbose.help) == (
        VERBOSE_OPTION.flags,
        VERBOSE_OPTION.help,
    )
    relay_parser = argparse.ArgumentParser()
    add_arguments(relay_parser, (CONFIG_OPTION, VERBOSE_OPTION, *SERVE_OPTIONS))
    for parser in (emulator_parser(), relay_parser):
        for argv, expected in (([], False), (["-v"], True), (["--verbose"], True)):
            values = option_values(_argparse_values(parser, argv), (VERBOSE_OPTION,))
            assert values == {"verbose": expected}


@pytest.mark.parametrize("verbose", [False, True])
def test_python_m_prints_the_librarys_log_as_dingpush_does(verbose: bool) -> None:
    import io
    import logging

    from dingpush.serving import command_log_lines

    stream = io.StringIO()
    with command_log_lines(verbose=verbose, stream=stream):
        logging.getLogger("dingpush").debug("sent msgUuid m-1")
        logging.getLogger("dingpush.pool").warning("robot b taken out of the pool")
        logging.getLogger("httpx").info("HTTP Request: POST http://h/robot/send?access_token=t0k3n")
    logging.getLogger("dingpush").warning("after the block: not printed here")
    lines = stream.getvalue().splitlines()
    if verbose:
        assert lines == [
            "· dingpush: sent msgUuid m-1",
            "warning: robot b taken out of the pool",
            "· httpx: HTTP Request: POST http://h/robot/send?access_token=****",
        ]
    else:
        assert lines == ["warning: robot b taken out of the pool"]
