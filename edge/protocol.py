"""uvicorn's HTTP/1.1 protocol with the limits uvicorn lacks, and its refusals in the API's JSON shape.

uvicorn has no deadline for a request to arrive (Kludex/uvicorn#157): its keep-alive timer restarts
on every byte, so a client trickling a header or a body one byte at a time holds a connection for
ever, and enough of them hold every connection the server allows. Here a request's headers must
arrive within `headers_seconds` of the connection opening (or of the previous answer), and its body
within `body_seconds` more; a connection that misses either is closed (with a 408 if part of a
request came). The app's own body deadline (edge/serve.py) is shorter and answers first for uploads
it reads; this one covers bodies nobody reads. One address may hold at most `per_address`
connections, so that one client cannot starve the others of the server's `limit_concurrency`.
uvicorn answers its `limit_concurrency` and malformed requests in plain text: the same limit is
enforced here, and all these refusals are `{"error": ...}` like every other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADERS_SECONDS = 10.0
BODY_SECONDS = 60.0
PER_ADDRESS = 16
"""Open connections allowed from one address: a phone's browser opens six, while 64 idle ones from one
address (slowloris) would otherwise hold every connection `serve` allows until their deadline."""
_WAITING = (h11.IDLE, h11.SEND_BODY)  # the client's states while a request is still arriving


def _error(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of a JSON error that closes the connection (the request's body may be unread)."""
    body = json.dumps({"error": message}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
            (b"connection", b"close")], body


def _error_bytes(status: int, reason: str, message: str) -> bytes:
    """The same as a whole response, for the transport itself (no request that h11 could answer)."""
    headers, body = _error(message)
    head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason.encode(), head, body)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol plus request deadlines; `limit_concurrency` answered in JSON."""

    headers_seconds = HEADERS_SECONDS
    body_seconds = BODY_SECONDS
    per_address = PER_ADDRESS

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # uvicorn would swap in its plain-text 503 app; the wrapper below applies the same rule.
        self._limit, self.limit_concurrency = self.limit_concurrency, None
        self.app = self._within_limit(self.app)
        self._deadline: asyncio.TimerHandle | None = None

    def _within_limit(self, app):
        async def limited(scope, receive, send) -> None:
            # Both counts include this connection and its own task, hence `>` where uvicorn has `>=`.
            if self._limit is not None and (len(self.connections) > self._limit or len(self.tasks) > self._limit):
                self.logger.warning("Exceeded concurrency limit.")
                headers, body = _error("server busy: too many connections; try again")
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return limited

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _WAITING:
            return
        started = self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]
        if started and self.conn.our_state is h11.IDLE:  # part of a request, not answered: say why
            self.transport.write(_error_bytes(408, "Request Timeout", "request took too long to arrive"))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None and sum(c.client is not None and c.client[0] == address
                                       for c in self.connections) > self.per_address:
            self.transport.write(_error_bytes(503, "Service Unavailable",
                                              "too many connections from your address; close some and try again"))
            self.transport.close()
            return
        self._arm(self.headers_seconds)

    def data_received(self, data: bytes) -> None:
        cycle, before = self.cycle, self.conn.their_state
        super().data_received(data)
        state = self.conn.their_state
        if state is before and self.cycle is cycle:
            return
        if state is h11.SEND_BODY:
            self._arm(self.body_seconds)
        elif state is h11.IDLE:  # a body read after its answer (and discarded): the next request's headers
            self._arm(self.headers_seconds)
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm(self.headers_seconds)  # the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_error_bytes(400, "Bad Request", f"malformed HTTP request ({msg.rstrip('.')})"))
        self.transport.close()
