"""``dingpush check``: verify a target's settings as far as DingTalk allows without posting.

A custom robot's webhook has no read-only endpoint: whether DingTalk knows the token, whether
the secret matches, whether a keyword is required and whether this machine's IP is allowed
are only revealed by sending a message. ``check`` verifies everything else (the form of each
credential, that DingTalk's host answers, that this machine's clock is close enough to sign)
and says what is left; ``--send-test`` posts one visible test message and diagnoses the answer.
"""

from __future__ import annotations

import email.utils
import re
import socket
import time
import typing
import urllib.parse
from dataclasses import dataclass

import click

from dingpush import DingPushError, SecurityRejected, TokenNotFound, TransportError

from ._common import common_options, complete_targets
from ._state import State, get_state

if typing.TYPE_CHECKING:
    from dingpush.config import RobotTarget, Target

Status = typing.Literal["ok", "warn", "fail", "unchecked", "info"]
_SYMBOLS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "unchecked": "?", "info": "-"}
_TOKEN = re.compile(r"[0-9a-f]{64}")
#: DingTalk's signing secrets are "SEC" followed by 64 hexadecimal characters.
_SECRET_LENGTH = 67
_SIGNATURE_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of a check: what was checked, how it went, and what to do."""

    check: str
    status: Status
    detail: str
    exit_code: int = 0

    def to_json(self) -> dict[str, object]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def _dingtalk_host(host: str | None) -> bool:
    return bool(host) and (host == "dingtalk.com" or str(host).endswith(".dingtalk.com"))


def robot_form(target: RobotTarget) -> list[Finding]:
    """What can be told from the settings alone."""
    webhook = target.webhook
    parts = urllib.parse.urlsplit(webhook.endpoint)
    official = _dingtalk_host(parts.hostname)
    findings = [
        Finding(
            "webhook",
            "ok" if official else "info",
            webhook.display
            + ("" if official else " (not DingTalk's host: fine for the emulator or a gateway)"),
        )
    ]
    if not official or _TOKEN.fullmatch(webhook.token):
        findings.append(Finding("token form", "ok", f"{len(webhook.token)} characters"))
    else:
        findings.append(
            Finding(
                "token form",
                "warn",
                f"DingTalk's webhook tokens are 64 hexadecimal characters; this one has "
                f"{len(webhook.token)}: copy the access_token value whole from the webhook URL",
            )
        )
    secret = webhook.secret
    if secret is None:
        findings.append(
            Finding("signing", "info", "no secret: right only if the robot's 加签 is off")
        )
    elif official and len(secret) != _SECRET_LENGTH:
        findings.append(
            Finding(
                "signing",
                "warn",
                f"the secret has {len(secret)} characters where DingTalk's have {_SECRET_LENGTH} "
                "(SEC + 64): check that it was copied whole",
            )
        )
    else:
        findings.append(
            Finding("signing", "ok", "a secret starting with SEC; every request is signed afresh")
        )
    if target.keyword:
        findings.append(
            Finding("keyword", "ok", f"{target.keyword!r} is appended to messages that lack it")
        )
    else:
        findings.append(
            Finding("keyword", "info", "none: right only if the robot has no custom keywords")
        )
    return findings


def reach(endpoint: str, timeout: float) -> list[Finding]:
    """Ask the webhook's host for any page (nothing is posted): reachability and clock skew."""
    import httpx

    parts = urllib.parse.urlsplit(endpoint)
    root = f"{parts.scheme}://{parts.netloc}/"
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(root)
    except httpx.HTTPError as exc:
        return [
            Finding(
                "reachable",
                "fail",
                f"{parts.netloc}: {type(exc).__name__}: {exc}; check the network, DNS and any "
                "proxy (HTTPS_PROXY)",
                TransportError.exit_code,
            )
        ]
    elapsed = (time.monotonic() - started) * 1000
    findings = [Finding("reachable", "ok", f"{parts.netloc} answered in {elapsed:.0f} ms")]
    date = response.headers.get("date")
    if not date:
        findings.append(
            Finding("clock", "unchecked", "the host sent no Date header to compare with")
        )
        return findings
    skew = time.time() - email.utils.parsedate_to_datetime(date).timestamp()
    if abs(skew) > _SIGNATURE_WINDOW_S:
        findings.append(
            Finding(
                "clock",
                "fail",
                f"this machine's clock is {skew:+.0f} s off the server's: signatures older than "
                "an hour are refused; fix the clock (NTP)",
                3,
            )
        )
    else:
        findings.append(
            Finding(
                "clock",
                "ok" if abs(skew) < 60 else "warn",
                f"{skew:+.0f} s from the server's clock",
            )
        )
    return findings


def unchecked() -> list[Finding]:
    reason = "a webhook robot reveals this only when a message is sent; use --send-test"
    return [
        Finding("token accepted", "unchecked", reason),
        Finding("secret matches", "unchecked", reason),
        Finding("keyword required", "unchecked", reason),
        Finding("IP allow-list", "unchecked", reason),
    ]


def send_test(state: State, target: RobotTarget, timeout: float) -> list[Finding]:
    """Post one visible test message and turn DingTalk's answer into findings."""
    from dingpush import Text
    from dingpush.config import open_robot

    text = f"dingpush check: a test message from {socket.gethostname()}"
    try:
        # Through the shared limiter, no retries and no waiting: a diagnosis, not a delivery.
        robot = open_robot(target, limiter=state.limiter(), retry=False, timeout=timeout)
        with robot:
            result = robot.send(Text(text), wait=False)
    except TokenNotFound as exc:
        return [Finding("token accepted", "fail", state.message(exc, target), exc.exit_code)]
    except SecurityRejected as exc:
        names = {
            "keyword": "keyword required",
            "signature": "secret matches",
            "timestamp": "clock",
            "ip": "IP allow-list",
            "unknown": "security settings",
        }
        return [
            Finding("token accepted", "ok", "DingTalk knows the token"),
            Finding(names[exc.reason], "fail", state.message(exc, target), 3),
        ]
    except DingPushError as exc:
        return [Finding("test message", "fail", state.message(exc, target), exc.exit_code)]
    return [
        Finding(
            "test message",
            "ok",
            f"DingTalk accepted it (msgUuid {result.msg_uuid}): token, secret, keyword and IP "
            "allow-list are right",
        )
    ]


def budget(state: State, target: RobotTarget) -> Finding:
    """The robot's rate budget as every dingpush process here sees it (the shared file)."""
    from dingpush.lowlevel import DEFAULT_RATE

    limiter = state.limiter()
    rate = target.rate or DEFAULT_RATE
    cooling = limiter.cooldown_left(target.webhook.key)
    if cooling > 0:
        return Finding(
            "rate budget",
            "warn",
            f"DingTalk throttled this robot: dingpush holds its messages for {cooling:.0f} s more",
        )
    wait = limiter.delay(target.webhook.key, rate)
    if wait > 0:
        return Finding(
            "rate budget", "info", f"at its limit of {rate}: a slot frees in {wait:.0f} s"
        )
    return Finding(
        "rate budget", "ok", f"a slot is free ({rate}, shared by every dingpush process here)"
    )


def check_target(state: State, target: Target, *, send: bool, timeout: float) -> list[Finding]:
    """Every finding for ``target``; pools are checked member by member."""
    from dingpush.config import PoolTarget, RobotTarget

    if isinstance(target, PoolTarget):
        findings = []
        for member in target.members:
            findings += [
                Finding(f"{member.name}: {f.check}", f.status, f.detail, f.exit_code)
                for f in check_target(state, member, send=send, timeout=timeout)
            ]
        return findings
    if isinstance(target, RobotTarget):
        findings = robot_form(target) + reach(target.webhook.endpoint, timeout)
        findings.append(budget(state, target))
        return findings + (send_test(state, target, timeout) if send else unchecked())
    from ._apps import check_app_target

    return check_app_target(target, send=send, timeout=timeout)


@click.command("check")
@click.argument("target", required=False, shell_complete=complete_targets)
@click.option(
    "--send-test", is_flag=True, help="Post one visible test message and diagnose the answer."
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS"
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@common_options
def check(target: str | None, send_test: bool, timeout: float, as_json: bool) -> None:
    """Check a target's credentials and reachability (by default without posting anything)."""
    from ._send import resolve

    state = get_state()
    resolved = resolve(state, target)
    findings = check_target(state, resolved, send=send_test, timeout=timeout)
    failed = [f for f in findings if f.status == "fail"]
    if as_json:
        state.json(
            {
                "target": resolved.name,
                "kind": resolved.kind,
                "ok": not failed,
                "findings": [f.to_json() for f in findings],
            }
        )
    else:
        _print(state, resolved, findings)
    if failed:
        raise click.exceptions.Exit(max(f.exit_code for f in failed) or 1)


def _print(state: State, target: Target, findings: list[Finding]) -> None:
    state.out(f"{target.name} ({target.kind}): {target.destination}")
    width = max(len(f.check) for f in findings)
    for finding in findings:
        state.out(f"  {_SYMBOLS[finding.status]:<4}  {finding.check:<{width}}  {finding.detail}")
    if any(f.status == "unchecked" for f in findings):
        state.out(
            f"  '?' cannot be checked without posting: run `dingpush check {target.name} "
            "--send-test` to post one test message and diagnose the answer"
        )
