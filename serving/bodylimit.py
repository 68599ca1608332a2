"""Request bodies bounded per path: a declared Content-Length over the bound is refused (413) before any byte of
the body is read, and a body that arrives without one (chunked) is refused as soon as the bytes received pass the
bound, so no body is ever read, parsed or spooled to disk past it. The rest of the body is never read: the server
answers and closes the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bound:
    max_bytes: int
    limited: str  # what the limit is for a person: "images are limited to 20,000,000 bytes"
    counted: bool = False  # an upload refusal, counted in upload_rejections like every other


class BodyLimit:
    """ASGI middleware applying `bounds` (by path) to request bodies."""

    def __init__(self, app: ASGIApp, bounds: Mapping[str, Bound]) -> None:
        self.app, self.bounds = app, dict(bounds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        bound = self.bounds.get(scope["path"]) if scope["type"] == "http" else None
        if bound is None:
            await self.app(scope, receive, send)
            return
        declared = Request(scope).headers.get("content-length", "")
        if declared.isdigit() and int(declared) > bound.max_bytes:
            await self._refuse(scope, send, bound, f"{int(declared):,} bytes", int(declared))
            return

        received = 0
        refused = started = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > bound.max_bytes and not started:
                    refused = True
                    await self._refuse(scope, send, bound, f"over {bound.max_bytes:,} bytes", received)
                    # To the app the client has gone: it stops reading, and whatever it answers is dropped.
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        try:
            await self.app(scope, bounded_receive, unless_refused)
        except Exception:
            if not refused:
                raise
            log.debug("after refusing a body over %d bytes on %s", bound.max_bytes, scope["path"], exc_info=True)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, bound: Bound, size: str, byte_size: int) -> None:
        request = Request(scope)
        message = f"the request body is {size}; {bound.limited}"
        if bound.counted:
            response = await errors.reject(request, "too_many_bytes", message, 413, byte_size=byte_size)
        else:
            response = errors.error(413, "too_many_bytes", message)
        # The body is not read to its end, so the connection cannot carry another request.
        response.headers["connection"] = "close"
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
