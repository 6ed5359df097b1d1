"""Request body size limit as a pure ASGI middleware: a JSON 413 before the body is read into memory."""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]


class BodySizeLimit:
    """Answer 413 when ``Content-Length`` exceeds ``max_bytes``, or as soon as a streamed body grows past it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await _send_error(send, 413, self._message(declared))
                    return
        received = 0
        started = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client is gone: frameworks catch exceptions raised
                    # while they read the body (FastAPI turns them into 400), but stop on a disconnect.
                    rejected = True
                    if not started:
                        await _send_error(send, 413, self._message(None))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 has been sent; whatever the app answers after the disconnect is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    def _message(self, size: int | None) -> str:
        got = f" ({size} bytes)" if size is not None else ""
        return f"request body too large{got}; the limit is {self.max_bytes} bytes (max_body_bytes)"


async def _send_error(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
