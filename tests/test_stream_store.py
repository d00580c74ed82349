"""Both stream stores against real servers: SQLite (WAL) in a temp folder and a real redis-server."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.gateway.streams.store import StoreUnavailable, StreamStore, TooManyStreams, open_store
from tests.fixtures_redis import RedisHandle, start_redis


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StreamStore]:
    if request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path}/streams.db", timeout_seconds=2.0)
    else:
        server: RedisHandle = request.getfixturevalue("redis_server")
        opened = open_store(server.url, timeout_seconds=2.0)
        opened.client.flushdb()  # type: ignore[attr-defined]
    try:
        yield opened
    finally:
        opened.close()


def test_create_get_replace_delete(store: StreamStore) -> None:
    assert store.get("k", "s") is None
    store.create("k", "s", b"one", ttl_seconds=60, max_streams=0)
    record = store.get("k", "s")
    assert record is not None and (record.blob, record.revision) == (b"one", 1)
    assert store.replace("k", "s", 1, b"two", ttl_seconds=60)
    assert not store.replace("k", "s", 1, b"stale", ttl_seconds=60)  # the revision moved on
    record = store.get("k", "s")
    assert record is not None and (record.blob, record.revision) == (b"two", 2)
    assert store.get("other-key", "s") is None  # streams belong to their owner
    assert store.count() == 1
    store.create("k", "s", b"afresh", ttl_seconds=60, max_streams=0)  # re-created: an append that read 2 fails
    assert not store.replace("k", "s", 2, b"late", ttl_seconds=60)
    record = store.get("k", "s")
    assert record is not None and (record.blob, record.revision) == (b"afresh", 3)
    assert store.delete("k", "s") and not store.delete("k", "s")
    assert store.get("k", "s") is None and store.count() == 0
    assert not store.replace("k", "s", 2, b"ghost", ttl_seconds=60)


def test_idle_streams_expire(store: StreamStore) -> None:
    store.create("k", "brief", b"x", ttl_seconds=0.3, max_streams=0)
    store.create("k", "long", b"x", ttl_seconds=60, max_streams=0)
    assert store.count() == 2
    time.sleep(0.5)
    assert store.get("k", "brief") is None and store.count() == 1
    assert not store.replace("k", "brief", 1, b"y", ttl_seconds=60)


def test_cap_per_owner_counts_live_streams_only(store: StreamStore) -> None:
    store.create("k", "a", b"x", ttl_seconds=60, max_streams=2)
    store.create("k", "b", b"x", ttl_seconds=0.3, max_streams=2)
    with pytest.raises(TooManyStreams):
        store.create("k", "c", b"x", ttl_seconds=60, max_streams=2)
    store.create("k", "a", b"again", ttl_seconds=60, max_streams=2)  # re-creating one is not one more
    store.create("other", "c", b"x", ttl_seconds=60, max_streams=2)  # another owner has its own cap
    time.sleep(0.5)
    store.create("k", "c", b"x", ttl_seconds=60, max_streams=2)  # "b" expired


def test_racing_replacements_of_one_stream_let_exactly_one_win(store: StreamStore) -> None:
    store.create("k", "s", b"0", ttl_seconds=60, max_streams=0)
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        if store.replace("k", "s", 1, str(n).encode(), ttl_seconds=60):
            wins.append(n)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get("k", "s")
    assert len(wins) == 1 and record is not None and record.blob == str(wins[0]).encode() and record.revision == 2


def test_an_unreachable_redis_is_store_unavailable(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        store = open_store(server.url, timeout_seconds=0.5)
        store.create("k", "s", b"kept", ttl_seconds=60, max_streams=0)
        server.stop()
        with pytest.raises(StoreUnavailable):
            store.get("k", "s")
        server.restart()  # append-only file: what was acknowledged is back
        record = store.get("k", "s")
        assert record is not None and record.blob == b"kept"
    finally:
        server.stop()


def test_an_unusable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "streams.db"
    store = open_store(f"sqlite:///{path}", timeout_seconds=0.2)
    store.create("k", "s", b"x", ttl_seconds=60, max_streams=0)
    holder = open_store(f"sqlite:///{path}", timeout_seconds=0.2)
    holder._connection().execute("BEGIN EXCLUSIVE")  # type: ignore[attr-defined]  # another writer holds the lock
    with pytest.raises(StoreUnavailable):
        store.create("k", "t", b"x", ttl_seconds=60, max_streams=0)
    holder.close()
    store.create("k", "t", b"x", ttl_seconds=60, max_streams=0)


def _open_at_once(url: str, start: threading.Barrier, outcomes: multiprocessing.Queue) -> None:
    try:
        start.wait(timeout=30)
        open_store(url, timeout_seconds=5.0).close()
        outcomes.put("opened")
    except (StoreUnavailable, threading.BrokenBarrierError) as exc:
        outcomes.put(repr(exc))


def test_workers_booting_together_all_open_a_new_sqlite_file(tmp_path: Path) -> None:
    """gunicorn starts every worker at once and each opens the store: on a new file SQLite answered "database is
    locked" to some of them without waiting (9 of 30 trials of 4 processes), and a worker failing to boot stops
    the whole gateway (seen in CI)."""
    context = multiprocessing.get_context("fork")
    for trial in range(30):
        url, workers = f"sqlite:///{tmp_path}/trial-{trial}/streams.db", 4
        start, outcomes = context.Barrier(workers), context.Queue()
        processes = [
            context.Process(target=_open_at_once, args=(url, start, outcomes), daemon=True) for _ in range(workers)
        ]
        for process in processes:
            process.start()
        results = [outcomes.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        assert results == ["opened"] * workers, f"trial {trial}: {results}"


def test_unknown_store_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        open_store("memcached://x", timeout_seconds=1.0)
