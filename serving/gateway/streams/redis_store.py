"""Streams in Redis: shared by every worker and replica (compose, Kubernetes).

A stream is a hash {state, rev} under `stream:{owner}:{id}` with the idle TTL as its expiry. Creating one
(with the per-owner cap) and replacing one (only at the revision read) are Lua scripts, so each is atomic in
Redis and costs one round trip. Two sorted sets, by expiry time, count live streams per owner and in all.
One Redis (or a primary with replicas), not Redis Cluster: the scripts touch keys of different slots.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from serving.gateway.streams.store import Record, StoreUnavailable, TooManyStreams

ALL_STREAMS = "streams:all"

CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
local limit = tonumber(ARGV[3])
if limit > 0 then
  local others = redis.call('ZCARD', KEYS[2])
  if redis.call('ZSCORE', KEYS[2], ARGV[6]) then others = others - 1 end
  if others >= limit then return 0 end
end
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0') + 1
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'rev', rev)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local expires = tonumber(ARGV[4]) + tonumber(ARGV[2]) / 1000
redis.call('ZADD', KEYS[2], expires, ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], expires, ARGV[5])
return 1
"""

REPLACE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or tonumber(rev) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'rev', tonumber(rev) + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local expires = tonumber(ARGV[4]) + tonumber(ARGV[3]) / 1000
redis.call('ZADD', KEYS[2], expires, ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], expires, ARGV[5])
return 1
"""


class RedisStore:
    """The StreamStore of one Redis server (a connection pool per worker)."""

    def __init__(self, url: str, *, timeout_seconds: float) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds)
        self._create = self.client.register_script(CREATE)
        self._replace = self.client.register_script(REPLACE)

    def _keys(self, owner: str, stream_id: str) -> list[str]:
        return [f"stream:{owner}:{stream_id}", f"streams:owner:{owner}", ALL_STREAMS]

    def create(self, owner: str, stream_id: str, blob: bytes, ttl_seconds: float, max_streams: int) -> None:
        args = [blob, _ms(ttl_seconds), max_streams, time.time(), f"{owner}:{stream_id}", stream_id]
        with _available():
            created = self._create(keys=self._keys(owner, stream_id), args=args)
        if not created:
            raise TooManyStreams(max_streams)

    def get(self, owner: str, stream_id: str) -> Record | None:
        with _available():
            blob, revision = self.client.hmget(self._keys(owner, stream_id)[0], "state", "rev")
        return None if blob is None or revision is None else Record(blob, int(revision))

    def replace(self, owner: str, stream_id: str, revision: int, blob: bytes, ttl_seconds: float) -> bool:
        args = [revision, blob, _ms(ttl_seconds), time.time(), f"{owner}:{stream_id}", stream_id]
        with _available():
            return bool(self._replace(keys=self._keys(owner, stream_id), args=args))

    def delete(self, owner: str, stream_id: str) -> bool:
        key, by_owner, everyone = self._keys(owner, stream_id)
        with _available():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key).zrem(by_owner, stream_id).zrem(everyone, f"{owner}:{stream_id}")
            deleted, _, _ = pipe.execute()
        return bool(deleted)

    def count(self) -> int:
        with _available():
            pipe = self.client.pipeline(transaction=True)
            pipe.zremrangebyscore(ALL_STREAMS, "-inf", time.time()).zcard(ALL_STREAMS)
            return int(pipe.execute()[1])

    def close(self) -> None:
        self.client.close()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


@contextmanager
def _available() -> Iterator[None]:
    """Turns Redis' connection, timeout and still-loading errors into StoreUnavailable."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise StoreUnavailable(f"stream store unreachable: {error}") from error
