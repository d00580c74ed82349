"""The one small interface every stream store implements, and `open_store` to pick one from a URL.

A stream is an opaque blob under a key with a revision number. Appends are optimistic: read (blob, rev),
compute without holding anything, then `replace` only if the revision is still the one read. So a slow
forecast never blocks another stream, and two appends racing on one stream serialise: exactly one wins.
Every record expires after its TTL without a write; each write renews it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StoreUnavailable(Exception):
    """The store cannot be reached or did not answer in time (the gateway answers 503 + Retry-After)."""


class TooManyStreams(Exception):
    """The owner already has `limit` live streams."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the limit of {limit} streams per key is reached")
        self.limit = limit


@dataclass(frozen=True)
class Record:
    """A stored stream: its state blob and the revision it was written with (every write moves it on)."""

    blob: bytes
    revision: int


class StreamStore(Protocol):
    """Where streams live; every gateway worker and replica shares one."""

    def create(self, owner: str, stream_id: str, blob: bytes, ttl_seconds: float, max_streams: int) -> None:
        """Write a stream, replacing one of the same id (at a later revision, so that an append that read the
        old one fails); TooManyStreams when the owner already has `max_streams` other live ones (0: no limit)."""

    def get(self, owner: str, stream_id: str) -> Record | None:
        """The live stream, or None (never created, deleted, or expired)."""

    def replace(self, owner: str, stream_id: str, revision: int, blob: bytes, ttl_seconds: float) -> bool:
        """Write `blob` at `revision + 1` if the stream is still at `revision`; False otherwise."""

    def delete(self, owner: str, stream_id: str) -> bool:
        """Remove a stream; False when there was none."""

    def count(self) -> int:
        """Live streams of every owner (for the `gateway_streams_active` gauge)."""

    def close(self) -> None:
        """Release connections."""


def open_store(url: str, *, timeout_seconds: float) -> StreamStore:
    """`sqlite:///path/streams.db` (embedded; one host) or `redis://host:port/db` (shared by replicas)."""
    if url.startswith("sqlite:///"):
        from serving.gateway.streams.sqlite_store import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"), timeout_seconds=timeout_seconds)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from serving.gateway.streams.redis_store import RedisStore

        return RedisStore(url, timeout_seconds=timeout_seconds)
    raise ValueError(f"stream store URL must start with sqlite:/// or redis://, got {url[:40]!r}")
