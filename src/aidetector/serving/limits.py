"""Reading a request within its byte caps: the raw body or multipart files, bad input -> 4xx.

The first step of a request (this reads it, decoding.py decodes it, verdicts.py predicts).
Every way a request can be wrong ends in RequestRejected, which the routes turn into a
JSON error with a 4xx status; nothing a client sends should reach a 500. A client that
leaves mid-upload ends in ClientDisconnected (counted as 499), an I/O error on the server's
side in UploadIOError (503, retry). Bodies are never written to disk.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

import anyio
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope

from aidetector.config.serve import ServeSettings

# Room for multipart boundaries and part headers around a single image of max_bytes.
MULTIPART_OVERHEAD = 64 * 1024


class ClientDisconnected(Exception):  # noqa: N818 - an event, not a programming error
    """The client closed the connection before its request was read (logged, counted 499)."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the client disconnected after sending {received} bytes")
        self.received = received


class UploadIOError(Exception):
    """An I/O error on the server's side while receiving a request: 503, retry later."""


class RequestRejected(Exception):  # noqa: N818 - a rejection, not a programming error
    """A request refused for a reason the client can fix; status is the HTTP 4xx code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Upload:
    """One uploaded image: its bytes and, for multipart uploads, its file name."""

    data: bytes
    filename: str | None = None
    position: int | None = None

    def describe(self) -> str:
        """Name the image in error messages: 'the image (cat.png)' or 'image 2 (cat.png)'."""
        name = "the image" if self.position is None else f"image {self.position}"
        return name + (f" ({self.filename})" if self.filename else "")


def _too_large(what: str, size: int | str, limit: int) -> RequestRejected:
    return RequestRejected(
        413, "too_large", f"{what} is {size} bytes; the limit is {limit} bytes. Send a smaller file"
    )


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with every file part kept in memory, never on disk.

    Starlette spools a file part over 1 MiB to a temporary file. The body reaching the
    parser is already capped (max_batch_bytes), so memory is bounded without it, and a
    full or slow disk can never fail an upload.
    """

    spool_max_size = sys.maxsize


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise RequestRejected(400, "bad_request", f"invalid Content-Length {declared!r}")
    return int(declared)


async def _discard(chunks: AsyncIterator[bytes], received: int, settings: ServeSettings) -> None:
    """Read and drop the rest of an over-limit body, up to drain_bytes and drain_timeout_s.

    The lingering close of web servers: a client that sends its whole body before reading
    the reply sees the 413 instead of a connection reset (closing a socket with unread data
    makes the kernel send a reset). Nothing is kept, so this costs time, not memory.
    """
    with anyio.move_on_after(settings.drain_timeout_s):
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > settings.drain_bytes:
                    return
        except ClientDisconnect:
            return  # gone: nobody will read the 413 anyway


async def drain_unread(scope: Scope, receive: Receive, settings: ServeSettings) -> None:
    """Drain the body of a request refused before it was read (401, 403, 429), like _discard.

    Skipped when the client waits for `100 Continue` (it has sent nothing) or declares more
    than drain_bytes (it gets the reset that size deserves).
    """
    request = Request(scope, receive)
    declared = request.headers.get("content-length", "")
    if request.headers.get("expect", "").lower() == "100-continue":
        return
    if declared and (not declared.isdigit() or int(declared) > settings.drain_bytes):
        return
    with contextlib.suppress(OSError):
        await _discard(request.stream(), 0, settings)


async def limited_stream(
    request: Request, limit: int, settings: ServeSettings, what: str = "request body"
) -> AsyncGenerator[bytes, None]:
    """Yield the body's chunks, refusing (413) as soon as it is known to exceed limit bytes.

    Before the 413, what is left of the body is drained (see _discard) unless the client
    waits for `100 Continue` before sending it, or has declared more than drain_bytes.
    A client that goes away raises ClientDisconnected; an I/O error, UploadIOError.
    """
    declared = _declared_length(request)
    expects_continue = request.headers.get("expect", "").lower() == "100-continue"
    chunks = request.stream()
    if declared is not None and declared > limit:
        if not expects_continue and declared <= settings.drain_bytes:
            await _discard(chunks, 0, settings)
        raise _too_large(what, declared, limit)
    size = 0
    try:
        # Count while streaming: chunked uploads have no Content-Length to check up front.
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                if not expects_continue:
                    await _discard(chunks, size, settings)
                raise _too_large(what, f"over {limit}", limit)
            yield chunk
    except ClientDisconnect as error:
        raise ClientDisconnected(size) from error
    except OSError as error:
        raise UploadIOError(f"reading the request failed: {error}") from error


async def _finish(stream: AsyncGenerator[bytes, None]) -> None:
    """Consume what is left of a limited stream, ignoring how it ends."""
    with contextlib.suppress(RequestRejected, ClientDisconnected, UploadIOError):
        async for _ in stream:
            pass


async def read_body(
    request: Request, limit: int, settings: ServeSettings, what: str = "request body"
) -> bytes:
    """Return the body, refusing (413) as soon as it is known to exceed limit bytes."""
    chunks = [chunk async for chunk in limited_stream(request, limit, settings, what)]
    return b"".join(chunks)


async def parse_multipart(
    request: Request, stream: AsyncGenerator[bytes, None], max_files: int
) -> list[Upload]:
    """Return the file parts of a multipart body in order, parsed as it streams in.

    Text fields are ignored. No copy of the whole body is made: each file part is kept once
    in memory, then taken out of the parser one at a time.
    """
    _, uploads = await parse_multipart_form(request, stream, max_files)
    return uploads


async def parse_multipart_form(
    request: Request, stream: AsyncGenerator[bytes, None], max_files: int, max_fields: int = 100
) -> tuple[dict[str, str], list[Upload]]:
    """Return the text fields (the last value of each name) and the file parts, in order."""
    parser = InMemoryMultiPartParser(
        request.headers, stream, max_files=max_files, max_fields=max_fields
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if str(error).startswith("Too many files"):
            hint = "; use /predict_batch for several" if max_files == 1 else ""
            raise RequestRejected(
                422, "too_many_images", f"too many images: at most {max_files} per request{hint}"
            ) from error
        raise RequestRejected(400, "bad_multipart", f"malformed multipart body: {error}") from error
    fields: dict[str, str] = {}
    uploads = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(await value.read(), value.filename or None))
            await value.close()
        else:
            fields[name] = value
    return fields, uploads


async def read_image_form(
    request: Request, settings: ServeSettings, max_fields: int
) -> tuple[dict[str, str], Upload | None]:
    """Read a multipart form of a few text fields and at most one image, within the caps.

    The body may hold one image of max_bytes plus the multipart overhead; the image itself
    is refused above max_bytes, or when empty, as on /predict.
    """
    stream = limited_stream(request, settings.max_bytes + MULTIPART_OVERHEAD, settings)
    try:
        fields, uploads = await parse_multipart_form(request, stream, 1, max_fields)
    except RequestRejected:
        await _finish(stream)
        raise
    upload = uploads[0] if uploads else None
    if upload is not None:
        if not upload.data:
            raise RequestRejected(400, "empty", f"{upload.describe()} is empty (0 bytes)")
        if len(upload.data) > settings.max_bytes:
            raise _too_large(upload.describe(), len(upload.data), settings.max_bytes)
    return fields, upload


async def read_uploads(request: Request, settings: ServeSettings, batch: bool) -> list[Upload]:
    """Read one image (raw body or a multipart file) or, for a batch, several multipart files."""
    limit = settings.max_batch_bytes if batch else settings.max_bytes + MULTIPART_OVERHEAD
    content_type = request.headers.get("content-type", "")
    is_multipart = content_type.startswith("multipart/form-data")
    if not is_multipart:
        limit = settings.max_bytes
    what = "the upload" if is_multipart else "the image"
    stream = limited_stream(request, limit, settings, what)
    try:
        if is_multipart:
            max_files = settings.max_batch_images if batch else 1
            uploads = await parse_multipart(request, stream, max_files)
        elif batch:
            raise RequestRejected(
                400, "bad_request", "send the images as multipart/form-data files (field `files`)"
            )
        else:
            uploads = [Upload(b"".join([chunk async for chunk in stream]))]
    except RequestRejected:
        # Refused before the end of the body (bad multipart, wrong type): read the rest
        # within the same caps, so that the client can read the 4xx (see _discard).
        await _finish(stream)
        raise
    if not uploads:
        raise RequestRejected(400, "empty", "no image in the request: send a file or raw bytes")
    if batch:  # number the images so that errors say which one was wrong
        uploads = [Upload(u.data, u.filename, i) for i, u in enumerate(uploads)]
    for upload in uploads:
        if not upload.data:
            raise RequestRejected(400, "empty", f"{upload.describe()} is empty (0 bytes)")
        if len(upload.data) > settings.max_bytes:
            raise _too_large(upload.describe(), len(upload.data), settings.max_bytes)
    return uploads
