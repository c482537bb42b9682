"""The alert package's errors: a payload that can never be delivered, a template that is wrong.

    DingPushError
    ├── PayloadError (ValueError)   a webhook body breaks its sender's documented schema (exit 2)
    └── ConfigError
        └── TemplateError           a template does not compile: file, line and fix (exit 3)

A template that compiles but fails while rendering is not an exception: the alert is rendered
with the builtin template instead, and the failure is reported as data (``RenderFailure``).
"""

from __future__ import annotations

import typing

from dingpush import ConfigError, DingPushError

__all__ = ["PayloadError", "TemplateError"]


class PayloadError(DingPushError, ValueError):
    """A webhook payload is not what its sender documents, so it can never be delivered as sent.

    ``pointer`` is the JSON pointer (RFC 6901) of the offending value (``""`` for the whole
    body), ``rule`` what it should have been. ``status`` is the HTTP status a receiver answers:
    400 when the body is not JSON at all, 422 when it is JSON that breaks a rule. Senders such as
    Alertmanager drop a 4xx answer instead of retrying, which is right here: the same body will
    never be accepted.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        pointer: str,
        rule: str,
        source: str,
        status: typing.Literal[400, 422] = 422,
    ) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.rule = rule
        self.source = source
        self.status = status


class TemplateError(ConfigError):
    """A template does not compile; the text says where (file and line) and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        template: str,
        file: str | None,
        line: int | None,
        fix: str,
    ) -> None:
        super().__init__(message)
        self.template = template
        self.file = file
        self.line = line
        self.fix = fix
