"""Reading listed files: bounded reads whatever the stream hands back."""

from __future__ import annotations

import io

import pytest

from aidetector.batch.sources import READ_CHUNK, read_at_most


class Trickle(io.RawIOBase):
    """A stream that hands back at most 1,000 bytes a read, as network streams may."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(min(size, 1000) if size >= 0 else 1000)


@pytest.mark.parametrize("size", [0, 10, READ_CHUNK - 1, READ_CHUNK, 3 * READ_CHUNK + 7])
def test_a_stream_under_the_limit_is_read_whole(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert read_at_most(io.BytesIO(data), 4 * READ_CHUNK) == data
    assert read_at_most(Trickle(data), 4 * READ_CHUNK) == data


def test_a_stream_over_the_limit_stops_at_the_limit_and_leaves_the_rest() -> None:
    data = b"x" * (2 * READ_CHUNK + 5)
    stream = io.BytesIO(data)
    assert read_at_most(stream, READ_CHUNK + 1) == data[: READ_CHUNK + 1]
    assert stream.read() == data[READ_CHUNK + 1 :]
