"""The relay's own settings (``[relay]``): where it listens, who may call it, how it paces."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from dingpush import ConfigError, RetryPolicy

__all__ = [
    "ACK_LINK_TTL_MAX",
    "ACK_LINK_TTL_MIN",
    "API_TOKEN_FIX",
    "RELAY_RETRY",
    "RelaySettings",
    "api_token_problem",
    "is_loopback",
]

#: Retries of a message in the outbox: a durable queue can afford patience. The back-off goes
#: from 1 s to 10 minutes; no count of attempts ends it, ``give_up_after`` does (24 h).
RELAY_RETRY = RetryPolicy(
    max_attempts=None, base_delay=1.0, max_delay=600.0, jitter=0.25, max_elapsed=math.inf
)
#: How long a message that keeps failing for transient causes is retried: a day of DingTalk
#: (or the network to it) being down costs no message.
GIVE_UP_AFTER = 24 * 3600.0

#: How app robots' messages reach the relay: HTTP callbacks only, or a Stream client too.
RECEIVE_MODES = ("callback", "stream")

#: The longest an ack link stays valid (30 days): a link in a chat message is for the incident
#: at hand, which is long settled by then; anything much longer is a typo ("999999999d") whose
#: expiry would not even fit a link's token (every link would then be refused).
ACK_LINK_TTL_MAX = 30 * 86400.0
#: The shortest: the link must outlive the time a person takes to see the message and tap it
#: ("1ms" was taken, and every link answered 410).
ACK_LINK_TTL_MIN = 60.0
ACK_LINK_TTL_SHORT = (
    "must be at least a minute: the link must outlive the time a person takes to see the "
    "message and open it"
)
ACK_LINK_TTL_PROBLEM = (
    "must be at most 30 days: a link in an alert message is for the incident at hand, long "
    "settled after that"
)

#: The shortest API token the relay accepts: a bearer token must not be guessable.
API_TOKEN_MIN_LENGTH = 16
API_TOKEN_FIX = "generate one with python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def api_token_problem(tokens: Sequence[object]) -> str | None:
    """What is wrong with a list of API tokens (the one place the rule is written), or None."""
    if any(not isinstance(t, str) or len(t) < API_TOKEN_MIN_LENGTH for t in tokens):
        return f"every API token must be at least {API_TOKEN_MIN_LENGTH} characters"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySettings:
    """How the relay runs; every field has a default that suits one machine.

    Args:
        host: The interface to listen on. Anything but loopback needs ``api_tokens``.
        port: The TCP port (0 picks a free one).
        api_tokens: Bearer tokens accepted on ``/v1/…``; none means no authentication, which
            is only allowed on loopback.
        coalesce_after: Seconds a backlog may wait before its text and markdown are merged.
        max_body: The largest request body accepted, in bytes (413 beyond).
        lease: Seconds a claimed message is held before another dispatcher may take it.
        target_lease: Seconds an instance of a fleet (a PostgreSQL outbox) holds a target's
            lease: the one instance that coalesces its backlog and, for ``concurrency = 1``,
            sends in its order. It is renewed while held; when its holder dies another
            instance takes the target over within about this long.
        retry: The back-off of failed deliveries (``RELAY_RETRY`` by default); its
            ``max_attempts``, when set, also ends the retries of a message.
        give_up_after: Seconds a message is retried for transient causes, from its first
            failure, before it becomes a dead letter (a day by default).
        shutdown_deadline: Seconds in-flight deliveries get to finish at shutdown before they
            are released back to the queue.
        retention: Seconds delivered messages are kept (dead letters are kept until retried).
        idle_poll: The longest a dispatcher sleeps without looking at the outbox.
        stats_window: The window, in seconds, of "sent recently" in ``/v1/targets``.
        allowed_hosts: ``Host`` names the relay answers to besides ``host``, ``localhost``,
            ``127.0.0.1``, ``[::1]`` and ``public_url``'s; others get 421 (DNS rebinding).
            ``"*"`` answers to any name, and needs ``api_tokens``.
        public_url: Where browsers and callers reach the relay when that is not ``host`` and
            ``port`` (a reverse proxy, ``https://relay.example.com``): its name is allowed and
            its origin is the dashboard's own. Signed ack links (``/ack/N/TOKEN``) in
            webhook-robot messages start with it.
        alertmanager_url: Alertmanager's base URL, where ``@robot silence 2h`` makes its
            silences (API v2); ``user:password@`` in it is basic auth, never shown.
        silence_check: Seconds between looks at Alertmanager for silenced incidents whose
            alerts resolved (it sends no notification for silenced alerts).
        silence_max: The longest silence ``@robot silence`` makes (seconds): a typo such as
            ``silence 99999h`` would otherwise mute the alerts for years. Longer silences
            are made in Alertmanager's own page.
        ack_secret: The key signed ack links are made with (HMAC); needs ``public_url``.
            At least 16 characters; never shown.
        ack_link_ttl: Seconds a signed ack link stays valid; at most ``ACK_LINK_TTL_MAX``
            (30 days).
        receive: How app robots' messages (chat commands) reach the relay: ``"callback"``
            (DingTalk's HTTP mode, ``POST /callbacks/APP``, always served for app targets)
            or ``"stream"`` (also a Stream-mode client per app, started with the relay).
        escalation_poll: Seconds between two looks at the incidents whose escalation step is
            due (each instance looks; a due step still runs once across a fleet).
        escalation_lease: Seconds an instance holds a due incident while it runs its step;
            if it dies, another instance runs the step once this has passed.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    coalesce_after: float = 60.0
    max_body: int = 1024 * 1024
    lease: float = 60.0
    target_lease: float = 15.0
    retry: RetryPolicy = RELAY_RETRY
    give_up_after: float = GIVE_UP_AFTER
    shutdown_deadline: float = 10.0
    retention: float = 7 * 86400.0
    idle_poll: float = 5.0
    stats_window: float = 60.0
    allowed_hosts: tuple[str, ...] = ()
    public_url: str | None = None
    alertmanager_url: str | None = field(default=None, repr=False)
    silence_check: float = 60.0
    silence_max: float = 7 * 86400.0
    ack_secret: str | None = field(default=None, repr=False)
    ack_link_ttl: float = 86400.0
    receive: str = "callback"
    escalation_poll: float = 1.0
    escalation_lease: float = 60.0

    def __post_init__(self) -> None:
        problem = api_token_problem(self.api_tokens)
        if problem is not None:
            raise ConfigError(f"{problem}: {API_TOKEN_FIX}")
        for name in (
            "lease",
            "target_lease",
            "idle_poll",
            "stats_window",
            "give_up_after",
            "escalation_poll",
            "escalation_lease",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535)")
        if "*" in self.allowed_hosts and not self.api_tokens:
            raise ConfigError(
                'allowed_hosts = ["*"] answers to any name, so any web page could reach the '
                "relay through DNS rebinding: list the names instead, or set api_tokens"
            )
        if self.public_url is not None:
            parts = urllib.parse.urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"public_url = {self.public_url!r} is not an http(s) URL: write where "
                    'browsers reach the relay, e.g. "https://relay.example.com"'
                )
        self._check_oncall()

    def _check_oncall(self) -> None:
        """The chat commands' and ack links' settings (issue 16)."""
        if self.alertmanager_url is not None:
            parts = urllib.parse.urlsplit(self.alertmanager_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "alertmanager_url is not an http(s) URL: write Alertmanager's base URL, "
                    'e.g. "http://127.0.0.1:9093"'
                )
        if self.ack_secret is not None:
            if len(self.ack_secret) < API_TOKEN_MIN_LENGTH:
                raise ConfigError(
                    f"ack_secret must be at least {API_TOKEN_MIN_LENGTH} characters: "
                    f"{API_TOKEN_FIX}"
                )
            if self.public_url is None:
                raise ConfigError(
                    "ack_secret makes signed ack links, which start with public_url: set "
                    'public_url = "https://relay.example.com" (where people\'s browsers reach '
                    "the relay)"
                )
        if not self.silence_check > 0:
            raise ConfigError("silence_check must be a positive number of seconds")
        if not self.silence_max > 0:
            raise ConfigError("silence_max must be a positive number of seconds")
        if not self.ack_link_ttl >= ACK_LINK_TTL_MIN:
            raise ConfigError(f'ack_link_ttl {ACK_LINK_TTL_SHORT}: write e.g. "24h"')
        if not self.ack_link_ttl <= ACK_LINK_TTL_MAX:
            raise ConfigError(f'ack_link_ttl {ACK_LINK_TTL_PROBLEM}: write e.g. "24h"')
        if self.receive not in RECEIVE_MODES:
            raise ConfigError(
                f"receive = {self.receive!r} is not one of {', '.join(map(repr, RECEIVE_MODES))}"
            )

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy the dispatcher decides with: ``retry`` bounded by ``give_up_after``."""
        horizon = min(self.retry.max_elapsed, self.give_up_after)
        if horizon == self.retry.max_elapsed:
            return self.retry
        return dataclasses.replace(self.retry, max_elapsed=horizon)

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without API tokens."""
        if not self.api_tokens and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without API tokens: anyone who can reach "
                'it could send messages as your robots. Set api_tokens = ["…"] in [relay] '
                "(callers send Authorization: Bearer …), or listen on 127.0.0.1"
            )
