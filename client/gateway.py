"""`GatewayClient`: the Python API of the digits-and-sensors gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import requests

from client.errors import GatewayError
from client.images import ImageInput, as_image_list, to_instance
from client.results import DigitPrediction, ModelInfo, ModelRef, Readiness, SeriesScore
from client.series import SeriesInput, Values, series_body
from client.streams import LiveStream, open_stream
from client.transport import Transport

MAX_BATCH = 64


class GatewayClient:
    """Client of one gateway, e.g. `GatewayClient("http://localhost:8080")`.

    Reuses one HTTP session (pass your own `session` to share it or set proxies/auth); retries `retries`
    times, with exponential `backoff`, on connection errors and 503. Use as a context manager to close
    the session. `api_key` is sent as `Authorization: Bearer` when the gateway requires keys.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        session: requests.Session | None = None,
        api_key: str | None = None,
    ) -> None:
        self._http = Transport(base_url, timeout=timeout, retries=retries, backoff=backoff, session=session)
        if api_key:
            self._http.session.headers["Authorization"] = f"Bearer {api_key}"

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def predict_digits(
        self,
        images: ImageInput | Iterable[ImageInput],
        batch_size: int = MAX_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> list[DigitPrediction]:
        """Classify one image or many; one prediction per image, in input order.

        Many images go in requests of at most `batch_size` (<= 64); `progress(n)` is called after each
        request with the number of images it classified.
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        items = as_image_list(images)
        predictions: list[DigitPrediction] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            answer = self._http.request(
                "POST", "/v1/digits:predict", json={"instances": [to_instance(i) for i in chunk]}
            ).json()
            model = ModelRef.from_json(answer.get("model"))
            predictions.extend(DigitPrediction.from_json(p, model) for p in answer["predictions"])
            if progress is not None:
                progress(len(chunk))
        return predictions

    def predict_digit(self, image: ImageInput) -> DigitPrediction:
        """Classify exactly one image."""
        return self.predict_digits([image])[0]

    def score_series(
        self,
        data: SeriesInput,
        values: Values | None = None,
        *,
        threshold: float | None = None,
        sensitivity: float | None = None,
        model: str | None = None,
    ) -> SeriesScore:
        """Score a series for anomalies.

        `data` is a CSV path, a DataFrame (DatetimeIndex or `timestamp` column; one column per sensor),
        a Series with a DatetimeIndex, or the timestamps, with `values` a sequence (one sensor) or a
        mapping sensor -> sequence. `model` names the asset's model (default: the gateway's `anomaly`).
        `sensitivity` (0..1, default 0.65; each step of 0.2 is ten times more alarms) or an explicit
        `threshold` on the score (0..1) sets what is flagged (docs/anomaly.md).
        """
        body = series_body(data, values)
        options = (("threshold", threshold), ("sensitivity", sensitivity), ("model", model))
        params = {k: v for k, v in options if v is not None}
        if body.json is not None:
            response = self._http.request("POST", "/v1/anomaly:score", json={**body.json, **params})
        else:
            response = self._http.request(
                "POST",
                "/v1/anomaly:score",
                data=body.data,
                params=params,
                headers={"Content-Type": body.content_type or "text/csv"},
            )
        return SeriesScore.from_json(response.json())

    def open_stream(
        self,
        stream_id: str,
        *,
        model: str | None = None,
        sensitivity: float | None = None,
        threshold: float | None = None,
        resume: bool = False,
    ) -> LiveStream:
        """A stream with server-side state (docs/streams.md): `.append(timestamps, values)` scores new readings.

        Starts the stream afresh on the model's current version, or with `resume=True` continues the existing
        one from its end (the options then come from when it was created).
        """
        options = {
            k: v for k, v in (("model", model), ("sensitivity", sensitivity), ("threshold", threshold)) if v is not None
        }
        return open_stream(self._http, stream_id, resume=resume, options=options)

    def health(self) -> dict[str, Any]:
        """The liveness answer (`{"status": "ok"}`); raises when the gateway is down."""
        return self._http.request("GET", "/healthz").json()

    def ready(self) -> Readiness:
        """Whether the gateway can serve predictions now (truthy), and if not why; no retry on 503."""
        try:
            self._http.request("GET", "/readyz", retry_503=False)
        except GatewayError as exc:
            if exc.status == 503:
                return Readiness(ready=False, message=exc.message)
            raise
        return Readiness(ready=True)

    def models(self) -> list[ModelInfo]:
        """The models the gateway serves, with their versions and states."""
        return ModelInfo.list_from_json(self._http.request("GET", "/v1/models").json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
