"""The async clients' transport: dingpush's own against the alternatives, in one run."""

from __future__ import annotations

from bench import Context, Section, median, scenario
from bench.loadgen import measure
from bench.transports import available

from .delivery import UNLIMITED, _check_delivered, _fresh

#: (transport name for bench/transports.py, label). ``default`` is what AsyncRobot ships with.
CANDIDATES = (
    ("default", "`AsyncRobot`, dingpush's `AsyncioTransport` (the default)"),
    ("httpcore", "`AsyncRobot`, httpx's `AsyncHTTPTransport` (httpcore), 8 connections"),
    ("httpcore-2", "`AsyncRobot`, httpcore held to 2 connections"),
    ("h11", "`AsyncRobot`, `AsyncioTransport` parsing with h11"),
    ("httptools", "`AsyncRobot`, `AsyncioTransport` parsing with httptools"),
    ("uvloop", "`AsyncRobot`, the default transport on uvloop's event loop"),
    ("aiohttp", "`AsyncRobot`, an aiohttp-backed transport (bench/transports.py)"),
    ("httpx-aiohttp", "`AsyncRobot`, httpx-aiohttp's `AiohttpTransport`"),
)
DELAY = 0.02
LOOPBACK_TARGET, LATENCY_TARGET = 4.0, 7.0


def _runs(
    context: Context,
    rows: list[tuple[str, str, str]],
    count: int,
    repeats: int,
    delay: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Messages per second and client CPU ms per message of every row, interleaved."""
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for _ in range(repeats):
        for key, tool, transport_name in rows:
            url = _fresh(context, "raw")
            if delay:
                context.emulator.inject_fault("delay", delay=delay, count=None)
            run = context.run_tool(
                tool,
                [url],
                count,
                rate=UNLIMITED,
                concurrency=64,
                peer_limits_off=True,
                transport=transport_name,
            )
            assert run.elapsed is not None
            _check_delivered(context, "raw", run, count)
            rates.setdefault(key, []).append(count / run.elapsed)
            if run.cpu is not None:
                cpu.setdefault(key, []).append(run.cpu / count * 1000)
    return rates, cpu


def _ceiling(context: Context, seconds: float) -> float:
    url = _fresh(context, "raw")
    result = measure(url, seconds, 64)
    return int(context.emulator.stats("raw")["accepted"]) / float(result["elapsed"])


@scenario("transport", order=12)
def transport(context: Context) -> Section:
    """AsyncRobot over each candidate transport, loopback and 20 ms, beside the references."""
    names = [(n, label) for n, label in CANDIDATES if available(n)]
    missing = [n for n, _ in CANDIDATES if not available(n)]
    rows: list[tuple[str, str, str]] = [
        ("DingtalkChatbot", "DingtalkChatbot", ""),
        *[(n, "dingpush-async", n) for n, _ in names],
    ]
    if available("aiohttp"):
        rows.append(("aiohttp-raw", "aiohttp-raw", ""))
    labels = {
        "DingtalkChatbot": "DingtalkChatbot 1.5.7 (reference)",
        "aiohttp-raw": "raw aiohttp `ClientSession`, no dingpush, no httpx (floor)",
        **dict(names),
    }
    count, latency_count = (100, 30) if context.quick else (1000, 300)
    repeats, latency_repeats = (1, 1) if context.quick else (5, 3)
    loop_rates, loop_cpu = _runs(context, rows, count, repeats, 0.0)
    lat_rates, _ = _runs(context, rows, latency_count, latency_repeats, DELAY)
    ceiling = _ceiling(context, 1.0 if context.quick else 5.0)
    dtc, dtc_latency = median(loop_rates["DingtalkChatbot"]), median(lat_rates["DingtalkChatbot"])
    section = Section(
        "The async transport: AsyncRobot against the alternatives",
        f"`AsyncRobot` sends {count} messages with 64 in flight over each transport in turn, "
        f"median of {repeats} run(s), interleaved so that a noisy neighbour slows every row "
        f"alike; then {latency_count} messages with the emulator answering {DELAY * 1000:.0f} "
        f"ms late, median of {latency_repeats}. CPU is the client process's own (user + "
        "system) per message, from its first send to its last; the emulator's is not in it. "
        "The alternatives are in `bench/transports.py`.",
        [
            "client",
            "loopback msg/s",
            "runs",
            "client CPU ms/msg",
            "÷ DingtalkChatbot",
            f"{DELAY * 1000:.0f} ms msg/s",
            f"÷ DingtalkChatbot at {DELAY * 1000:.0f} ms",
        ],
    )
    for key, _, _ in rows:
        rate, rate_latency = median(loop_rates[key]), median(lat_rates[key])
        section.rows.append(
            [
                labels[key],
                f"{rate:.0f}",
                ", ".join(f"{v:.0f}" for v in loop_rates[key]),
                f"{median(loop_cpu[key]):.3f}" if key in loop_cpu else "",
                f"{rate / dtc:.2f}×",
                f"{rate_latency:.0f}",
                f"{rate_latency / dtc_latency:.2f}×",
            ]
        )
    section.rows.append(
        [
            "emulator ceiling (`bench.loadgen`, 64 connections)",
            f"{ceiling:.0f}",
            "",
            "",
            f"{ceiling / dtc:.2f}×",
            "",
            "",
        ]
    )
    default = median(loop_rates["default"]) / dtc
    default_latency = median(lat_rates["default"]) / dtc_latency
    section.notes.append(
        f"Targets (issue 17): `AsyncRobot` ≥ {LOOPBACK_TARGET:g}× DingtalkChatbot on loopback "
        f"— measured {default:.2f}×; ≥ {LATENCY_TARGET:g}× at {DELAY * 1000:.0f} ms — measured "
        f"{default_latency:.2f}×."
    )
    section.notes += _bounds(context, median(loop_cpu["default"]), ceiling, dtc)
    section.notes += _choice(loop_cpu)
    if missing:
        section.notes.append(
            "Not installed in this run, so not measured: " + ", ".join(missing) + "."
        )
    return section


def _bounds(context: Context, cpu_ms: float, ceiling: float, dtc: float) -> list[str]:
    """What bounds the default row, from its CPU per send and a profiled run of it."""
    count = 100 if context.quick else 1000
    url = _fresh(context, "raw")
    run = context.run_tool(
        "dingpush-async", [url], count, rate=UNLIMITED, concurrency=64, profile=True
    )
    needed = LOOPBACK_TARGET * dtc
    notes = [
        f"What bounds the default on loopback: {LOOPBACK_TARGET:g}× DingtalkChatbot is "
        f"{needed:.0f} messages/s, {1000 / needed:.3f} ms a message. `AsyncRobot` spends "
        f"{cpu_ms:.3f} ms of its own CPU a message (at most {1000 / cpu_ms:.0f}/s on a core of "
        f"its own) and the emulator accepts at most {ceiling:.0f}/s; on 2 cores the two share "
        "the machine with the kernel's loopback work (and here with whatever else runs)."
    ]
    robot_ms, httpx_ms = _layers_measured()
    notes.append(
        f"The layers by subtraction, without a profiler (sends one at a time in this process "
        f"over an in-memory transport given as `transport=`, which answers at once): httpx's "
        f"client layer {httpx_ms:.3f} ms a message, dingpush's delivery above it "
        f"{robot_ms - httpx_ms:.3f} ms. The default transport is dingpush's own, so "
        "`AsyncRobot` posts through it directly (`DirectPost`), past httpx's client layer "
        "(request and response objects, cookie jar, hooks, redirects, auth), which none of a "
        "send to DingTalk uses; a transport given as `transport=` still goes through it."
    )
    if run.profile:
        total = sum(run.profile.values())
        shares = sorted(run.profile.items(), key=lambda item: -item[1])
        parts = ", ".join(f"{name} {seconds / total:.0%}" for name, seconds in shares)
        notes.append(
            f"Where `AsyncRobot`'s CPU goes by cProfile on the CPU clock (one more run of "
            f"{count} messages): {parts}. Every clock read is charged to the function it "
            "times, so layers made of many small calls come out larger than they are."
        )
    return notes


def _parser_costs() -> dict[str, float]:
    """Microseconds to parse one DingTalk answer, in this process, per parser."""
    import timeit

    from bench.transports import _H11Parser, _HttptoolsParser
    from dingpush._transports._http11 import ResponseParser

    answer = (
        b"HTTP/1.1 200 OK\r\nServer: DingTalk/1.0.0\r\nDate: Wed, 02 Dec 2026 18:51:00 GMT\r\n"
        b"Content-Type: application/json\r\nContent-Length: 27\r\n\r\n"
        b'{"errcode":0,"errmsg":"ok"}'
    )
    parsers: dict[str, type[ResponseParser]] = {"dingpush": ResponseParser, "h11": _H11Parser}
    if available("httptools"):
        parsers["httptools"] = _HttptoolsParser
    costs = {}
    for name, parser in parsers.items():

        def once(parser: type[ResponseParser] = parser) -> None:
            assert parser().feed(answer)

        costs[name] = min(timeit.repeat(once, number=2000, repeat=5)) / 2000 * 1e6
    return costs


def _choice(cpu: dict[str, list[float]]) -> list[str]:
    """Why the default is what it is, with this run's figures."""

    def ms(key: str) -> str:
        return f"{median(cpu[key]):.3f} ms" if key in cpu else "not measured"

    costs = _parser_costs()
    parse = ", ".join(f"{name} {us:.1f} µs" for name, us in costs.items())
    return [
        "Why dingpush's own transport: it needs nothing but httpx (the library's one required "
        "dependency), it knows whether a request was written, and it costs the least CPU of "
        f"the transports that keep httpx's API: {ms('default')} a message against httpcore's "
        f"{ms('httpcore')} and httpx-aiohttp's {ms('httpx-aiohttp')}; the floor, aiohttp "
        f"alone with neither httpx nor dingpush, is {ms('aiohttp-raw')}.",
        "httpcore held to fewer connections costs more, not less: the sends queue in its pool, "
        "which wakes and rescans its waiters for every freed connection.",
        f"Parsing one DingTalk answer, state set-up included, takes: {parse} (in this "
        "process, best of 5). h11 is the parser httpcore uses and comes with httpx, in pure "
        "Python; httptools is llhttp in C, but calls back into Python for every header, and "
        "would be a compiled dependency. dingpush's parser reads only what an HTTP/1.1 answer "
        "to a client may hold (`src/dingpush/_transports/_http11.py`) and is checked against "
        "h11 by tests.",
        "aiohttp cannot tell whether a request was written: `ServerDisconnectedError` comes "
        "both from a kept-alive connection the server had closed (nothing sent) and from a "
        "server that hung up after reading the request, so a transport on it must call every "
        "such failure maybe-delivered (as `bench/transports.py` does) or, as httpx-aiohttp "
        "does, call them `ConnectTimeout`, which dingpush reads as never sent: an app send "
        "would then be retried after DingTalk had it, a duplicate. It would also be a second "
        "required dependency.",
        "uvloop lowers the event loop's share; `AsyncRobot` uses it when the application runs "
        "on it (`uvloop.run(main())`), with the same transport.",
    ]


def _layers_measured(count: int = 3000) -> tuple[float, float]:
    """CPU ms a message of ``AsyncRobot.send`` and of ``httpx.AsyncClient.post``, no network."""
    import asyncio
    import time

    import httpx

    from dingpush import AsyncRobot

    answer = b'{"errcode":0,"errmsg":"ok"}'

    class AtOnce(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            headers = [(b"Content-Type", b"application/json"), (b"Content-Length", b"27")]
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(answer))

    url = "http://127.0.0.1:9/robot/send?access_token=bench"

    async def robot() -> float:
        async with AsyncRobot(url, rate=UNLIMITED, transport=AtOnce()) as sender:
            await sender.send("warm-up")
            start = time.process_time()
            for i in range(count):
                await sender.send(f"bench message {i}: disk usage on web-01 above 90%")
            return (time.process_time() - start) / count * 1000

    async def client() -> float:
        target = httpx.URL(url)
        async with httpx.AsyncClient(transport=AtOnce()) as http:
            await http.post(target, content=answer)
            start = time.process_time()
            for _ in range(count):
                await http.post(target, content=answer, headers={"Content-Type": "x"})
            return (time.process_time() - start) / count * 1000

    return min(asyncio.run(robot()) for _ in range(3)), min(asyncio.run(client()) for _ in range(3))
