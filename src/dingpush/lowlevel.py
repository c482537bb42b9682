"""The building blocks under dingpush's clients, for tools built on them.

``dingpush`` itself is what an application needs to send. This module is for what a tool
around the clients needs besides — dingpush's own CLI, relay, dashboard and emulator use
nothing else of the library's insides:

* planning a send without sending it: :func:`plan_robot_send`, :func:`plan_app_send` and
  :class:`PlannedRequest` (httpx's ``build_request``: the requests a ``send`` would make, their
  bodies and sizes, built by the code that sends);
* DingTalk's limits and dingpush's defaults as named constants (:data:`WEBHOOK_BODY_LIMIT`,
  :data:`MSG_PARAM_LIMIT`, :data:`NOTICE_MSG_LIMIT`, :data:`DEFAULT_RATE`, …); the matching
  measures are ``dingpush.webhook_body_bytes``, ``dingpush.msg_param_bytes`` and
  ``dingpush.notice_msg_bytes``;
* the checks a send makes before any request (:func:`check_webhook_message`,
  :func:`check_app_robot_message`, :func:`check_notice_message`) and the channel mappings
  (:func:`webhook_body`, :func:`app_robot_template`, :func:`notice_msg`);
* the redactor (:class:`Redactor`, :func:`redact_url`, :func:`install_log_redaction`), the
  system clock, signature checks for a server, and the reset of the shared rate limiters.

See ``docs/lowlevel.md``. Names load on first use, like ``dingpush``'s.
"""

from __future__ import annotations

import typing

from ._lazy import lazy_names

if typing.TYPE_CHECKING:  # what mypy and editors read; at run time _MODULES says the same
    from ._apps._delivery import DEFAULT_APP_COOLDOWN, DEFAULT_APP_RATE, DEFAULT_NOTICE_RATE
    from ._engine._clock import SYSTEM_CLOCK
    from ._engine._limiter import (
        DEFAULT_COOLDOWN,
        DEFAULT_MAX_WAIT,
        DEFAULT_RATE,
        reset_default_limiters,
    )
    from ._engine._retry import format_seconds
    from ._masking import Redactor, install_log_redaction, redact_url
    from ._messages._channels import (
        MSG_PARAM_LIMIT,
        NOTICE_MSG_LIMIT,
        WEBHOOK_BODY_LIMIT,
        app_robot_template,
        check_app_robot_message,
        check_notice_message,
        check_webhook_message,
        notice_msg,
        webhook_body,
    )
    from ._messages._fields import field_name
    from ._messages._json import load_json
    from ._messages._models import MAX_MENTIONS
    from ._planning import (
        ACCESS_TOKEN_PLACEHOLDER,
        MEDIA_ID_PLACEHOLDER,
        PlannedRequest,
        plan_app_send,
        plan_robot_send,
    )
    from ._postgres._migrations import (
        POSTGRES_SCHEMA,
        Migration,
        check_schema,
        describe_dsn,
        migrate,
        require_psycopg,
        session_settings,
    )
    from ._robot._signing import SIGNATURE_WINDOW_MS, verify_signature
    from ._wire import MAX_JSON_DEPTH, lone_surrogate, too_deep

__all__ = [
    "ACCESS_TOKEN_PLACEHOLDER",
    "DEFAULT_APP_COOLDOWN",
    "DEFAULT_APP_RATE",
    "DEFAULT_COOLDOWN",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_NOTICE_RATE",
    "DEFAULT_RATE",
    "MAX_JSON_DEPTH",
    "MAX_MENTIONS",
    "MEDIA_ID_PLACEHOLDER",
    "MSG_PARAM_LIMIT",
    "NOTICE_MSG_LIMIT",
    "POSTGRES_SCHEMA",
    "SIGNATURE_WINDOW_MS",
    "SYSTEM_CLOCK",
    "WEBHOOK_BODY_LIMIT",
    "Migration",
    "PlannedRequest",
    "Redactor",
    "app_robot_template",
    "check_app_robot_message",
    "check_notice_message",
    "check_schema",
    "check_webhook_message",
    "describe_dsn",
    "field_name",
    "format_seconds",
    "install_log_redaction",
    "load_json",
    "lone_surrogate",
    "migrate",
    "notice_msg",
    "plan_app_send",
    "plan_robot_send",
    "redact_url",
    "require_psycopg",
    "reset_default_limiters",
    "session_settings",
    "too_deep",
    "verify_signature",
    "webhook_body",
]

#: Where each name lives; a name's module is imported when the name is first used.
_MODULES: dict[str, tuple[str, ...]] = {
    "._apps._delivery": ("DEFAULT_APP_COOLDOWN", "DEFAULT_APP_RATE", "DEFAULT_NOTICE_RATE"),
    "._engine._clock": ("SYSTEM_CLOCK",),
    "._engine._limiter": (
        "DEFAULT_COOLDOWN",
        "DEFAULT_MAX_WAIT",
        "DEFAULT_RATE",
        "reset_default_limiters",
    ),
    "._engine._retry": ("format_seconds",),
    "._masking": ("Redactor", "install_log_redaction", "redact_url"),
    "._messages._channels": (
        "MSG_PARAM_LIMIT",
        "NOTICE_MSG_LIMIT",
        "WEBHOOK_BODY_LIMIT",
        "app_robot_template",
        "check_app_robot_message",
        "check_notice_message",
        "check_webhook_message",
        "notice_msg",
        "webhook_body",
    ),
    "._messages._fields": ("field_name",),
    "._messages._json": ("load_json",),
    "._messages._models": ("MAX_MENTIONS",),
    "._postgres._migrations": (
        "POSTGRES_SCHEMA",
        "Migration",
        "check_schema",
        "describe_dsn",
        "migrate",
        "require_psycopg",
        "session_settings",
    ),
    "._planning": (
        "ACCESS_TOKEN_PLACEHOLDER",
        "MEDIA_ID_PLACEHOLDER",
        "PlannedRequest",
        "plan_app_send",
        "plan_robot_send",
    ),
    "._robot._signing": ("SIGNATURE_WINDOW_MS", "verify_signature"),
    "._wire": ("MAX_JSON_DEPTH", "lone_surrogate", "too_deep"),
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
