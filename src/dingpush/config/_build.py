"""From a configured target to the library client that sends to it: the one builder.

The CLI opens sync clients (:func:`open_sender`) and the relay async ones
(:func:`open_async_sender`) from the same arguments, so a target's keyword, rate, cool-down,
token cache and recipients mean the same wherever it is used (one delivery path). What is not
configuration — the shared limiter, the retry policy, the longest wait, a test transport — the
caller passes.
"""

from __future__ import annotations

import typing

from dingpush import ConfigError

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

    from dingpush import (
        App,
        AppGroup,
        AppUsers,
        AsyncApp,
        AsyncAppGroup,
        AsyncAppUsers,
        AsyncRobot,
        AsyncWorkNotice,
        Clock,
        Message,
        RateLimiter,
        RetryPolicy,
        Robot,
        Splitter,
        TokenCache,
        WorkNotice,
    )

__all__ = [
    "AppSender",
    "AsyncAppSender",
    "AsyncSender",
    "Sender",
    "open_app",
    "open_async_app",
    "open_async_robot",
    "open_async_sender",
    "open_robot",
    "open_sender",
]

#: What ``retry=`` takes, as the clients take it: a policy, a number of attempts, on or off.
RetryTypes: typing.TypeAlias = "RetryPolicy | int | bool"


class Sender(typing.Protocol):
    """What :func:`open_sender` returns: ``send`` a message, then ``close``."""

    def send(self, message: Message | str, *, msg_uuid: str | None = None) -> typing.Any: ...

    def close(self) -> None: ...

    def __enter__(self) -> typing.Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


class AsyncSender(typing.Protocol):
    """What :func:`open_async_sender` returns: ``await send(...)``, then ``aclose``."""

    async def send(
        self,
        message: Message | str,
        *,
        msg_uuid: str | None = None,
        wait: bool = True,
        max_wait: float | None = None,
        split: bool | Splitter = False,
        retry: RetryTypes | None = None,
    ) -> typing.Any: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> typing.Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def _options(
    limiter: RateLimiter | None,
    retry: RetryTypes | None,
    max_wait: float | None,
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None,
    timeout: float | None,
    clock: Clock | None,
) -> dict[str, typing.Any]:
    """The caller's settings as client arguments; unset ones keep the clients' defaults."""
    options: dict[str, typing.Any] = {
        "limiter": limiter,
        "transport": transport,
        "timeout": timeout,
        "clock": clock,
    }
    if retry is not None:
        options["retry"] = retry
    if max_wait is not None:
        options["max_wait"] = max_wait
    return options


def _robot_arguments(target: RobotTarget, options: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """``Robot``/``AsyncRobot`` arguments of a robot target: its keyword, rate and cool-down."""
    arguments = {**options, "keyword": target.keyword}
    if target.rate is not None:
        arguments["rate"] = target.rate
    if target.cooldown is not None:
        arguments["cooldown"] = target.cooldown
    return arguments


def _app_arguments(
    settings: AppSettings, options: dict[str, typing.Any], shared: TokenCache | None = None
) -> dict[str, typing.Any]:
    """``App``/``AsyncApp`` arguments of ``[apps.NAME]``: its hosts and its token cache.

    ``shared`` (a fleet's cache) takes the place of the configured file, unless the app keeps
    no cache at all (``token_cache = false``).
    """
    token_cache: TokenCache | bool | str | None = None
    if settings.token_cache is False:
        token_cache = None
    elif shared is not None:
        token_cache = shared
    elif settings.token_cache is True:
        token_cache = True
    else:
        token_cache = str(settings.token_cache)
    return {
        **options,
        "api_base": settings.api_base,
        "oapi_base": settings.oapi_base,
        "token_cache": token_cache,
    }


def app_destination(
    app: typing.Any, target: AppGroupTarget | AppUsersTarget | WorkNoticeTarget
) -> typing.Any:
    """The group, users or work notification of ``target`` on ``app`` (sync or async)."""
    if isinstance(target, WorkNoticeTarget):
        return app.notify(
            target.agent_id,
            users=target.users,
            departments=target.departments,
            everyone=target.everyone,
        )
    robot_code = target.sending_robot_code
    if isinstance(target, AppGroupTarget):
        return app.group(target.open_conversation_id, robot_code=robot_code)
    return app.users(target.user_ids, robot_code=robot_code)


# -- sync: the CLI ------------------------------------------------------------------------------


def open_app(
    settings: AppSettings,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
    token_cache: TokenCache | None = None,
) -> App:
    """The :class:`dingpush.App` of ``[apps.NAME]``, with its on-disk token cache by default.

    ``token_cache`` is a cache shared beyond this process (a fleet's ``PostgresTokenCache``)
    in place of the configured file; an app configured with ``token_cache = false`` keeps none.
    """
    from dingpush import App

    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    return App(
        settings.app_key,
        settings.app_secret,
        **_app_arguments(settings, options, token_cache),
    )


def open_robot(
    target: RobotTarget,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
) -> Robot:
    """The :class:`dingpush.Robot` of a robot target, with its ``rate`` and ``cooldown``."""
    from dingpush import Robot

    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    return Robot(target.webhook, **_robot_arguments(target, options))


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
    clock: Clock | None = None,
) -> Sender:
    """Return the client that delivers to ``target``; close it (or use ``with``) when done.

    Args:
        target: a resolved target (``Config.resolve()``).
        limiter: where the clients keep their send logs: the process's memory by default; the
            CLI passes a ``FileRateLimiter`` so that separate processes share each budget.
        retry: the ``RetryPolicy`` (or number of attempts) of the sends; the library's
            by default.
        max_wait: the longest a send waits for a slot before raising ``RateLimited``.
        transport, timeout: httpx settings for every client.
        clock: where the clients read the time (``dingpush.testing.FakeClock`` in tests).
    """
    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    if isinstance(target, RobotTarget):
        return open_robot(target, **options)
    if isinstance(target, PoolTarget):
        robots: list[Robot] = []
        try:
            for member in target.members:
                robots.append(open_robot(member, **options))
        except BaseException:
            for robot in robots:
                robot.close()
            raise
        return _OwningPool(robots)
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        app = open_app(target.app, **options)
        try:
            return AppSender(app, app_destination(app, target))
        except BaseException:
            app.close()
            raise
    raise ConfigError(f"{target.kind} targets are not supported by this version of dingpush")


# -- async: the relay ---------------------------------------------------------------------------


def open_async_app(
    settings: AppSettings,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
    token_cache: TokenCache | None = None,
) -> AsyncApp:
    """The :class:`dingpush.AsyncApp` of ``[apps.NAME]``: :func:`open_app`'s async twin.

    The relay opens its apps here, with its fleet's ``token_cache`` when it has one.
    """
    from dingpush import AsyncApp

    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    return AsyncApp(
        settings.app_key,
        settings.app_secret,
        **_app_arguments(settings, options, token_cache),
    )


def open_async_robot(
    target: RobotTarget,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
) -> AsyncRobot:
    """The :class:`dingpush.AsyncRobot` of a robot target: :func:`open_robot`'s async twin."""
    from dingpush import AsyncRobot

    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    return AsyncRobot(target.webhook, **_robot_arguments(target, options))


class AsyncAppSender:
    """An app target that owns its :class:`AsyncApp`: :class:`AppSender`'s async twin."""

    def __init__(
        self, app: AsyncApp, target: AsyncAppGroup | AsyncAppUsers | AsyncWorkNotice
    ) -> None:
        self.app = app
        self.target = target

    async def send(
        self, message: Message | str, *, msg_uuid: str | None = None, **options: typing.Any
    ) -> typing.Any:
        """Send through the app (``wait``, ``max_wait``, ``split``, ``retry`` as for robots)."""
        return await self.target.send(message, msg_uuid=msg_uuid, **options)

    async def aclose(self) -> None:
        await self.app.aclose()

    async def __aenter__(self) -> typing.Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncAppSender({self.target!r})"


class _AsyncOwningPool:
    """An :class:`dingpush.AsyncRobotPool` over robots built here, closing them with itself."""

    def __init__(self, robots: list[AsyncRobot]) -> None:
        from dingpush import AsyncRobotPool

        self.robots = robots
        self.pool = AsyncRobotPool(robots)

    async def send(self, message: Message | str, **options: typing.Any) -> typing.Any:
        return await self.pool.send(message, **options)

    async def aclose(self) -> None:
        await self.pool.aclose()
        for robot in self.robots:
            await robot.aclose()

    async def __aenter__(self) -> typing.Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<async pool of {len(self.robots)} robots>"


def open_async_sender(
    target: Target,
    *,
    limiter: RateLimiter | None = None,
    retry: RetryTypes | None = None,
    max_wait: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = None,
    clock: Clock | None = None,
) -> AsyncSender:
    """Return the async client that delivers to ``target``; ``aclose`` it when done.

    :func:`open_sender`'s twin, with the same arguments (an async ``transport``). The relay
    opens its robots and pools here, with its shared limiter, ``retry=False`` (it schedules
    retries in its outbox) and ``max_wait=0``.
    """
    options = _options(limiter, retry, max_wait, transport, timeout, clock)
    if isinstance(target, RobotTarget):
        return open_async_robot(target, **options)
    if isinstance(target, PoolTarget):
        # An AsyncRobot connects on its first send: one left behind by a failing member
        # (a bad keyword) holds no connection to close.
        return _AsyncOwningPool([open_async_robot(m, **options) for m in target.members])
    if isinstance(target, AppGroupTarget | AppUsersTarget | WorkNoticeTarget):
        app = open_async_app(target.app, **options)
        return AsyncAppSender(app, app_destination(app, target))
    raise ConfigError(f"{target.kind} targets are not supported by this version of dingpush")
