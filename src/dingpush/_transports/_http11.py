"""HTTP/1.1 on the client side, sans-I/O: a request's head as bytes, and a response parser.

What dingpush needs of HTTP/1.1 and no more: one request at a time on a connection (no
pipelining), bodies framed by ``Content-Length``, ``chunked`` or the end of the connection
(RFC 9112 §6.3), interim 1xx answers skipped, keep-alive decided from the version and the
``Connection`` header. Anything else in an answer is a ``ParseError``: the transport turns it
into ``httpx.RemoteProtocolError``. h11 would do the same at ~15× the CPU per exchange
(docs/benchmarks.md, "The async transport"), which is why this is not h11.
"""

from __future__ import annotations

__all__ = ["MAX_HEAD", "ParseError", "ResponseParser", "request_head"]

#: Bytes an answer's status line and headers may take: DingTalk's are well under 1 KB.
MAX_HEAD = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})

Headers = list[tuple[bytes, bytes]]


class ParseError(Exception):
    """The answer is not HTTP/1.1 this parser accepts."""


def request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    """The request line and headers of a request, ready to write.

    A CR or LF inside a name, value or target would let a value start a header of its own
    (request smuggling); counting the line ends of the result catches every such case at once.
    """
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    ends = len(headers) + 2
    if head.count(b"\n") != ends or head.count(b"\r") != ends:
        raise ValueError("a header name, value or the URL contains a line break")
    return head


class ResponseParser:
    """Parse one response (after any 1xx) from the bytes of a connection, fed as they come.

    ``feed`` returns ``True`` once the response is complete; then ``status``, ``reason``,
    ``headers``, ``body`` and ``keep_alive`` describe it. ``feed_eof`` tells it the server closed
    the connection; it returns ``True`` when that completes a body read until the close. Body
    bytes are collected in a list, never re-copied, so a large answer costs linear time.
    """

    __slots__ = (
        "_buffer",
        "_chunk_state",
        "_chunked",
        "_head_done",
        "_parts",
        "_received",
        "_remaining",
        "_until_close",
        "body",
        "complete",
        "head_only",
        "headers",
        "keep_alive",
        "reason",
        "status",
    )

    def __init__(self, *, head_only: bool = False) -> None:
        #: The request was a HEAD: the answer has no body whatever its headers say.
        self.head_only = head_only
        self._buffer = b""  # bytes not yet parsed: part of the head, or of a chunk's framing
        self._head_done = False
        self._chunked = False
        self._chunk_state = _SIZE
        self._until_close = False
        self._remaining = 0  # body bytes still expected (Content-Length, or the current chunk)
        self._received = 0
        self._parts: list[bytes] = []
        self.status = 0
        self.reason = b""
        self.headers: Headers = []
        self.body = b""
        self.keep_alive = True
        self.complete = False

    @property
    def started(self) -> bool:
        """Whether any byte of an answer has arrived."""
        return bool(self._buffer) or self._head_done or self.status != 0

    def feed(self, data: bytes) -> bool:
        """Take the next bytes from the connection; ``True`` once the response is complete."""
        if self.complete:
            if data:  # bytes nobody asked for: the connection cannot be trusted further
                self.keep_alive = False
            return True
        if not self._head_done:
            self._buffer = self._buffer + data if self._buffer else data
            if not self._parse_head():
                return False
            data, self._buffer = self._buffer, b""
        if self._chunked:
            return self._parse_chunks(self._buffer + data if self._buffer else data)
        return self._take_body(data)

    def feed_eof(self) -> bool:
        """The server closed the connection; ``True`` when that is how the body ends."""
        if self.complete:
            return True
        if self._head_done and self._until_close:
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        self.body = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        self.complete = True

    # -- the head -----------------------------------------------------------------------------

    def _parse_head(self) -> bool:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ParseError(f"the answer's headers exceed {MAX_HEAD} bytes")
                return False
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            if not self._read_head(head):  # a 1xx interim answer: the real one follows
                continue
            self._head_done = True
            self._frame()
            return True

    def _read_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise ParseError(f"not an HTTP/1.1 status line: {lines[0][:60]!r}")
        status = int(code)
        if 100 <= status < 200:
            if status == 101:
                raise ParseError("the server switched protocols, which dingpush never asks for")
            return False
        headers: Headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in b" \t" or line[:1] in b" \t":
                raise ParseError(f"a malformed header line: {line[:60]!r}")
            headers.append((name, value.strip(b" \t")))
        self.status, self.reason, self.headers = status, reason, headers
        self.keep_alive = version == b"HTTP/1.1"
        return True

    def _frame(self) -> None:
        """How the body ends (RFC 9112 §6.3), and whether the connection may be kept."""
        lengths: set[bytes] = set()
        codings = b""
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                lengths.update(v.strip() for v in value.split(b","))
            elif lower == b"transfer-encoding":
                codings += b"," + value.lower()
            elif lower == b"connection" and b"close" in value.lower():
                self.keep_alive = False
        if self.head_only or self.status in _NO_BODY_STATUSES:
            self._remaining = 0
        elif codings:
            # chunked last: chunked framing; any other last coding runs to the close (§6.3).
            if codings.rsplit(b",", 1)[-1].strip() == b"chunked":
                self._chunked = True
            else:
                self._until_close = True
        elif lengths:
            length = next(iter(lengths))
            if len(lengths) != 1 or not length.isdigit():
                raise ParseError(f"a bad Content-Length: {sorted(lengths)!r}")
            self._remaining = int(length)
        else:
            self._until_close = True
        if self._until_close:
            self.keep_alive = False

    # -- bodies -------------------------------------------------------------------------------

    def _take_body(self, data: bytes) -> bool:
        if data:
            self._parts.append(data)
            self._received += len(data)
        if self._until_close or self._received < self._remaining:
            return False
        if self._received > self._remaining:  # more than was announced: do not reuse
            self.keep_alive = False
            self._parts = [b"".join(self._parts)[: self._remaining]]
        self._finish()
        return True

    def _parse_chunks(self, buffer: bytes) -> bool:
        at, size = 0, len(buffer)
        while at < size:
            if self._chunk_state == _DATA:
                take = min(self._remaining, size - at)
                self._parts.append(buffer[at : at + take])
                at += take
                self._remaining -= take
                if not self._remaining:
                    self._chunk_state = _DATA_END
                continue
            end = buffer.find(b"\r\n", at)
            if end < 0:
                if size - at > MAX_HEAD:
                    raise ParseError("a chunk size or trailer line of the answer is too long")
                break
            line, at = buffer[at:end], end + 2
            if self._chunk_state == _DATA_END:
                if line:
                    raise ParseError("a chunk of the answer does not end with CRLF")
                self._chunk_state = _SIZE
            elif self._chunk_state == _SIZE:
                digits = line.split(b";", 1)[0].strip(b" \t")
                if not digits or digits.strip(_HEX_DIGITS) or len(digits) > 16:
                    raise ParseError(f"a bad chunk size in the answer: {digits[:20]!r}")
                self._remaining = int(digits, 16)
                self._chunk_state = _DATA if self._remaining else _TRAILERS
            elif not line:  # _TRAILERS: the empty line after them ends the message
                if at < size:
                    self.keep_alive = False
                self._buffer = b""
                self._finish()
                return True
        self._buffer = buffer[at:]
        return False


_SIZE, _DATA, _DATA_END, _TRAILERS = range(4)
_HEX_DIGITS = b"0123456789abcdefABCDEF"
