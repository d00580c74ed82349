"""What the store keeps per stream, and its compact encoding: the arrays' bytes (flags packed 8 to a byte; zlib-
compressed while small) after the rest as zlib-compressed JSON.

Bounded by the model's constants: the readings since the current chunk's start (at most one chunk), the
valid per-point errors the score's baselines need (at most `history_points` of each evidence) and which of them
count in each baseline, the grid points
of the last `SEASON_CYCLES` days (for a model with seasonal evidence), the range of the readings so far, the
last event and the answer to the last append (for retries). Nothing grows with the stream's age beyond that.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import orjson

from serving.anomaly_scoring import Baseline, ScoreParams, extend_tails, tail_widths
from serving.gateway.segments import format_timestamp

RECENT_EVENTS = 10
PUBLIC_EVENT_FIELDS = ("start", "end", "peak_score", "peak_at", "points", "status")  # the rest are grid indices
COMPRESSION_LEVEL = 1  # the fastest: the stored answer to the last append (JSON) shrinks several times
# Blobs start with this; one without it is the earlier encoding (all of it zlib-compressed JSON, the arrays in
# base64), which a stream stored before an upgrade still has until its next append. Compressing a full state
# (10,200 readings) made it 106.5 KB instead of 112.3 KB for ~3 ms of every append (bench/RESULTS.md, streams).
MAGIC = b"SST2"
HEADER = struct.Struct("<4sI")  # MAGIC, then the length of the compressed JSON
# Small arrays are compressed too: a young stream's (regular grid times, few errors) shrink by a third, and the
# whole encoding still takes under 0.1 ms.
COMPRESS_ARRAYS_UP_TO = 32 * 1024
ARRAYS = {
    "context": np.float32,
    "errors": np.float32,
    "errors_kept": np.bool_,
    "seasonal": np.float64,
    "seasonal_kept": np.bool_,
    "seasonal_spread": np.float64,
    "day_times": np.float64,
    "day_values": np.float32,
    "last_values": np.float64,
    "low": np.float64,
    "high": np.float64,
}


@dataclass
class StreamState:
    """One stream: the model version it started with, its grid, its score history and its events."""

    model: str
    version: int
    sensors: list[str]
    interval_seconds: float
    history_length: int
    chunk_points: int
    max_gap_steps: int
    history_points: int
    score: ScoreParams
    threshold: float
    sensitivity: float | None
    created: float
    anchor: float | None = None  # epoch seconds of grid step 0 (moved when a clock shift takes the next step)
    last_step: int = -1
    end: float | None = None  # the last reading's time: an append extends exactly this
    last_values: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the last reading, as sent
    points: int = 0  # grid points so far, filled ones included
    part_start: int = 0  # grid index where the current gap-free part starts
    readings: int = 0
    appends: int = 0
    context_start: int = 0  # grid index of context[0]
    context: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    errors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # valid errors, oldest first
    # per trailing mean: which kept errors count in its baseline, and how many points ago its last extreme
    # event opened (anomaly_scoring.Baseline; empty in a blob from before they were kept: rebuilt from errors)
    errors_kept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    errors_opened_age: list[int | None] = field(default_factory=list)
    seasonal: np.ndarray = field(default_factory=lambda: np.zeros(0))  # valid seasonal errors, oldest first
    seasonal_kept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    seasonal_opened_age: list[int | None] = field(default_factory=list)
    seasonal_spread: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [F], the model's
    day_times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the grid points of the last days
    day_values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    low: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per sensor, over every grid point so far
    high: np.ndarray = field(default_factory=lambda: np.zeros(0))
    event: dict[str, Any] | None = None  # the last event (grid indices, times, peak, points flagged)
    recent_events: list[dict[str, Any]] = field(default_factory=list)
    last_append: dict[str, Any] | None = None  # {"after", "digest", "response"} of the last applied append

    def to_blob(self) -> bytes:
        document = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ARRAYS}
        document["score"] = asdict(self.score)
        parts = []
        for name, dtype in ARRAYS.items():
            array = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            document[name] = list(array.shape)
            parts.append(np.packbits(array, bitorder="little") if dtype is np.bool_ else array)
        arrays = b"".join(part.tobytes() for part in parts)
        document["arrays_compressed"] = len(arrays) <= COMPRESS_ARRAYS_UP_TO
        if document["arrays_compressed"]:
            arrays = zlib.compress(arrays, COMPRESSION_LEVEL)
        header = zlib.compress(orjson.dumps(document), COMPRESSION_LEVEL)
        return b"".join([HEADER.pack(MAGIC, len(header)), header, arrays])

    @classmethod
    def from_blob(cls, blob: bytes) -> StreamState:
        """The state a blob holds; fields a blob from an earlier gateway lacks take their defaults."""
        if blob[: len(MAGIC)] != MAGIC:
            return cls._from_earlier_blob(blob)
        _, size = HEADER.unpack_from(blob)
        document = orjson.loads(zlib.decompress(blob[HEADER.size : HEADER.size + size]))
        arrays = memoryview(blob)[HEADER.size + size :]
        view = memoryview(zlib.decompress(arrays)) if document.pop("arrays_compressed") else arrays
        at = 0
        for name, dtype in ARRAYS.items():
            shape = document[name]
            count = int(np.prod(shape))
            if dtype is np.bool_:
                nbytes = -(-count // 8)
                bits = np.frombuffer(view[at : at + nbytes], dtype=np.uint8)
                array = np.unpackbits(bits, count=count, bitorder="little").astype(bool)
            else:
                nbytes = count * np.dtype(dtype).itemsize
                array = np.frombuffer(view[at : at + nbytes], dtype=dtype)
            document[name] = array.reshape(shape)
            at += nbytes
        document["score"] = ScoreParams(**document["score"])
        return cls(**document)

    @classmethod
    def _from_earlier_blob(cls, blob: bytes) -> StreamState:
        document = orjson.loads(zlib.decompress(blob))
        for name, dtype in ARRAYS.items():
            packed = document.get(name)
            if packed is None:  # stored before the seasonal evidence existed: its model has none in the state
                continue
            document[name] = np.frombuffer(base64.b64decode(packed["data"]), dtype=dtype).reshape(packed["shape"])
        document["score"] = ScoreParams(**document["score"])
        return cls(**document)

    def baseline(self, evidence: str) -> Baseline:
        """The past of one evidence ("errors" or "seasonal") that its next tails need."""
        errors = getattr(self, evidence).astype(np.float64)
        kept = getattr(self, f"{evidence}_kept")
        if kept.shape != (len(tail_widths(self.score)), errors.size):  # stored before the flags were kept
            prior = self.evidence_prior(evidence)
            return extend_tails(Baseline.empty(), errors, prior, self.score)[1]
        return Baseline(errors, kept, tuple(getattr(self, f"{evidence}_opened_age")))

    def keep_baseline(self, evidence: str, baseline: Baseline) -> None:
        """Keep the last `history_points` of an evidence's extended past."""
        baseline = baseline.last(self.history_points)
        setattr(self, evidence, baseline.errors.astype(ARRAYS[evidence]))
        setattr(self, f"{evidence}_kept", baseline.kept)
        setattr(self, f"{evidence}_opened_age", list(baseline.opened_age))

    def evidence_prior(self, evidence: str) -> tuple[float, float]:
        """The learnt (mean, spread) of one evidence's errors."""
        if evidence == "seasonal":
            return (self.score.seasonal_prior_mean, self.score.seasonal_prior_std)
        return (self.score.prior_mean, self.score.prior_std)

    def summary(self) -> dict[str, Any]:
        """The public view of GET /v1/streams/{id}."""
        return {
            "model": {"name": self.model, "version": self.version},
            "sensors": self.sensors,
            "interval_seconds": self.interval_seconds,
            "threshold": self.threshold,
            "sensitivity": self.sensitivity,
            "end": None if self.end is None else format_timestamp(self.end),
            "readings": self.readings,
            "appends": self.appends,
            "grid_points": self.points,
            "history_points": int(self.errors.size),
            "recent_events": [{key: event[key] for key in PUBLIC_EVENT_FIELDS} for event in self.recent_events],
        }
