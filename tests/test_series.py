"""serving/gateway/series_input.py, series_prepare.py, series_chunks.py and segments.py: parsing, the model grid,
chunks and anomaly segments."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from serving.gateway.errors import ApiError
from serving.gateway.segments import format_timestamps
from serving.gateway.series_chunks import Chunk, make_chunks, stitch
from serving.gateway.series_input import RawSeries, parse_csv_series, parse_json_series
from serving.gateway.series_prepare import PreparedSeries, prepare_series
from serving.series_grid import alarm_readings

T0 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
FIVE_MINUTES = 300.0
MACHINE_TEMPERATURE = Path("realKnownCause") / "machine_temperature_system_failure.csv"


def api_error(call: Callable[..., object], *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def series(times: np.ndarray, values: np.ndarray) -> RawSeries:
    return RawSeries(
        timestamps=np.asarray(times, dtype=np.float64),
        values={"value": np.asarray(values, dtype=np.float64)},
        univariate=True,
    )


def prepare(raw: RawSeries, **overrides: object) -> PreparedSeries:
    options: dict[str, object] = {"interval_seconds": FIVE_MINUTES, "sensor_names": ["value"], "history_length": 4}
    options.update(overrides)
    return prepare_series(raw, **options)


# ---------------------------------------------------------------- JSON


def test_json_univariate_iso_and_epoch_agree() -> None:
    iso = parse_json_series(
        {
            "timestamps": [
                "2024-03-01T00:00:00Z",
                "2024-03-01T00:05:00",
                "2024-03-01 01:10:00+01:00",
                "2024-03-01T00:15:00.000+00:00",
            ],
            "values": [1, 2.5, None, -4],
        }
    )
    epoch = parse_json_series({"timestamps": [T0, T0 + 300, int(T0) + 600, T0 + 900], "values": [1, 2.5, None, -4]})
    assert iso.univariate and list(iso.values) == ["value"]
    np.testing.assert_array_equal(iso.timestamps, [T0, T0 + 300, T0 + 600, T0 + 900])
    np.testing.assert_array_equal(epoch.timestamps, iso.timestamps)
    np.testing.assert_array_equal(iso.values["value"], [1.0, 2.5, np.nan, -4.0])


def test_json_multivariate_is_ordered_by_the_model() -> None:
    raw = parse_json_series(
        {
            "timestamps": [T0 + 300 * i for i in range(6)],
            "series": {"pressure": [10, 11, 12, 13, 14, 15], "temperature": [20, 21, 22, 23, 24, 25]},
        }
    )
    assert not raw.univariate
    prepared = prepare(raw, sensor_names=["temperature", "pressure"])
    assert prepared.sensor_names == ["temperature", "pressure"]
    assert prepared.values.dtype == np.float32 and prepared.values.shape == (6, 2)
    np.testing.assert_array_equal(prepared.values[:, 0], [20, 21, 22, 23, 24, 25])
    np.testing.assert_array_equal(prepared.values[:, 1], [10, 11, 12, 13, 14, 15])


def test_sensor_names_must_match_the_model() -> None:
    raw = parse_json_series({"timestamps": [T0 + 300 * i for i in range(6)], "series": {"temp": [1] * 6}})
    error = api_error(prepare, raw, sensor_names=["temperature", "pressure"])
    assert (error.status, error.code) == (422, "sensor_mismatch")
    assert "['temperature', 'pressure']" in error.message and "['temp']" in error.message
    # a univariate input fits any single-sensor model, whatever that sensor is called
    univariate = series(T0 + 300 * np.arange(6), np.arange(6))
    assert prepare(univariate, sensor_names=["machine_temperature"]).values.shape == (6, 1)


def test_nan_is_a_gap_and_infinity_is_refused() -> None:
    raw = parse_json_series(
        {"timestamps": [T0, T0 + 300, T0 + 600, T0 + 900, T0 + 1200], "values": [1.0, float("nan"), "NaN", None, 5.0]}
    )
    np.testing.assert_array_equal(np.isnan(raw.values["value"]), [False, True, True, True, False])
    prepared = prepare(raw)
    np.testing.assert_allclose(prepared.values[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(prepared.filled, [False, True, True, True, False])
    for infinity in (float("inf"), float("-inf"), "Infinity", "-Infinity", 1e400):
        error = api_error(parse_json_series, {"timestamps": [T0, T0 + 300], "values": [1, infinity]})
        assert (error.status, error.code) == (422, "invalid_value")
        assert "values[1]" in error.message


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ([1, 2, 3], 400, "JSON object"),
        ("timestamps", 400, "JSON object"),
        ({"values": [1]}, 400, "'timestamps'"),
        ({"timestamps": [T0]}, 400, "exactly one of"),
        ({"timestamps": [T0], "values": [1], "series": {"a": [1]}}, 400, "exactly one of"),
        ({"timestamps": "2024-03-01", "values": [1]}, 400, "timestamps: expected a list"),
        ({"timestamps": [T0], "values": {"a": 1}}, 400, "values: expected a list"),
        ({"timestamps": [T0, T0 + 300], "values": [1]}, 422, "values has 1 entries but timestamps has 2"),
        ({"timestamps": [T0, T0 + 300], "values": [1, True]}, 400, "values[1]"),
        ({"timestamps": [T0, T0 + 300], "values": [1, "2"]}, 400, "values[1]"),
        ({"timestamps": [T0, T0 + 300], "values": [1, [2]]}, 400, "values[1]"),
        ({"timestamps": [T0, T0 + 300], "values": [1, {"v": 2}]}, 400, "values[1]"),
        ({"timestamps": [T0, True], "values": [1, 2]}, 400, "timestamps[1]"),
        ({"timestamps": [T0, None], "values": [1, 2]}, 400, "timestamps[1]"),
        ({"timestamps": [T0, "yesterday"], "values": [1, 2]}, 422, "timestamps[1]"),
        ({"timestamps": [T0, "2024-02-30T00:00:00"], "values": [1, 2]}, 422, "timestamps[1]"),
        ({"timestamps": [T0, float("nan")], "values": [1, 2]}, 422, "timestamps[1]"),
        ({"timestamps": [T0, 1e20], "values": [1, 2]}, 422, "timestamps[1]"),
        ({"timestamps": [T0], "series": {}}, 400, "'series'"),
        ({"timestamps": [T0], "series": [[1]]}, 400, "'series'"),
        ({"timestamps": [T0, T0 + 1], "series": {"a": [1, 2], "b": [1, "x"]}}, 400, "series.b[1]"),
        ({"timestamps": [T0, T0 + 1], "series": {"a": [1, 2], "b": [1]}}, 422, "series.b has 1 entries"),
    ],
)
def test_bad_json_names_the_field_and_index(payload: object, status: int, fragment: str) -> None:
    error = api_error(parse_json_series, payload)
    assert error.status == status
    assert fragment in error.message


def test_json_point_limit_is_checked_before_parsing() -> None:
    error = api_error(parse_json_series, {"timestamps": ["junk"] * 11, "values": [0] * 11}, max_points=10)
    assert (error.status, error.code) == (413, "series_too_long")


# ---------------------------------------------------------------- CSV


def test_csv_univariate_and_multivariate() -> None:
    raw = parse_csv_series(
        "\ufefftimestamp,value\r\n2024-03-01 00:00:00,1.5\n2024-03-01 00:05:00,\n"
        "2024-03-01 00:10:00,nan\n\n2024-03-01 00:15:00,-2e1\n"
    )
    assert raw.univariate
    np.testing.assert_array_equal(raw.timestamps, T0 + 300 * np.arange(4))
    np.testing.assert_array_equal(raw.values["value"], [1.5, np.nan, np.nan, -20.0])
    multi = parse_csv_series(f"timestamp,a,b\n{T0},1,2\n{T0 + 300},3,4\n")
    assert not multi.univariate and list(multi.values) == ["a", "b"]
    np.testing.assert_array_equal(multi.values["b"], [2, 4])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("2024-03-01 00:00:00,1\n2024-03-01 00:05:00,2\n", "line 1"),
        ("time,value\n", "header"),
        ("timestamp\n2024-03-01,1\n", "header"),
        ("timestamp,a,a\n", "unique"),
        ("timestamp,value\n2024-03-01 00:00:00,1\nnot a time,2\n", "line 3"),
        ("timestamp,value\n2024-03-01 00:00:00,1\n\n2024-03-01 00:10:00,abc\n", "line 4"),
        ("timestamp,value\n2024-03-01 00:00:00,1\n2024-03-01 00:05:00,inf\n", "line 3"),
        ("timestamp,value\n2024-03-01 00:00:00,1,7\n", "line 2: expected 2 fields, got 3"),
        ('timestamp,value\n2024-03-01 00:00:00,"1\n', "line"),
    ],
)
def test_bad_csv_names_the_line(text: str, fragment: str) -> None:
    error = api_error(parse_csv_series, text)
    assert error.status == 422
    assert fragment in error.message


def test_csv_point_limit() -> None:
    text = "timestamp,value\n" + "".join(f"{T0 + 300 * i},1\n" for i in range(11))
    assert api_error(parse_csv_series, text, max_points=10).status == 413
    assert parse_csv_series(text, max_points=11).timestamps.size == 11


# ---------------------------------------------------------------- the grid


def test_unsorted_input_is_sorted_and_mapped_back() -> None:
    order = np.random.default_rng(5).permutation(20)
    times = T0 + 300 * order
    raw = series(times, order * 10.0)
    prepared = prepare(raw)
    np.testing.assert_array_equal(prepared.grid_timestamps, T0 + 300 * np.arange(20))
    np.testing.assert_array_equal(prepared.values[:, 0], np.arange(20) * 10.0)
    np.testing.assert_array_equal(prepared.input_to_grid, order)  # one entry per input point, in input order
    assert not prepared.filled.any()


def test_duplicate_timestamps_are_averaged_by_default_other_policies_on_request() -> None:
    times = T0 + 300 * np.array([0, 1, 1, 2, 3, 4, 4, 4, 5])
    values = np.array([0, 10, 20, 2, 3, 1, 5, 9, 5.0])
    raw = series(times, values)
    mean = prepare(raw)
    np.testing.assert_array_equal(mean.values[:, 0], [0, 15, 2, 3, 5, 5])
    np.testing.assert_array_equal(mean.input_to_grid, [0, 1, 1, 2, 3, 4, 4, 4, 5])
    np.testing.assert_array_equal(prepare(raw, duplicate_policy="first").values[:, 0], [0, 10, 2, 3, 1, 5])
    np.testing.assert_array_equal(prepare(raw, duplicate_policy="last").values[:, 0], [0, 20, 2, 3, 9, 5])
    error = api_error(prepare, raw, duplicate_policy="reject")
    assert (error.status, error.code) == (422, "duplicate_timestamps")
    assert "3 duplicated timestamps, the first at 2024-03-01T00:05:00Z" in error.message


def test_one_minute_input_is_averaged_onto_the_five_minute_grid() -> None:
    minutes = np.arange(60)
    prepared = prepare(series(T0 + 60 * minutes, minutes * 1.0))
    # each minute goes to the nearest 5-minute point: minutes 3..7 -> 00:05, and so on
    np.testing.assert_array_equal(prepared.grid_timestamps, T0 + 300 * np.arange(13))
    expected = [1.0] + [5.0 * k for k in range(1, 12)] + [58.5]  # 0..2 | 5k-2..5k+2 | 58..59
    np.testing.assert_allclose(prepared.values[:, 0], expected)
    np.testing.assert_array_equal(prepared.input_to_grid, np.floor(minutes / 5 + 0.5).astype(int))


def test_jittered_timestamps_land_on_their_nearest_grid_point() -> None:
    jitter = np.array([0, 40, -55, 12, -100, 90, 3, -30])
    prepared = prepare(series(T0 + 300 * np.arange(8) + jitter, np.arange(8) * 2.0))
    np.testing.assert_array_equal(prepared.input_to_grid, np.arange(8))
    np.testing.assert_array_equal(prepared.values[:, 0], np.arange(8) * 2.0)


def test_coarser_input_is_interpolated_onto_the_grid() -> None:
    prepared = prepare(series(T0 + 900 * np.arange(5), [0, 3, 6, 3, 0]))  # every 15 min
    np.testing.assert_allclose(prepared.values[:, 0], [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(prepared.input_to_grid, [0, 3, 6, 9, 12])
    assert prepared.filled.sum() == 8


def test_short_gap_is_filled_long_gap_splits_the_series_without_materialising_it() -> None:
    steps = np.concatenate([np.arange(10), np.arange(13, 30)])  # 3 missing grid points
    prepared = prepare(series(T0 + 300 * steps, steps * 1.0), max_gap_steps=3)
    np.testing.assert_allclose(prepared.values[:, 0], np.arange(30))
    np.testing.assert_array_equal(np.flatnonzero(prepared.filled), [10, 11, 12])
    assert prepared.parts == [(0, 30)] and prepared.gaps == []

    split = prepare(series(T0 + 300 * steps, steps * 1.0), max_gap_steps=2)
    assert split.parts == [(0, 10), (10, 27)] and not split.filled.any()
    np.testing.assert_array_equal(split.values[:, 0], steps)
    np.testing.assert_array_equal(split.grid_timestamps, T0 + 300 * steps)
    (gap,) = split.gaps
    assert (gap.after, gap.before, gap.missing_steps) == (T0 + 2700, T0 + 3900, 3)
    # a year-long outage costs two parts, not 100,000 grid points
    year = prepare(
        series(np.concatenate([T0 + 300 * np.arange(10), T0 + 3.2e7 + 300 * np.arange(10)]), np.arange(20.0)),
        max_points=100,
    )
    assert year.parts == [(0, 10), (10, 20)] and year.gaps[0].missing_steps == 106_657


def test_missing_values_at_the_ends_hold_the_nearest_value() -> None:
    values = [np.nan, np.nan, 4, 5, 6, 7, np.nan]
    prepared = prepare(series(T0 + 300 * np.arange(7), values))
    np.testing.assert_array_equal(prepared.values[:, 0], [4, 4, 4, 5, 6, 7, 7])
    np.testing.assert_array_equal(prepared.filled, [True, True, False, False, False, False, True])
    error = api_error(prepare, series(T0 + 300 * np.arange(7), [np.nan] * 7))
    assert error.code == "gap_too_long" and "no values" in error.message


def test_gap_in_one_sensor_of_several() -> None:
    raw = RawSeries(
        T0 + 300 * np.arange(8), {"a": np.arange(8.0), "b": np.array([0, 1, np.nan, np.nan, 4, 5, 6, 7.0])}, False
    )
    prepared = prepare(raw, sensor_names=["a", "b"])
    np.testing.assert_array_equal(prepared.values[:, 1], np.arange(8))
    np.testing.assert_array_equal(np.flatnonzero(prepared.filled), [2, 3])
    # b misses 2 > 1 points: they are left out
    split = prepare(raw, sensor_names=["a", "b"], max_gap_steps=1, history_length=3)
    assert split.parts == [(0, 2), (2, 6)] and not split.filled.any()
    np.testing.assert_array_equal(split.input_to_grid, [0, 1, -1, -1, 2, 3, 4, 5])
    np.testing.assert_array_equal(split.values[:, 1], [0, 1, 4, 5, 6, 7])


def test_too_short_states_the_minimum() -> None:
    error = api_error(prepare, series(T0 + 300 * np.arange(50), np.ones(50)), history_length=50)
    assert (error.status, error.code) == (422, "series_too_short")
    assert "at least 51" in error.message and "longest gap-free run has 50 points" in error.message
    assert prepare(series(T0 + 300 * np.arange(51), np.ones(51)), history_length=50).values.shape == (51, 1)


def test_readings_coarser_than_the_model_bridges_are_refused_with_the_way_out() -> None:
    """Hourly readings on a 5-minute grid leave 11 missing steps between two readings: bridged when the grid fills
    holes of up to 12 steps, all outages when it fills up to 10, and then the refusal says why."""
    hourly = series(T0 + 3600 * np.arange(200), np.arange(200.0))
    assert prepare(hourly, max_gap_steps=12).values.shape == (2389, 1)
    assert prepare(hourly, max_gap_steps=11).values.shape == (2389, 1)
    error = api_error(prepare, hourly, max_gap_steps=10)
    assert (error.status, error.code) == (422, "series_too_short")
    assert "between 199 gaps" in error.message
    assert "a median 3600 s apart, which leaves 11 steps" in error.message and "the 10 the grid" in error.message
    assert "One model per asset" in error.message
    # a series that is merely short, at the model's own interval, gets no such hint
    assert "apart" not in api_error(prepare, series(T0 + 300 * np.arange(3), np.ones(3))).message


def test_too_long_is_413() -> None:
    raw = series(T0 + 300 * np.arange(101), np.ones(101))
    assert api_error(prepare, raw, max_points=100).status == 413
    # filled points count: 10 readings every 15 minutes fill 28 points on the 5-minute grid
    error = api_error(prepare, series(T0 + 900 * np.arange(10), np.ones(10)), max_points=20)
    assert (error.status, error.code) == (413, "series_too_long") and "fills 28 points" in error.message


def test_iso_time_with_an_offset_beyond_year_9999_is_refused() -> None:
    payload = {"timestamps": ["9999-12-31T23:59:59-23:59", "2024-01-01T00:05:00Z"], "values": [1, 2]}
    error = api_error(parse_json_series, payload)
    assert (error.status, error.code) == (422, "invalid_timestamp") and "timestamps[0]" in error.message


def test_many_sensors_are_bounded_before_their_values_are_parsed() -> None:
    """100 points are allowed, but not 100 points x 5 sensors: 500 values > 4 x 100."""
    stamps = [T0 + 300 * i for i in range(100)]
    payload = {"timestamps": stamps, "series": {f"s{k}": [1.0] * 100 for k in range(5)}}
    error = api_error(parse_json_series, payload, max_points=100)
    assert (error.status, error.code) == (413, "series_too_large") and "limit is 400 values" in error.message
    four = {"timestamps": stamps, "series": {f"s{k}": [1.0] * 100 for k in range(4)}}
    assert len(parse_json_series(four, max_points=100).values) == 4
    csv_text = "timestamp," + ",".join(f"s{k}" for k in range(5)) + "\n" + "".join(f"{t},1,1,1,1,1\n" for t in stamps)
    assert api_error(parse_csv_series, csv_text, max_points=100).code == "series_too_large"


def test_values_beyond_float32_and_empty_series_are_refused_while_parsing() -> None:
    error = api_error(
        parse_json_series, {"timestamps": [T0 + 300 * i for i in range(6)], "values": [1, 2, 1e39, 4, 5, 6]}
    )
    assert (error.status, error.code) == (422, "invalid_value") and "point 2" in error.message
    assert api_error(parse_csv_series, f"timestamp,value\n{T0},-1e39\n").status == 422
    assert api_error(prepare, series(T0 + 300 * np.arange(6), [1, 2, 1e39, 4, 5, 6])).status == 422
    for empty in (
        lambda: parse_json_series({"timestamps": [], "values": []}),
        lambda: parse_csv_series("timestamp,value\n"),
        lambda: prepare(series([], [])),
    ):
        error = api_error(empty)
        assert (error.status, error.code) == (422, "series_too_short")


def test_nab_machine_temperature_with_its_duplicates(nab_dir: Path) -> None:
    raw = parse_csv_series((nab_dir / MACHINE_TEMPERATURE).read_text())
    assert raw.timestamps.size == 22_695 and raw.univariate
    prepared = prepare(raw, history_length=100)
    assert prepared.values.shape == (22_683, 1)  # 12 timestamps appear twice
    assert not prepared.filled.any()
    first = datetime(2014, 1, 7, 2, 0, tzinfo=UTC).timestamp()
    twice = np.flatnonzero(raw.timestamps == first)
    assert twice.size == 2 and prepared.input_to_grid[twice[0]] == prepared.input_to_grid[twice[1]]
    point = prepared.input_to_grid[twice[0]]
    assert prepared.grid_timestamps[point] == first
    assert prepared.values[point, 0] == np.float32((94.42340604 + 94.13972336) / 2)
    # input order is kept: the second copy of 02:00 comes after 02:55 in the file
    assert np.all(np.diff(prepared.input_to_grid[: twice[1]]) == 1)


def test_every_nab_file_parses_and_prepares(nab_dir: Path) -> None:
    files = sorted(nab_dir.rglob("*.csv"))
    assert len(files) >= 6
    for path in files:
        raw = parse_csv_series(path.read_text())
        prepared = prepare(raw, history_length=288)
        assert prepared.input_to_grid.size == raw.timestamps.size
        assert np.isfinite(prepared.values).all()
        np.testing.assert_array_equal(prepared.grid_timestamps[prepared.input_to_grid], raw.timestamps)


# ---------------------------------------------------------------- chunks


def kept_positions(chunks: list[Chunk]) -> np.ndarray:
    return np.concatenate([np.arange(c.start + c.keep_from, c.stop) for c in chunks])


def test_week_of_minutes_is_covered_exactly_once() -> None:
    chunks = make_chunks(10_080, history_length=288, chunk_size=2048)
    assert {c.length for c in chunks[:-1]} == {2048} and chunks[-1].length <= 2048
    np.testing.assert_array_equal(kept_positions(chunks), np.arange(288, 10_080))
    assert all(c.keep_from == 288 for c in chunks)
    assert chunks[0] == Chunk(0, 2048, 288) and chunks[-1].stop == 10_080
    # the model sees each chunk's positions; output[i, j] = the grid position it belongs to
    outputs = np.stack([np.arange(c.start, c.start + 2048, dtype=np.float32) for c in chunks])[..., None]
    stitched = stitch(chunks, outputs, 10_080)
    assert stitched.shape == (10_080, 1) and stitched.dtype == np.float32
    assert np.isnan(stitched[:288]).all()
    np.testing.assert_array_equal(stitched[288:, 0], np.arange(288, 10_080))


def test_chunks_cover_every_scorable_position_once_for_all_small_shapes() -> None:
    for history in range(0, 7):
        for chunk_size in range(history + 1, history + 9):
            for n_points in range(history + 1, 40):
                chunks = make_chunks(n_points, history, chunk_size)
                np.testing.assert_array_equal(kept_positions(chunks), np.arange(history, n_points))
                assert all(c.length == chunk_size for c in chunks[:-1])
                assert all(c.keep_from == history and 0 <= c.start < c.stop <= n_points for c in chunks)
                # aligned: a chunk's start depends on its index only, never on the series' length
                assert [c.start for c in chunks] == [k * (chunk_size - history) for k in range(len(chunks))]
                # consecutive chunks overlap by at least history_length
                assert all(b.start <= a.stop - history for a, b in itertools.pairwise(chunks))


def test_short_series_is_one_chunk_and_bad_arguments_raise() -> None:
    assert make_chunks(300, 288, 2048) == [Chunk(0, 300, 288)]
    with pytest.raises(ValueError):
        make_chunks(288, 288, 2048)
    with pytest.raises(ValueError):
        make_chunks(5000, 288, 288)
    with pytest.raises(ValueError):
        stitch(make_chunks(5000, 288, 2048), np.zeros((2, 2048)), 5000)


# ---------------------------------------------------------------- timestamps


def test_timestamps_format_as_utc_iso8601() -> None:
    assert format_timestamps(np.array([T0, T0 + 300])) == ["2024-03-01T00:00:00Z", "2024-03-01T00:05:00Z"]
    assert format_timestamps(np.array([T0 + 0.25])) == ["2024-03-01T00:00:00.250Z"]
    assert (
        parse_json_series({"timestamps": format_timestamps(np.array([T0 + 0.25])), "values": [1]}).timestamps[0]
        == T0 + 0.25
    )
    year_one = parse_json_series({"timestamps": ["0001-01-01T00:00:00Z"], "values": [1]})
    assert math.isclose(year_one.timestamps[0], datetime(1, 1, 1, tzinfo=UTC).timestamp())


def test_alarms_land_on_readings_filled_starts_move_on_and_duplicates_carry_one() -> None:
    """Readings -> grid points [0, 1, 1, 3, -1, 4]: point 2 is filled, point 1 holds two readings."""
    reading_to_point = np.array([0, 1, 1, 3, -1, 4])
    assert alarm_readings(reading_to_point, np.array([], dtype=np.int64)).tolist() == [False] * 6
    assert alarm_readings(reading_to_point, np.array([1])).tolist() == [False, True, False, False, False, False]
    assert alarm_readings(reading_to_point, np.array([2])).tolist() == [False, False, False, True, False, False]
    assert alarm_readings(reading_to_point, np.array([0, 4])).tolist() == [True, False, False, False, False, True]
    unsorted = np.array([3, -1, 0, 1])  # readings posted out of order keep their own positions
    assert alarm_readings(unsorted, np.array([2])).tolist() == [True, False, False, False]
