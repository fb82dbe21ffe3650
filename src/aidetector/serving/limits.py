"""Reading a request within its byte caps: the raw body or multipart files, bad input -> 4xx.

The first step of a request (this reads it, decoding.py decodes it, verdicts.py predicts).
Every way a request can be wrong ends in RequestRejected, which the routes turn into a
JSON error with a 4xx status; nothing a client sends should reach a 500.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from aidetector.serving.settings import ServeSettings

# Room for multipart boundaries and part headers around a single image of max_bytes.
MULTIPART_OVERHEAD = 64 * 1024


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


async def read_body(request: Request, limit: int, what: str = "request body") -> bytes:
    """Return the body, refusing (413) as soon as it is known to exceed limit bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestRejected(400, "bad_request", f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise _too_large(what, declared, limit)
    chunks: list[bytes] = []
    size = 0
    # Count while streaming: chunked uploads have no Content-Length to check up front.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(what, f"over {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _replay(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def parse_multipart(request: Request, body: bytes, max_files: int) -> list[Upload]:
    """Return the file parts of a multipart body in order; text fields are ignored."""
    parser = MultiPartParser(request.headers, _replay(body), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if str(error).startswith("Too many files"):
            hint = "; use /predict_batch for several" if max_files == 1 else ""
            raise RequestRejected(
                422, "too_many_images", f"too many images: at most {max_files} per request{hint}"
            ) from error
        raise RequestRejected(400, "bad_multipart", f"malformed multipart body: {error}") from error
    uploads = []
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append(Upload(await value.read(), value.filename or None))
            await value.close()
    return uploads


async def read_uploads(request: Request, settings: ServeSettings, batch: bool) -> list[Upload]:
    """Read one image (raw body or a multipart file) or, for a batch, several multipart files."""
    limit = settings.max_batch_bytes if batch else settings.max_bytes + MULTIPART_OVERHEAD
    content_type = request.headers.get("content-type", "")
    is_multipart = content_type.startswith("multipart/form-data")
    if not is_multipart:
        limit = settings.max_bytes
    body = await read_body(request, limit, "the upload" if is_multipart else "the image")
    if is_multipart:
        max_files = settings.max_batch_images if batch else 1
        uploads = await parse_multipart(request, body, max_files)
    elif batch:
        raise RequestRejected(
            400, "bad_request", "send the images as multipart/form-data files (field `files`)"
        )
    else:
        uploads = [Upload(body)]
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
