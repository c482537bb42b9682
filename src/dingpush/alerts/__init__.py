"""Alerts in: Alertmanager, Grafana and any JSON webhook, through routes, templates and mentions.

The pieces the relay's receivers are built from, usable on their own:

- payloads: :func:`parse_alertmanager`, :func:`parse_grafana`, :func:`parse_generic` read a
  webhook body strictly into frozen models, or raise :class:`PayloadError` with a JSON pointer;
- :class:`Matcher` and :class:`Route`: Alertmanager-style matchers and routing (first match,
  ``continue``, a default route), :class:`MemoryRepeatLog` for repeat suppression;
- :class:`Templates`: Jinja2 in a sandbox writing DingTalk markdown (Jinja2 is imported when
  templates are compiled: it comes with the ``relay`` extra);
- :class:`People` and :func:`resolve_mentions`: who a message mentions;
- :func:`process_alerts`: a body in, the messages to enqueue per target out.

See docs/alerts.md.
"""

from __future__ import annotations

from ._errors import PayloadError, TemplateError
from ._filters import escape_markdown, format_duration, format_time, safe_url, truncate_bytes
from ._labels import LabelSet
from ._matchers import Matcher, parse_matcher, parse_matchers
from ._migrate import Migration, convert_pwd_config
from ._payloads import (
    Alert,
    AlertGroup,
    AlertmanagerPayload,
    GenericPayload,
    GrafanaPayload,
    Payload,
    ReceiverKind,
    parse_alertmanager,
    parse_generic,
    parse_grafana,
    parse_payload,
    silence_url,
)
from ._people import Mentions, People, Person, resolve_mentions
from ._pipeline import AlertMessage, AlertOutcome, Suppressed, process_alerts
from ._routes import MemoryRepeatLog, RepeatLog, ResolvedRoute, Route, repeat_key, select_routes
from ._samples import SAMPLES, sample
from ._settings import AlertSettings
from ._templates import BUILTIN_TEMPLATES, Rendered, RenderFailure, Templates, TemplateSpec

__all__ = [
    "BUILTIN_TEMPLATES",
    "SAMPLES",
    "Alert",
    "AlertGroup",
    "AlertMessage",
    "AlertOutcome",
    "AlertSettings",
    "AlertmanagerPayload",
    "GenericPayload",
    "GrafanaPayload",
    "LabelSet",
    "Matcher",
    "MemoryRepeatLog",
    "Mentions",
    "Migration",
    "Payload",
    "PayloadError",
    "People",
    "Person",
    "ReceiverKind",
    "RenderFailure",
    "Rendered",
    "RepeatLog",
    "ResolvedRoute",
    "Route",
    "Suppressed",
    "TemplateError",
    "TemplateSpec",
    "Templates",
    "convert_pwd_config",
    "escape_markdown",
    "format_duration",
    "format_time",
    "parse_alertmanager",
    "parse_generic",
    "parse_grafana",
    "parse_matcher",
    "parse_matchers",
    "parse_payload",
    "process_alerts",
    "repeat_key",
    "resolve_mentions",
    "safe_url",
    "sample",
    "select_routes",
    "silence_url",
    "truncate_bytes",
]
