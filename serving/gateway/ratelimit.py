"""Token buckets shared by all worker processes of one gateway, so a key's rate is the pod's, not each worker's.

Each bucket is a 16-byte slot (tokens, last update on the system-wide monotonic clock) in one small file in a
directory the workers share (under gunicorn: PROMETHEUS_MULTIPROC_DIR, emptied of metrics at each start). A
take reads and writes its slot under an exclusive `flock`, plus a lock for the threads (or greenlets) of the
process, since `flock` only excludes other processes. The first worker to open the file fills it; a file of
the wrong size (other keys) is filled again.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SLOT = struct.Struct("<dd")  # tokens, updated


class SharedBuckets:
    """`take(i)` spends a token of bucket i: 0.0 when allowed, else the seconds until one is available."""

    def __init__(
        self,
        path: Path,
        rates: Sequence[tuple[float, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rates = list(rates)  # (tokens per second, burst) of each bucket
        self._clock = clock
        self._threads = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size != SLOT.size * len(self._rates):
                os.ftruncate(self._fd, 0)
                now = clock()
                os.pwrite(self._fd, b"".join(SLOT.pack(burst, now) for _rate, burst in self._rates), 0)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._threads:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self, index: int) -> float:
        rate, burst = self._rates[index]
        offset = index * SLOT.size
        with self._locked():
            tokens, updated = SLOT.unpack(os.pread(self._fd, SLOT.size, offset))
            now = self._clock()
            tokens = min(burst, tokens + max(0.0, now - updated) * rate)  # max: a file from before a reboot
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            os.pwrite(self._fd, SLOT.pack(tokens - 1.0 if wait == 0.0 else tokens, now), offset)
        return wait
