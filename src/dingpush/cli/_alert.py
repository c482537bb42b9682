"""``dingpush alert``: render a webhook body through a route, or send a sample through the relay.

``dingpush alert render --route ops --payload body.json`` reads the configuration's
``[routes]``, ``[templates]`` and ``[people]`` (as the relay does), runs the body through the
route table and prints each message with its target, size in bytes and mentions: nothing is
sent. ``dingpush alert test --route ops`` posts a builtin sample body to the running relay's
receiver, as Alertmanager would, and prints what it queued.
"""

from __future__ import annotations

import json
import pathlib
import time
import typing

import click

from dingpush import ConfigError, DingPushError

from ._common import common_options
from ._relay_api import relay_client, relay_options, relay_post
from ._state import State, error_json, exit_status, get_state

_SAMPLES = (
    "alertmanager-firing",
    "alertmanager-resolved",
    "alertmanager-storm",
    "grafana-firing",
    "generic-gitlab",
)
_PATHS = {"alertmanager": "alertmanager", "grafana": "grafana", "generic": "hooks"}


@click.group(short_help="Render alerts through a route, or send a sample through the relay.")
def alert() -> None:
    """Render alerts through a route, or send a sample through the relay (docs/alerts.md)."""


@alert.command(short_help="Print the messages a webhook body makes on a route.")
@click.option("--route", "table", metavar="NAME", required=True, help="A [routes.NAME] table.")
@click.option(
    "--payload",
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path, allow_dash=True),
    default=None,
    help="The webhook body (JSON; - for stdin).",
)
@click.option(
    "--sample",
    type=click.Choice(_SAMPLES),
    default=None,
    help="A builtin sample body instead of --payload.",
)
@click.option(
    "--kind",
    type=click.Choice(["alertmanager", "grafana", "generic"]),
    default=None,
    help="The receiver: alertmanager (default; also /dingtalk/NAME/send), grafana, generic.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
@common_options
def render(
    table: str,
    payload: pathlib.Path | None,
    sample: str | None,
    kind: str | None,
    as_json: bool,
) -> None:
    """Print the messages a webhook body makes on route table NAME: target, route, template,
    title, text, size in bytes and mentions. Nothing is sent.

    \b
    dingpush alert render --route ops --payload alert.json
    dingpush alert render --route ops --sample grafana-firing
    """
    from dingpush.alerts import PayloadError, process_alerts
    from dingpush.alerts import sample as builtin_sample

    state = get_state()
    receivers, target_kinds = _alert_settings(state)
    if receivers is None or table not in receivers.routes:
        known = ", ".join(sorted(receivers.routes)) if receivers is not None else "none"
        raise click.UsageError(f"no route table named {table!r} (the route tables: {known})")
    if (payload is None) == (sample is None):
        raise click.UsageError("give --payload FILE or --sample NAME (one of the two)")
    body: typing.Any
    if sample is not None:
        sample_kind, body = builtin_sample(sample)
        kind = kind or sample_kind
    else:
        assert payload is not None
        with click.open_file(str(payload), "rb") as handle:
            body = handle.read()
    try:
        outcome = process_alerts(
            typing.cast(typing.Any, kind or "alertmanager"),
            receivers.routes[table],
            body,
            people=receivers.people,
            templates=receivers.templates,
            name=table,
            target_kinds=target_kinds,
        )
    except PayloadError as exc:
        raise click.UsageError(f"{exc} (at {exc.pointer or '/'})") from None
    messages = []
    for item in outcome.messages:
        payload_json = item.message.to_payload()
        data = json.dumps(payload_json, ensure_ascii=False, separators=(",", ":"))
        at = item.message.mentions
        messages.append(
            {
                "target": item.target,
                "route": item.route,
                "template": item.template,
                "alerts": item.alerts,
                "bytes": len(data.encode()),
                "mentions": {
                    "user_ids": list(at.user_ids) if at else [],
                    "mobiles": list(at.mobiles) if at else [],
                    "all": bool(at.all) if at else False,
                },
                "payload": payload_json,
            }
        )
    if as_json:
        state.json(
            {
                "messages": messages,
                "problems": list(outcome.problems),
                "render_failures": [str(f) for f in outcome.render_failures],
            }
        )
        return
    for shown in messages:
        mentions = typing.cast(dict[str, typing.Any], shown["mentions"])
        who = [*mentions["user_ids"], *mentions["mobiles"], *(["all"] if mentions["all"] else [])]
        state.out(
            f"── to {shown['target']} (route {shown['route']}, template {shown['template']}, "
            f"{shown['alerts']} alert(s)): {shown['bytes']:,} bytes, mentions: "
            f"{', '.join('@' + w for w in who) or 'none'}"
        )
        body_json = typing.cast(dict[str, typing.Any], shown["payload"])
        content = body_json.get(body_json.get("msgtype", ""), {})
        if "title" in content:
            state.out(f"title: {content['title']}")
        state.out(str(content.get("text") or content.get("content") or json.dumps(content)))
        state.out()
    if not messages:
        state.out("no message (no route took it, or every one was held back)")
    for text in outcome.problems:
        state.err(f"note: {text}")
    for failure in outcome.render_failures:
        state.err(f"warning: {failure}")


@alert.command("test", short_help="Send a sample alert through the running relay.")
@click.option("--route", "table", metavar="NAME", required=True, help="A [routes.NAME] table.")
@click.option(
    "--sample",
    type=click.Choice(_SAMPLES),
    default="alertmanager-firing",
    show_default=True,
    help="The builtin sample body to send.",
)
@relay_options("An API token or the route's token ($DINGPUSH_RELAY_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the relay's answer as JSON.")
@common_options
def test_command(table: str, sample: str, relay_url: str, token: str | None, as_json: bool) -> None:
    """Post a builtin sample body to the running relay's receiver for route table NAME, as
    Alertmanager (or Grafana, or a hook) would; print what it queued.

    \b
    dingpush alert test --route ops
    dingpush alert test --route ops --sample grafana-firing --relay http://relay:8080

    Each run is a new notification (its group key carries the time), so it is never taken
    for a repeat of the last one.
    """
    from dingpush.alerts import sample as builtin_sample

    state = get_state()
    if token:
        state.add_secrets([token])
    kind, body = builtin_sample(sample)
    stamp = f"dingpush alert test {time.time():.3f}"
    if kind == "generic":
        body["dingpush_test"] = stamp
    else:
        body["groupKey"] = f"{body.get('groupKey', '')} ({stamp})"
    url = relay_url.rstrip("/")
    try:
        with relay_client(url, token) as http:
            answer = relay_post(
                http,
                url,
                f"/{_PATHS[kind]}/{table}",
                body,
                unauthorized=f"the relay at {url} wants a token: pass --token or set "
                "DINGPUSH_RELAY_TOKEN (one of [relay] api_tokens, or the route's token)",
            )
    except DingPushError as exc:
        if not as_json:
            raise
        state.json({"ok": False, "error": error_json(exc)})
        raise click.exceptions.Exit(exit_status(exc)) from None
    if as_json:
        state.json({"ok": True, **answer})
        return
    for item in answer.get("messages", []):
        state.out(
            f"queued {item['id']} for {item['target']} (route {item['route']}, template "
            f"{item['template']})"
        )
    if not answer.get("messages"):
        state.out("nothing queued (no route took it, or it was held back as a repeat)")
    for text in answer.get("problems", []):
        state.err(f"note: {text}")


def _alert_settings(state: State) -> tuple[typing.Any, dict[str, str]]:
    """The file's alert receivers and its targets' kinds, read as the relay reads them, but
    without the targets' secrets: rendering sends nothing, so unset ``${VARS}`` do not matter."""
    import os

    from dingpush.config import ConfigSource, Reader, find_config
    from dingpush.relay._alerts_config import read_alerts

    found, _ = find_config(state.config_path)
    if found is None:
        raise ConfigError(
            "no configuration file: alert routes live in dingpush.toml's [routes.NAME] "
            "(see docs/alerts.md); pass --config FILE"
        )
    source = ConfigSource.read(found)
    declared = source.data.get("targets", {})
    kinds = {
        str(name): str(entry.get("kind", "robot")) if isinstance(entry, dict) else "robot"
        for name, entry in (declared.items() if isinstance(declared, dict) else ())
    }
    reader = Reader(source, os.environ)
    receivers = read_alerts(reader, source.data, source.path.parent, kinds)
    reader.finish()
    return receivers, kinds
