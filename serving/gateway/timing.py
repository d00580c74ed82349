"""Per-request stage timing for `gateway_stage_duration_seconds` (decode, preprocess, upstream, ...)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from serving.gateway import metrics


class StageTimer:
    """Adds up the time spent in each named stage of one request and reports it once at the end."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def report(self) -> None:
        for name, seconds in self.seconds.items():
            metrics.labelled(metrics.STAGE_DURATION, self.endpoint, name).observe(seconds)
