"""What a stream keeps: its encoding round-trips, and the errors it keeps are enough for the batch score."""

from __future__ import annotations

import base64
import zlib
from dataclasses import asdict, fields

import numpy as np
import orjson
import pytest

from serving.anomaly_scoring import SUSTAINED_POINTS, ScoreParams, evidence_tails, extend_tails
from serving.gateway.config import GatewayConfig
from serving.gateway.streams.service import _history_points
from serving.gateway.streams.state import ARRAYS, StreamState


def earlier_blob(state: StreamState, without: tuple[str, ...] = (), without_score: tuple[str, ...] = ()) -> bytes:
    """The state as gateways before the binary encoding stored it (all zlib-compressed JSON, arrays in base64),
    less the fields named, as a gateway from before those fields existed wrote it."""
    document = asdict(state)
    for name, dtype in ARRAYS.items():
        array = np.ascontiguousarray(getattr(state, name), dtype=dtype)
        document[name] = {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}
    for name in without:
        del document[name]
    for name in without_score:
        del document["score"][name]
    return zlib.compress(orjson.dumps(document))


def assert_same_state(one: StreamState, other: StreamState) -> None:
    for field in fields(StreamState):
        mine, theirs = getattr(one, field.name), getattr(other, field.name)
        if field.name in ARRAYS:
            assert mine.dtype == theirs.dtype, field.name
            np.testing.assert_array_equal(mine, theirs, err_msg=field.name)
        else:
            assert mine == theirs, field.name


def full_state(errors: int = 500) -> StreamState:
    rng = np.random.default_rng(0)
    return StreamState(
        model="pump-7",
        version=3,
        sensors=["a", "b"],
        interval_seconds=60.0,
        history_length=16,
        chunk_points=256,
        max_gap_steps=12,
        history_points=16_120,
        score=ScoreParams(prior_std=0.5),
        threshold=0.999,
        sensitivity=None,
        created=1.5,
        anchor=0.0,
        last_step=9,
        end=540.0,
        last_values=np.array([1.0, 2.0]),
        context=np.ones((10, 2), np.float32),
        errors=rng.random(errors).astype(np.float32),
        errors_kept=rng.random((3, errors)) < 0.9,  # 1,500 or 24,180 flags: not a whole number of bytes
        errors_opened_age=[None, 4, 17],
        seasonal=rng.random(errors - 1),
        seasonal_kept=rng.random((3, errors - 1)) < 0.5,
        seasonal_opened_age=[None, None, 2],
        seasonal_spread=np.array([0.5, 2.0]),
        day_times=60.0 * np.arange(7.0),
        day_values=np.arange(14, dtype=np.float32).reshape(7, 2),
        low=np.array([-1.0, 0.5]),
        high=np.array([3.0, 9.5]),
        event={"start_index": 3, "start": "1970-01-01T00:03:00Z", "points": 2},
        recent_events=[{"start": "1970-01-01T00:01:00Z", "status": "closed"}],
        last_append={"after": 480.0, "digest": "x", "response": '{"points": []}'},
    )


@pytest.mark.parametrize("errors", [500, 8060])  # arrays compressed (a young stream's), and stored as they are
def test_state_round_trips_through_its_blob(errors: int) -> None:
    state = full_state(errors)
    assert_same_state(StreamState.from_blob(state.to_blob()), state)
    # floats at most as they are, 8 flags to a byte, the rest compressed
    assert len(state.to_blob()) < 4 * errors + 8 * (errors - 1) + 6 * errors // 8 + 1000


def test_a_state_stored_in_the_earlier_encoding_loads_the_same() -> None:
    """A stream stored by the gateway before the binary encoding keeps going after an upgrade."""
    state = full_state()
    assert_same_state(StreamState.from_blob(earlier_blob(state)), state)


def test_a_state_stored_before_the_seasonal_evidence_still_loads() -> None:
    """A blob written by the previous gateway (no seasonal arrays or prior) loads as a model without them."""
    state = StreamState(
        model="m", version=1, sensors=["a"], interval_seconds=60.0, history_length=16, chunk_points=256,
        max_gap_steps=12, history_points=100, score=ScoreParams(), threshold=0.99, sensitivity=None, created=1.0,
        errors=np.ones(5, np.float32),
    )  # fmt: skip
    blob = earlier_blob(
        state,
        without=("seasonal", "seasonal_spread", "day_times", "day_values"),
        without_score=("seasonal_prior_mean", "seasonal_prior_std"),
    )
    again = StreamState.from_blob(blob)
    assert not again.score.seasonal and again.seasonal.size == 0 and again.day_times.size == 0
    np.testing.assert_array_equal(again.errors, state.errors)


def history_errors(size: int) -> np.ndarray:
    """Errors with a burst, an absurd spike, a long level shift, drift and unscored points."""
    rng = np.random.default_rng(1)
    errors = np.abs(rng.normal(1.0, 0.3, size))
    errors[5000:5040] += 8.0
    errors[9000] = 1e6
    errors[12_000:12_600] *= 2.5
    errors[17_000:] *= 1.3
    errors[rng.random(size) < 0.01] = np.nan
    return errors.astype(np.float32).astype(np.float64)  # the model's errors are float32, and a stream keeps them so


def small_state(history_points: int) -> StreamState:
    return StreamState(
        model="m", version=1, sensors=["a"], interval_seconds=60.0, history_length=16, chunk_points=256,
        max_gap_steps=12, history_points=history_points, score=ScoreParams(prior_std=0.3), threshold=0.99,
        sensitivity=None, created=1.0,
    )  # fmt: skip


def test_the_kept_past_gives_the_tails_of_the_whole_history() -> None:
    """Appended in pieces through the stored state, each point's tails are the batch's, bit for bit."""
    errors = history_errors(19_000)
    params = ScoreParams(prior_std=0.3)
    kept = _history_points(params, GatewayConfig())
    assert kept == params.baseline_points + 2 * SUSTAINED_POINTS == 8060
    state = small_state(kept)
    whole = evidence_tails(errors, state.evidence_prior("errors"), params)
    streamed: list[list[np.ndarray]] = [[], []]
    rng = np.random.default_rng(2)
    at, left_out = 0, 0
    while at < errors.size:
        size = int(rng.choice([1, 3, 29, 200, 1500]))
        tails, baseline = extend_tails(state.baseline("errors"), errors[at : at + size], (1.0, 0.3), params)
        state.keep_baseline("errors", baseline)
        state = StreamState.from_blob(state.to_blob())
        left_out = max(left_out, int((~state.errors_kept).sum()))
        for kept_tails, tail in zip(streamed, tails, strict=True):
            kept_tails.append(tail)
        at += size
    assert state.errors.size == kept and left_out > 0  # the spike and the burst were left out of the baseline
    for kept_tails, tail in zip(streamed, whole, strict=True):
        np.testing.assert_array_equal(np.concatenate(kept_tails), tail)


def test_a_state_stored_before_the_baseline_flags_rebuilds_them_from_its_errors() -> None:
    errors = history_errors(9_500)
    state = small_state(20_000)
    _, baseline = extend_tails(state.baseline("errors"), errors, (1.0, 0.3), state.score)
    state.keep_baseline("errors", baseline)
    older = StreamState.from_blob(earlier_blob(state, without=("errors_kept", "errors_opened_age")))
    rebuilt = older.baseline("errors")
    np.testing.assert_array_equal(rebuilt.kept, state.errors_kept)
    assert rebuilt.opened_age == tuple(state.errors_opened_age)
