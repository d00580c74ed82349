"""serving/anomaly_scoring.py: sensitivity, self-adapting scores, their calibration, and events."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from serving.anomaly_scoring import (
    RANGE_MIN_HISTORY,
    ScoreParams,
    _count_at_least,
    adaptive_scores,
    beyond_range,
    false_alarm_rate,
    group_events,
    seasonal_residuals,
    threshold_for,
    with_range,
)


def test_sensitivity_is_a_false_alarm_rate_monotone_over_the_whole_range() -> None:
    assert false_alarm_rate(0.0) == pytest.approx(1e-6) and false_alarm_rate(1.0) == pytest.approx(0.1)
    assert false_alarm_rate(0.5) == pytest.approx(10**-3.5)
    steps = [threshold_for(s) for s in np.linspace(0, 1, 51)]
    assert all(a > b for a, b in itertools.pairwise(steps))
    with pytest.raises(ValueError):
        false_alarm_rate(1.5)


def test_rolling_counts_are_exact() -> None:
    values = np.random.default_rng(3).normal(size=2500).round(1)  # ties included
    for window in (1, 7, 300, 5000):
        counts = _count_at_least(values, values, window, block=64)
        expected = [np.sum(values[max(0, i - window) : i] >= values[i]) for i in range(values.size)]
        np.testing.assert_array_equal(counts, expected)
        for first in (1, 700, 2499):  # the points after a stream's past alone
            np.testing.assert_array_equal(_count_at_least(values, values, window, first, block=64), expected[first:])


def ar_errors(rng: np.random.Generator, n: int, heavy: bool) -> np.ndarray:
    """|AR(1)| errors of an imperfect forecaster, Gaussian or Student-t (3 d.o.f.) innovations."""
    noise = rng.standard_t(3, n) if heavy else rng.normal(size=n)
    series = np.zeros(n)
    for i in range(1, n):
        series[i] = 0.7 * series[i - 1] + noise[i]
    return np.abs(series)


@pytest.mark.parametrize("seasonal", [False, True])
@pytest.mark.parametrize("heavy", [False, True])
def test_flagged_share_of_normal_points_matches_the_promise(heavy: bool, seasonal: bool) -> None:
    """From sensitivity 0.7 (3 in 1,000) up: between a fifth of the promise and twice it; below, at most 10x.

    The promise holds for each evidence tail; a point's tail is the harmonic mean of its 2 or 4 (docs/anomaly.md).
    """
    rng = np.random.default_rng(7)
    errors, seasonal_errors = ar_errors(rng, 60_000, heavy), ar_errors(rng, 60_000, heavy)

    def learnt(values: np.ndarray) -> tuple[float, float]:
        means = np.convolve(values[:700], np.ones(10) / 10, mode="valid")
        return float(means.mean()), float(means.std())

    (mean, std), (seasonal_mean, seasonal_std) = learnt(errors), learnt(seasonal_errors)
    params = ScoreParams(prior_mean=mean, prior_std=std)
    if seasonal:
        params = replace(params, seasonal_prior_mean=seasonal_mean, seasonal_prior_std=seasonal_std)
    scores = adaptive_scores(errors, params, seasonal_errors if seasonal else None)
    shares = []
    for sensitivity in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        promised = false_alarm_rate(sensitivity)
        share = float(np.mean(scores[1000:] > threshold_for(sensitivity)))
        low, high = (promised / 5, promised * 2) if sensitivity >= 0.7 else (0.0, promised * 10)
        assert low <= share <= high, (sensitivity, promised, share)
        shares.append(share)
    assert shares == sorted(shares)


def test_a_model_with_seasonal_evidence_needs_the_seasonal_errors() -> None:
    with pytest.raises(ValueError, match="seasonal"):
        adaptive_scores(np.ones(50), ScoreParams(seasonal_prior_std=1.0))


def test_seasonal_residuals_compare_with_the_median_of_the_same_time_on_earlier_days() -> None:
    """Hourly points over 5 days with a 1-day hole: references are found by time, across the hole."""
    hours = np.array([h for h in range(5 * 24) if not 48 <= h < 72], dtype=np.float64)
    times = 1_700_000_000.0 + 3600.0 * hours
    values = (hours % 24).reshape(-1, 1) + np.where(hours >= 96, 10.0, 0.0).reshape(-1, 1)
    values[hours == 30] += 5.0  # one odd reading on day 1
    residuals = seasonal_residuals(times, values, 3600.0)[:, 0]
    assert np.isnan(residuals[hours < 24]).all()  # day 0 has no earlier day
    assert residuals[hours == 30] == 5.0  # against day 0
    assert residuals[hours == 79] == 0.0  # day 3 against days 1 and 0 (day 2 is the hole)
    day4 = hours >= 96  # 10 above days 3 and 1; at 06:00 the median of 6 and the odd 11 is 8.5
    np.testing.assert_array_equal(residuals[day4], np.where(hours[day4] == 102, 7.5, 10.0))
    split = seasonal_residuals(times[50:], values[50:], 3600.0, earlier=(times[:50], values[:50]))
    np.testing.assert_array_equal(split, seasonal_residuals(times, values, 3600.0)[50:])


def test_scores_adapt_to_a_noisier_series_and_skip_unscored_points() -> None:
    rng = np.random.default_rng(1)
    errors = np.concatenate([np.abs(rng.normal(size=3000)), 3 * np.abs(rng.normal(size=6000))])
    errors[[0, 1, 5000]] = np.nan
    params = ScoreParams(prior_mean=0.8, prior_std=0.15)
    scores = adaptive_scores(errors, params)
    assert np.isnan(scores[[0, 1, 5000]]).all() and np.isfinite(np.delete(scores, [0, 1, 5000])).all()
    alpha = false_alarm_rate(0.8)
    assert np.mean(scores[3000:3200] > 1 - alpha) > 0.5  # the change itself is surprising
    assert np.mean(scores[8000:] > 1 - alpha) < 3 * alpha  # and 5,000 points later it is the new normal


def test_an_extreme_value_is_reported_and_does_not_blind_the_detector() -> None:
    errors = np.abs(np.random.default_rng(2).normal(size=2000))
    errors[1000] = 1e30
    errors[1500:1510] += 8.0
    scores = adaptive_scores(errors, ScoreParams(prior_mean=0.8, prior_std=0.15))
    assert np.isfinite(scores).all()
    threshold = threshold_for(0.5)
    assert scores[1000] > threshold and (scores[1500:1510] > threshold).any()


def test_events_group_flags_within_the_gap() -> None:
    flags = np.zeros(1000, dtype=bool)
    flags[[10, 11, 12, 200, 400, 401, 900]] = True
    scores = np.where(flags, 0.99, 0.1)
    scores[401] = 0.999
    events = group_events(flags, scores, event_gap_points=300)
    assert [(e.start, e.end, e.peak) for e in events] == [(10, 200, 10), (400, 401, 401), (900, 900, 900)]
    assert group_events(np.zeros(5, dtype=bool), np.zeros(5), 3) == []


def test_readings_beyond_the_range_seen_so_far_score_one_in_a_million() -> None:
    """Range 0..10 so far: 11.2 is beyond it by more than 10% of it, 10.9 is not; any sensor counts."""
    rng = np.random.default_rng(5)
    h = RANGE_MIN_HISTORY
    base = rng.uniform(0, 10, size=(h + 300, 2))
    base[[3, 7], 0] = [0.0, 10.0]
    values = base.copy()
    values[h + 100, 0] = 10.9  # inside the margin
    values[h + 20, 1] = 11.2  # beyond it, on the second sensor
    values[h + 40, 0] = -1.2  # beyond it, downwards
    values[h + 60, 0] = np.nan
    assert np.flatnonzero(beyond_range(values)).tolist() == [h + 20, h + 40]
    early = base.copy()
    early[50, 0] = 1e6  # a young series sets records often: the first RANGE_MIN_HISTORY points never count
    assert not beyond_range(early[:h]).any() and not beyond_range(early)[50]

    scores = np.full(len(values), 0.5)
    scores[200] = 0.9999
    raised = with_range(scores, values)
    for sensitivity in (0.01, 0.5, 1.0):
        flagged = np.flatnonzero(raised > threshold_for(sensitivity)).tolist()
        assert flagged == ([200] if sensitivity >= 0.5 else []) + [h + 20, h + 40]
    assert not (raised > threshold_for(0.0)).any() and not (raised > 1.0).any()  # threshold 1 flags nothing
    scores[h + 40] = np.nan  # unscored (warming up, after a gap) stays unscored, even beyond the range
    assert np.isnan(with_range(scores, values)[h + 40])
