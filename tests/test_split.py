"""Splitting: byte-exact parts, good cut points, numbering, mentions, and partial failures."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dingpush
from dingpush import At, Link, Markdown, Robot, Splitter, Text, webhook_body_bytes
from dingpush._wire import payload_bytes
from dingpush.testing import EmulatorServer, FakeClock

LIMIT = 20_000


def reassemble(splitter: Splitter, parts: tuple[dingpush.Message, ...]) -> str:
    total = len(parts)
    return "".join(splitter.strip(p, i, total) for i, p in enumerate(parts, 1))


def paragraphs(n: int, line: str = '磁盘使用率超过阈值 web-01 "quoted" \\path\n') -> str:
    return "\n\n".join(f"## section {i}\n" + line * 20 for i in range(n))


class TestSplitter:
    def test_a_message_that_fits_is_left_alone(self) -> None:
        message = Text("short")
        assert Splitter().split(message) == (message,)

    def test_parts_fit_the_whole_body_with_json_escaping(self) -> None:
        # Each newline and quote costs two bytes once JSON-encoded: 15,000 characters of them
        # are ~30,000 bytes on the wire.
        text = '"\n' * 7_500
        assert len(text.encode()) < LIMIT < webhook_body_bytes(Text(text))
        parts = Splitter().split(Text(text))
        assert len(parts) == 2
        assert all(webhook_body_bytes(p) <= LIMIT for p in parts)
        assert reassemble(Splitter(), parts) == text

    def test_cjk_counts_three_bytes_a_character(self) -> None:
        text = paragraphs(60)
        parts = Splitter().split(Markdown("Report", text, at=At(mobiles=["13800000000"])))
        assert len(parts) > 1
        for index, part in enumerate(parts, 1):
            assert isinstance(part, Markdown)
            assert webhook_body_bytes(part) <= LIMIT
            assert part.title == f"Report ({index}/{len(parts)})"
            assert part.text.startswith(f"({index}/{len(parts)})\n\n")
            # Cut at paragraph breaks: every part but the first starts a section.
            assert index == 1 or part.text.split("\n\n", 1)[1].startswith("## section")
        assert parts[0].mentions == At(mobiles=["13800000000"])
        assert all(p.mentions is None for p in parts[1:])

    def test_a_fenced_block_is_not_cut_when_it_fits_a_part(self) -> None:
        fence = "```\n" + "code line\n" * 50 + "```\n"
        text = "intro paragraph\n\n" + "x" * 300 + "\n" + fence + "tail\n"
        parts = Splitter(limit=900).split(Text(text))
        assert len(parts) > 1
        assert any(fence in Splitter().strip(p, i, len(parts)) for i, p in enumerate(parts, 1))

    def test_links_urls_and_mentions_are_not_cut(self) -> None:
        link = "[the dashboard](https://grafana.example.com/d/abcdef/overview?orgId=1)"
        text = " ".join(f"see {link} @13800000000 now" for _ in range(40))
        splitter = Splitter(limit=700)
        parts = splitter.split(Markdown("links", text))
        chunks = [splitter.strip(p, i, len(parts)) for i, p in enumerate(parts, 1)]
        assert "".join(chunks) == text
        for chunk in chunks:
            assert chunk.count("[the") == chunk.count("orgId=1)")
            assert "@1380000000 " not in chunk and not chunk.endswith("@138")

    def test_an_oversize_fence_is_cut_at_lines(self) -> None:
        text = "```\n" + "".join(f"log line {i}\n" for i in range(200)) + "```"
        splitter = Splitter(limit=800)
        parts = splitter.split(Text(text))
        chunks = [splitter.strip(p, i, len(parts)) for i, p in enumerate(parts, 1)]
        assert "".join(chunks) == text
        assert all(c.endswith("\n") for c in chunks[:-1])

    def test_one_huge_line_is_cut_between_characters(self) -> None:
        text = "字👍🏽🇨🇳e\u0301" * 3000  # combined characters and flags must stay whole
        splitter = Splitter()
        parts = splitter.split(Text(text))
        chunks = [splitter.strip(p, i, len(parts)) for i, p in enumerate(parts, 1)]
        assert "".join(chunks) == text
        for chunk in chunks:
            assert not chunk.startswith(("\U0001f3fd", "\u0301"))  # no orphaned modifier
            assert sum("\U0001f1e6" <= ch <= "\U0001f1ff" for ch in chunk) % 2 == 0  # flags

    def test_the_marker_is_configurable_and_numbers_grow(self) -> None:
        splitter = Splitter(limit=300, marker="[part {index} of {total}]")
        parts = splitter.split(Text("word " * 1000))
        assert len(parts) >= 10
        assert isinstance(parts[9], Text) and parts[9].content.startswith(
            f"[part 10 of {len(parts)}]"
        )
        assert all(webhook_body_bytes(p) <= 300 for p in parts)

    def test_other_types_cannot_be_split(self) -> None:
        link = Link("t", "x" * 30_000, "https://example.com")
        with pytest.raises(dingpush.MessageTooLarge, match="only Text and Markdown"):
            Splitter().split(link)

    def test_a_run_of_combining_marks_longer_than_a_part_is_still_split(self) -> None:
        text = "e" + "\u0301" * 400
        parts = Splitter(limit=300).split(Text(text))
        assert reassemble(Splitter(limit=300), parts) == text

    def test_a_limit_too_small_for_one_character(self) -> None:
        with pytest.raises(dingpush.MessageTooLarge, match="cannot hold one character"):
            Splitter(limit=90).split(Text("x" * 500))

    def test_a_custom_measure_for_an_apps_msg_param(self) -> None:
        def msg_param(message: dingpush.Message) -> int:
            assert isinstance(message, Text)
            return len(json.dumps({"content": message.content}, ensure_ascii=False).encode())

        parts = Splitter().split(Text("消息" * 6000), limit=15_000, measure=msg_param)
        assert len(parts) == 3
        assert all(msg_param(p) <= 15_000 for p in parts)

    @pytest.mark.parametrize(
        ("measure", "limit"),
        [(dingpush.msg_param_bytes, 15_000), (dingpush.notice_msg_bytes, 2_048)],
        ids=["app-robot msgParam", "work-notice msg"],
    )
    def test_the_app_channels_measures(
        self, measure: Callable[[dingpush.Message], int], limit: int
    ) -> None:
        text = paragraphs(30)
        for message in (Text(text), Markdown("Report", text)):
            parts = Splitter().split(message, limit=limit, measure=measure)
            assert len(parts) > 1 and all(measure(p) <= limit for p in parts)
            assert reassemble(Splitter(), parts) == text

    @pytest.mark.parametrize("kwargs", [{"limit": 0}, {"marker": "part"}])
    def test_validation(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            Splitter(**kwargs)  # type: ignore[arg-type]


# -- properties --------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "\n",
        "\n\n",
        "\r\n",
        '"',
        "\\",
        "\t",
        "\x01",
        "字",
        "é",
        "e\u0301",
        "👍🏽",
        "👨‍👩‍👧",
        "🇨🇳",
        "```\ncode\n```\n",
        "[link](https://example.com/a_b)",
        "https://example.com/x?y=1",
        "@13800000000",
        "## title\n",
        "- item\n",
    ]
)
_WORDS = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], min_codepoint=1), min_size=1, max_size=30
)
TEXTS = st.lists(st.one_of(_PIECES, _WORDS), min_size=1, max_size=120).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=TEXTS.filter(lambda t: t.strip() != ""),
    limit=st.integers(min_value=260, max_value=1500),
    markdown=st.booleans(),
    mention=st.booleans(),
)
def test_split_properties(text: str, limit: int, markdown: bool, mention: bool) -> None:
    at = At(mobiles=["13800000000"]) if mention else None
    message: dingpush.Message = Markdown("title", text, at=at) if markdown else Text(text, at=at)
    splitter = Splitter(limit=limit)
    parts = splitter.split(message)
    if len(parts) == 1:
        assert parts[0] is message
        return
    # Every part fits, as the channel measures it.
    assert all(webhook_body_bytes(p) <= limit for p in parts)
    # The parts carry the original text, in order, once the markers are taken off.
    chunks = [splitter.strip(p, i, len(parts)) for i, p in enumerate(parts, 1)]
    assert "".join(chunks) == text
    # No UTF-8 sequence is broken: each part's body is valid UTF-8, and the bytes add up.
    for part in parts:
        payload_bytes(part.to_payload()).decode("utf-8")
    assert b"".join(c.encode() for c in chunks) == text.encode()
    # Mentions only on the first part.
    assert parts[0].mentions == at
    assert all(p.mentions is None for p in parts[1:])


# -- sending ------------------------------------------------------------------------------

LONG = paragraphs(80)


class TestSendingParts:
    def test_split_true_sends_every_part_in_order(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("ops", keywords=("REPORT",), rate_limit=100)
        with Robot(dingtalk_emulator.webhook_url("ops"), keyword="REPORT") as robot:
            with pytest.raises(dingpush.MessageTooLarge, match="split=True"):
                robot.send(Markdown("Report", LONG))
            result = robot.send(Markdown("Report", LONG), split=True, msg_uuid="daily")
        messages = dingtalk_emulator.emulator.messages()
        n = len(result.parts)
        assert n > 1 and len(messages) == n
        assert [m.msg_uuid for m in messages] == [f"daily-{i}" for i in range(1, n + 1)]
        assert result.msg_uuid == "daily"
        for i, m in enumerate(messages, 1):
            assert m.payload["markdown"]["title"] == f"Report ({i}/{n})"
            assert "REPORT" in m.payload["markdown"]["text"]  # each part carries the keyword
        rejected = dingtalk_emulator.emulator.rejections()
        assert rejected == []

    def test_a_message_that_fits_goes_whole(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("ops")
        with Robot(dingtalk_emulator.webhook_url("ops")) as robot:
            result = robot.send("short", split=True, msg_uuid="u")
        assert result.parts == () and result.msg_uuid == "u"

    def test_a_failure_reports_the_parts_sent_and_a_resend_completes(
        self, dingtalk_emulator: EmulatorServer
    ) -> None:
        clock = FakeClock()
        dingtalk_emulator.emulator.clock = clock
        # The server takes 2 a minute; the client thinks 20: part 3 meets a throttle.
        dingtalk_emulator.add_robot("ops", rate_limit=2, rate_window=60, lockout=600)
        text = Text(paragraphs(40))
        with Robot(dingtalk_emulator.webhook_url("ops"), clock=clock) as robot:
            with pytest.raises(dingpush.PartialDelivery) as info:
                robot.send(text, split=True, msg_uuid="batch", wait=False)
            error = info.value
            assert [r.msg_uuid for r in error.sent] == ["batch-1", "batch-2"]
            assert isinstance(error.error, dingpush.RateLimited) and error.transient
            assert "parts 1-2 of" in str(error) and "msg_uuid='batch'" in str(error)
            clock.advance(600)
            result = robot.send(text, split=True, msg_uuid="batch")
        assert len(result.parts) == error.total
        uuids = [m.msg_uuid for m in dingtalk_emulator.emulator.messages()]
        assert uuids == [f"batch-{i}" for i in range(1, error.total + 1)]  # no duplicates
        assert dingtalk_emulator.emulator.stats().robots["ops"].duplicates == 2

    def test_a_failing_first_part_raises_the_error_itself(self) -> None:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(200, json={"errcode": 310000, "errmsg": "sign not match"})
        )
        with Robot("t", transport=transport) as robot:
            with pytest.raises(dingpush.SecurityRejected):
                robot.send(Text(LONG), split=True)

    @pytest.mark.anyio
    async def test_async_split(self, dingtalk_emulator: EmulatorServer) -> None:
        dingtalk_emulator.add_robot("ops", rate_limit=100)
        async with dingpush.AsyncRobot(dingtalk_emulator.webhook_url("ops")) as robot:
            result = await robot.send(Text(LONG), split=Splitter(limit=8000))
        assert len(result.parts) == len(dingtalk_emulator.emulator.messages()) > 2
        assert all(
            m.payload["text"]["content"].startswith("(")
            for m in dingtalk_emulator.emulator.messages()
        )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    content=st.text(min_size=1, max_size=400).filter(str.strip),
    uuid=st.sampled_from(["u", "0123abcd-aaaa-bbbb-cccc-0123456789ab", "a" * 60, 'q"uote', "中"]),
    keyword=st.sampled_from([None, "告警", '"kw"']),
    limit=st.integers(min_value=80, max_value=600),
)
def test_a_whole_send_is_built_once_and_is_what_the_splitter_would_send(
    content: str, uuid: str, keyword: str | None, limit: int
) -> None:
    """The shortcut past the splitter's measure sends the same body, and only when it fits."""
    from dingpush._robot._core import RobotCore

    core = RobotCore("t", keyword=keyword, body_limit=limit, clock=FakeClock())
    message = Text(content)
    whole = core._whole(message, uuid)
    fits = core.body_size(message) <= limit
    if whole is not None:
        assert fits
        assert whole.content == core.prepare(message, uuid).content
        assert whole.msg_uuid == uuid and whole.message == core.prepare(message, uuid).message
    elif uuid.replace("-", "").isalnum() and uuid.isascii() and len(uuid) <= 43:
        assert not fits  # a plain msgUuid is left to the splitter only when it must split
