"""Enterprise apps on the command line: ``upload``, ``token``, and ``check`` of app targets."""

from __future__ import annotations

import dataclasses
import pathlib
import typing

import click

from dingpush import BadCredentials, DingPushError, TransportError, mask

from ._check import Finding
from ._common import common_options, complete_targets
from ._state import State, get_state

if typing.TYPE_CHECKING:
    from dingpush.config import AppSettings, AppTarget

MediaKind = typing.Literal["image", "file", "voice", "video"]
_KINDS: dict[str, MediaKind] = {
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
    ".gif": "image",
    ".bmp": "image",
    ".amr": "voice",
    ".mp3": "voice",
    ".wav": "voice",
    ".mp4": "video",
}


def media_kind(path: pathlib.Path) -> MediaKind:
    """The media type of a file by its extension: images, voice, video, else a file."""
    return _KINDS.get(path.suffix.lower(), "file")


def app_settings(state: State, spec: str) -> AppSettings:
    """The app named by ``NAME``, ``app:NAME…`` or an app target, with its secret masked."""
    app = state.config().app(spec)
    state.add_secrets([app.app_secret])
    return app


@click.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option(
    "--to",
    "to",
    required=True,
    metavar="APP",
    shell_complete=complete_targets,
    help="The app: an [apps.NAME] name, app:NAME, or an app target.",
)
@click.option(
    "--kind",
    type=click.Choice(["image", "file", "voice", "video"]),
    help="The media type (default: by the extension; images jpg/png/gif/bmp, voice "
    "amr/mp3/wav, video mp4, anything else a file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def upload(path: pathlib.Path, to: str, kind: MediaKind | None, as_json: bool) -> None:
    """Upload a file to DingTalk through an app and print its media_id."""
    from dingpush.config import open_app

    state = get_state()
    settings = app_settings(state, to)
    kind = kind or media_kind(path)
    with open_app(settings) as app:
        state.detail(
            f"uploading {path} ({path.stat().st_size:,} bytes) as {kind} for {settings.name}"
        )
        media_id = app.upload(path, kind)
    if as_json:
        state.json({"media_id": media_id, "kind": kind, "path": str(path), "app": settings.name})
    else:
        state.out(media_id)


@click.command("token")
@click.argument("app", metavar="APP", shell_complete=complete_targets)
@click.option(
    "--show-secret",
    is_flag=True,
    help="Print the token itself (it grants the app's permissions for up to two hours).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@common_options
def token(app: str, show_secret: bool, as_json: bool) -> None:
    """Print an app's access token: masked, unless --show-secret.

    \b
    The token comes from the on-disk cache while it is valid, else from DingTalk.
    With --show-secret only the token is printed, for scripts:
      TOKEN=$(dingpush token corp --show-secret)
    """
    from dingpush.config import open_app

    state = get_state()
    settings = app_settings(state, app)
    with open_app(settings) as client:
        value = client.access_token()
    if show_secret:
        # The one place dingpush prints a secret, and only when asked: no masking on purpose.
        click.echo(json_token(settings, value) if as_json else value)
        return
    if as_json:
        state.json({"app": settings.name, "app_key": settings.app_key, "access_token": mask(value)})
        return
    state.out(
        f"access token of app {settings.name} (AppKey {settings.app_key}): {mask(value)} "
        "(masked; --show-secret prints it)"
    )


def json_token(settings: AppSettings, value: str) -> str:
    import json

    return json.dumps({"app": settings.name, "app_key": settings.app_key, "access_token": value})


def check_app_target(target: AppTarget, *, send: bool, timeout: float) -> list[Finding]:
    """An app target: credentials (a token is fetched), and what only a send can tell."""
    from dingpush import Text
    from dingpush.config import open_app, open_sender

    findings: list[Finding] = []
    settings = target.app
    cache = settings.token_cache
    cache_note = "off" if cache is False else str(cache) if not isinstance(cache, bool) else "on"
    try:
        # A cached token proves nothing about the AppSecret now: ask DingTalk for a fresh one.
        uncached = dataclasses.replace(settings, token_cache=False)
        with open_app(uncached, timeout=timeout) as app:
            app.access_token()
    except BadCredentials as exc:
        return [Finding("credentials", "fail", get_state().message(exc, target), exc.exit_code)]
    except TransportError as exc:
        return [Finding("reachable", "fail", get_state().message(exc, target), exc.exit_code)]
    except DingPushError as exc:
        return [Finding("credentials", "fail", get_state().message(exc, target), exc.exit_code)]
    findings.append(
        Finding(
            "credentials",
            "ok",
            f"DingTalk issued a fresh access token for AppKey {settings.app_key} "
            f"(token cache {cache_note})",
        )
    )
    if not send:
        return findings + unchecked_app(target)
    try:
        with open_sender(target, timeout=timeout) as sender:
            result = sender.send(Text(f"dingpush check: a test message to {target.name}"))
    except DingPushError as exc:
        return [
            *findings,
            Finding("test message", "fail", get_state().message(exc, target), exc.exit_code),
        ]
    invalid = [*getattr(result, "invalid_user_ids", ()), *getattr(result, "filtered_user_ids", ())]
    if invalid:
        findings.append(
            Finding("user ids", "fail", f"DingTalk refused these user ids: {', '.join(invalid)}", 4)
        )
    else:
        findings.append(Finding("test message", "ok", "DingTalk accepted it"))
    return findings


def unchecked_app(target: AppTarget) -> list[Finding]:
    """What only a send can tell about an app target."""
    from dingpush.config import AppGroupTarget, WorkNoticeTarget

    permission = ("robot permission", "qyapi_robot_sendmsg and the robot capability, published")
    if isinstance(target, AppGroupTarget):
        where = f"the app's robot is a member of {target.open_conversation_id}"
        checks = [permission, ("robot in the group", where)]
    elif isinstance(target, WorkNoticeTarget):
        checks = [
            ("agent id", f"{target.agent_id} is this app's AgentId"),
            ("recipients", "the users and departments exist and are in the app's visible range"),
        ]
    else:
        checks = [permission, ("user ids", "each id is a userid of the organisation")]
    reason = "only a send reveals it: use --send-test"
    return [Finding(name, "unchecked", f"{what}: {reason}") for name, what in checks]
