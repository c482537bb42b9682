"""From a configured target to the library object that sends to it (one delivery path)."""

from __future__ import annotations

import typing

from dingpush._errors import ConfigError

from ._model import (
    AppGroupTarget,
    AppSettings,
    AppUsersTarget,
    PoolTarget,
    RobotTarget,
    Target,
    WorkNoticeTarget,
)

if typing.TYPE_CHECKING:
    import httpx

    from dingpush import App, AppGroup, AppUsers, Message, RateLimiter, Robot, WorkNotice
    from dingpush._engine._retry import RetryTypes

__all__ = ["AppSender", "Sender", "open_app", "open_robot", "open_sender"]


class Sender(typing.Protocol):
    """What :func:`open_sender` returns: ``send`` a message, then ``close``."""

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> typing.Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> typing.Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


def _token_cache(settings: AppSettings) -> bool | str | None:
    if settings.token_cache is True:
        return True
    if settings.token_cache is False:
        return None
    return str(settings.token_cache)


def open_app(
    settings: AppSettings,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
) -> App:
    """The :class:`dingpush.App` of ``[apps.NAME]``, with its on-disk token cache by default."""
    from dingpush import App

    options: dict[str, typing.Any] = {"limiter": limiter}
    if retry is not None:
        options["retry"] = retry
    if max_wait is not None:
        options["max_wait"] = max_wait
    return App(
        settings.app_key,
        settings.app_secret,
        api_base=settings.api_base,
        oapi_base=settings.oapi_base,
        token_cache=_token_cache(settings),
        timeout=timeout,
        transport=transport,
        **options,
    )


class AppSender:
    """An app target (group, users or work notification) that owns its :class:`App`."""

    def __init__(self, app: App, target: AppGroup | AppUsers | WorkNotice) -> None:
        self.app = app
        self.target = target

    def send(
        self, message: Message | str, *, msg_uuid: str | None = None, **options: typing.Any
    ) -> typing.Any:
        """Send through the app (``wait``, ``max_wait``, ``split``, ``retry`` as for robots)."""
        return self.target.send(message, msg_uuid=msg_uuid, **options)

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> typing.Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AppSender({self.target!r})"


def _app_target(
    app: App, target: AppGroupTarget | AppUsersTarget | WorkNoticeTarget
) -> AppGroup | AppUsers | WorkNotice:
    if isinstance(target, WorkNoticeTarget):
        return app.notify(
            target.agent_id,
            users=target.users,
            departments=target.departments,
            everyone=target.everyone,
        )
    robot_code = target.robot_code or target.app.robot_code
    if isinstance(target, AppGroupTarget):
        return app.group(target.open_conversation_id, robot_code=robot_code)
    return app.users(target.user_ids, robot_code=robot_code)


def open_robot(
    target: RobotTarget,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
) -> Robot:
    """The :class:`dingpush.Robot` of a robot target, with its ``rate`` and ``cooldown``."""
    from dingpush import Robot

    options: dict[str, typing.Any] = {"limiter": limiter}
    if target.rate is not None:
        options["rate"] = target.rate
    if target.cooldown is not None:
        options["cooldown"] = target.cooldown
    if retry is not None:
        options["retry"] = retry
    if max_wait is not None:
        options["max_wait"] = max_wait
    return Robot(
        target.webhook, keyword=target.keyword, transport=transport, timeout=timeout, **options
    )


class _OwningPool:
    """A :class:`dingpush.RobotPool` over robots built here, closing them with itself."""

    def __init__(self, robots: list[Robot]) -> None:
        from dingpush import RobotPool

        self.robots = robots
        self.pool = RobotPool(robots)

    def send(self, message: Message | str, **options: typing.Any) -> typing.Any:
        return self.pool.send(message, **options)

    def close(self) -> None:
        self.pool.close()
        for robot in self.robots:
            robot.close()

    def __enter__(self) -> typing.Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pool of {len(self.robots)} robots>"


def open_sender(
    target: Target,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
) -> Sender:
    """Return the client that delivers to ``target``; close it (or use ``with``) when done.

    Args:
        target: a resolved target (``Config.resolve()``).
        limiter: where robots keep their send logs: the process's memory by default; the CLI
            passes a ``FileRateLimiter`` so that separate processes share each robot's budget.
        retry: the ``RetryPolicy`` (or number of attempts) of robot sends; the library's
            by default.
        max_wait: the longest a robot send waits for a slot before raising ``RateLimited``.
        transport, timeout: httpx settings for every client.
    """
    robot_options: dict[str, typing.Any] = {
        "limiter": limiter,
        "retry": retry,
        "max_wait": max_wait,
        "transport": transport,
        "timeout": timeout,
    }
    if isinstance(target, RobotTarget):
        return open_robot(target, **robot_options)
    if isinstance(target, PoolTarget):
        robots: list[Robot] = []
        try:
            for member in target.members:
                robots.append(open_robot(member, **robot_options))
        except BaseException:
            for robot in robots:
                robot.close()
            raise
        return _OwningPool(robots)
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        app = open_app(target.app, **robot_options)
        try:
            return AppSender(app, _app_target(app, target))
        except BaseException:
            app.close()
            raise
    raise ConfigError(f"{target.kind} targets are not supported by this version of dingpush")
