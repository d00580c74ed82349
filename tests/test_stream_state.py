"""What a stream keeps: its encoding round-trips, and the errors it keeps are enough for the batch score."""

from __future__ import annotations

import zlib

import numpy as np
import orjson

from serving.anomaly_scoring import SUSTAINED_POINTS, ScoreParams, adaptive_scores
from serving.gateway.config import GatewayConfig
from serving.gateway.streams.service import _history_points
from serving.gateway.streams.state import StreamState


def test_state_round_trips_through_its_blob() -> None:
    errors = np.random.default_rng(0).random(500).astype(np.float32)
    state = StreamState(
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
        errors=errors,
        seasonal_spread=np.array([0.5, 2.0]),
        day_times=60.0 * np.arange(7.0),
        day_values=np.arange(14, dtype=np.float32).reshape(7, 2),
        last_append={"after": 480.0, "digest": "x", "response": '{"points": []}'},
    )
    again = StreamState.from_blob(state.to_blob())
    np.testing.assert_array_equal(again.errors, errors)
    np.testing.assert_array_equal(again.context, state.context)
    for name in ("seasonal", "seasonal_spread", "day_times", "day_values"):
        np.testing.assert_array_equal(getattr(again, name), getattr(state, name))
    assert again.score == state.score and again.last_append == state.last_append and again.end == 540.0
    assert len(state.to_blob()) < 4 * errors.size + 1000  # zlib takes back what base64 adds to the floats


def test_a_state_stored_before_the_seasonal_evidence_still_loads() -> None:
    """A blob written by the previous gateway (no seasonal arrays or prior) loads as a model without them."""
    state = StreamState(
        model="m", version=1, sensors=["a"], interval_seconds=60.0, history_length=16, chunk_points=256,
        max_gap_steps=12, history_points=100, score=ScoreParams(), threshold=0.99, sensitivity=None, created=1.0,
        errors=np.ones(5, np.float32),
    )  # fmt: skip
    document = orjson.loads(zlib.decompress(state.to_blob()))
    for name in ("seasonal", "seasonal_spread", "day_times", "day_values"):
        del document[name]
    for name in ("seasonal_prior_mean", "seasonal_prior_std"):
        del document["score"][name]
    again = StreamState.from_blob(zlib.compress(orjson.dumps(document)))
    assert not again.score.seasonal and again.seasonal.size == 0 and again.day_times.size == 0
    np.testing.assert_array_equal(again.errors, state.errors)


def test_the_kept_errors_give_the_scores_of_the_whole_history() -> None:
    rng = np.random.default_rng(1)
    errors = np.abs(rng.normal(1.0, 0.3, 19_000))
    errors[5000:5040] += 8.0  # a burst, an absurd spike, a long level shift, then drift
    errors[9000] = 1e6
    errors[12_000:12_600] *= 2.5
    errors[17_000:] *= 1.3
    params = ScoreParams()
    kept = _history_points(params, GatewayConfig())
    assert kept == 2 * (params.baseline_points + SUSTAINED_POINTS) + params.event_gap_points == 16_160
    whole = adaptive_scores(errors, params)
    for stop in range(kept + 100, errors.size + 1, 700):
        window = adaptive_scores(errors[stop - 100 - kept : stop], params)[-100:]
        np.testing.assert_allclose(window, whole[stop - 100 : stop], rtol=0, atol=1e-12)
