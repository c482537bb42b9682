"""The transport's HTTP/1.1 answer parser and request heads, sans-I/O (no sockets here)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dingpush._transports._http11 import MAX_HEAD, ParseError, ResponseParser, request_head

OK = b'{"errcode":0,"errmsg":"ok"}'


def parse(data: bytes, *, pieces: int = 1, head_only: bool = False) -> ResponseParser:
    """Feed ``data`` in about ``pieces`` parts; the parser must be complete at the end."""
    parser = ResponseParser(head_only=head_only)
    step = max(1, len(data) // pieces)
    done = False
    for at in range(0, len(data), step):
        done = parser.feed(data[at : at + step])
    assert done and parser.complete
    return parser


@pytest.mark.parametrize("pieces", [1, 2, 7, 1000])
@pytest.mark.parametrize(
    ("answer", "body", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n" + OK, OK, True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 27, 27\r\n\r\n" + OK, OK, True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 27\r\n\r\n" + OK, OK, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 27\r\n\r\n" + OK, OK, False),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\n" + OK[:5] + b"\r\n16\r\n" + OK[5:] + b"\r\n0\r\nX-T: 1\r\n\r\n",
            OK,
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 27\r\n\r\n", b"", True),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", b"", True),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"ok",
            True,
        ),
        (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", b"", True),
    ],
    ids=["length", "repeated-length", "close", "http10", "chunked", "204", "304", "100", "500"],
)
def test_answers(answer: bytes, body: bytes, keep_alive: bool, pieces: int) -> None:
    parser = parse(answer, pieces=pieces)
    assert (parser.body, parser.keep_alive) == (body, keep_alive)


def test_status_reason_and_headers() -> None:
    parser = parse(
        b"HTTP/1.1 404 Not Found\r\nServer: DingTalk/1.0.0\r\nX-A:  b \r\n\r\n", head_only=True
    )
    assert (parser.status, parser.reason) == (404, b"Not Found")
    assert parser.headers == [(b"Server", b"DingTalk/1.0.0"), (b"X-A", b"b")]


def test_a_head_answer_has_no_body() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n", head_only=True)
    assert parser.body == b"" and parser.keep_alive


def test_a_body_until_the_close() -> None:
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
    assert not parser.feed(b"</html>")
    assert parser.feed_eof()
    assert parser.body == b"<html></html>" and not parser.keep_alive


def test_an_end_of_file_before_the_end_is_not_an_answer() -> None:
    parser = ResponseParser()
    assert not parser.started and not parser.feed_eof()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{")
    assert parser.started and not parser.feed_eof()


def test_bytes_beyond_the_answer_make_the_connection_unusable() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1")
    assert parser.body == b"ok" and not parser.keep_alive
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    parser.feed(b"x")
    assert not parser.keep_alive


def test_any_other_transfer_coding_runs_to_the_close() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz")
    assert parser.feed_eof() and parser.body == b"zz" and not parser.keep_alive


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n",
    ],
)
def test_malformed_answers(answer: bytes) -> None:
    with pytest.raises(ParseError):
        ResponseParser().feed(answer)


def test_a_head_without_end_is_bounded() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ParseError, match="exceed"):
        parser.feed(b"X-A: " + b"a" * MAX_HEAD)


@given(
    body=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 97), min_size=1, max_size=10),
)
def test_chunked_bodies_in_any_pieces_match_h11(
    body: bytes, sizes: list[int], cuts: list[int]
) -> None:
    chunks: list[bytes] = []
    at = 0
    while at < len(body):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(body[at : at + size])
        at += size
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire += b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    parser, done, at, i = ResponseParser(), False, 0, 0
    while at < len(wire):
        piece = wire[at : at + cuts[i % len(cuts)]]
        at, i = at + len(piece), i + 1
        done = parser.feed(piece)
    assert done and parser.body == body and parser.keep_alive
    # h11, the parser httpcore uses, reads the same bytes the same way.
    reference = h11.Connection(h11.CLIENT)
    reference.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    reference.send(h11.EndOfMessage())
    reference.receive_data(wire)
    data = b""
    while not isinstance(event := reference.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            data += event.data
    assert data == body


def test_request_head() -> None:
    head = request_head(b"POST", b"/robot/send?access_token=t", [(b"Host", b"oapi.dingtalk.com")])
    assert head == b"POST /robot/send?access_token=t HTTP/1.1\r\nHost: oapi.dingtalk.com\r\n\r\n"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/a\r\nX-Evil: 1", []),
        (b"/", [(b"X-A", b"1\r\nX-Evil: 1")]),
        (b"/", [(b"X-A\n", b"1")]),
        (b"/", [(b"X-A", b"1\r")]),
    ],
)
def test_a_line_break_in_a_request_head_is_refused(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ValueError, match="line break"):
        request_head(b"GET", target, headers)
