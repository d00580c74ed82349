"""Loads and unloads model versions as they appear on disk, and finds the version a request asks for.

Like TF Serving's file-system source: a version is a directory with an integer name under the model's
base path (anything else, e.g. `.export-*` temporary directories, is ignored); the version policy picks
which to serve; new versions are loaded before old ones are dropped, so the model stays available
through a rollout. Readers never lock: the per-model version table is replaced, not mutated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tensorflow_serving.apis import get_model_status_pb2

from serving.modelserver.config import ModelSettings
from serving.modelserver.errors import invalid_argument, not_found
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.servable import Servable

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class VersionState:
    state: int  # ModelVersionStatus.State
    error_code: str = "OK"  # status code name
    error_message: str = ""


@dataclass
class Model:
    settings: ModelSettings
    servables: dict[int, Servable]  # replaced as a whole on every change
    states: dict[int, VersionState]
    failed: set[int]
    reported_empty: bool = False


def versions_on_disk(base_path: Path) -> list[int]:
    """Integer-named version directories that hold a SavedModel."""
    if not base_path.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in base_path.iterdir()
        if entry.name.isdigit() and any((entry / name).is_file() for name in SAVED_MODEL_FILES)
    )


class ModelManager:
    def __init__(
        self,
        models: list[ModelSettings],
        metrics: ServingMetrics,
        warm_up: bool = True,
        load: Callable[[str, int, Path], Servable] = Servable,
    ) -> None:
        self._models = {settings.name: Model(settings, {}, {}, set()) for settings in models}
        self._metrics = metrics
        self._warm_up = warm_up
        self._load = load
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- polling -------------------------------------------------------------------------------------

    def poll(self) -> None:
        """One pass over every model: load wanted versions, then drop the ones no longer wanted."""
        with self._poll_lock:
            for model in self._models.values():
                self._sync(model)

    def reconfigure(self, models: list[ModelSettings]) -> None:
        """Serve exactly `models` from now on (a re-read models.config): new ones load, dropped ones unload."""
        with self._poll_lock:
            current = self._models
            self._models = {
                settings.name: (replace(current[settings.name], settings=settings) if settings.name in current
                                else Model(settings, {}, {}, set()))
                for settings in models
            }
        for name in sorted(current.keys() - self._models.keys()):
            log.info("Model %s left the config; its versions are unloaded", name)
        self.poll()

    def _sync(self, model: Model) -> None:
        settings = model.settings
        on_disk = versions_on_disk(settings.base_path)
        if not on_disk and not model.reported_empty:
            log.warning("No versions of servable %s found under %s", settings.name, settings.base_path)
        model.reported_empty = not on_disk
        wanted = settings.policy.select(on_disk)
        for version in sorted(wanted - model.servables.keys() - model.failed):
            self._load_version(model, version)
        if not wanted & model.servables.keys():
            return  # never unload the last good version because a newer one failed to load
        for version in sorted(model.servables.keys() - wanted):
            model.servables = {v: s for v, s in model.servables.items() if v != version}
            model.states = {**model.states, version: VersionState(State.END)}
            log.info("Unloaded servable version {name: %s version: %d}", settings.name, version)

    def _load_version(self, model: Model, version: int) -> None:
        name, path = model.settings.name, model.settings.base_path / str(version)
        model.states = {**model.states, version: VersionState(State.LOADING)}
        started = time.perf_counter()
        try:
            servable = self._load(name, version, path)
            if self._warm_up:
                records = servable.warm_up()
                log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d",
                         path, records)
        except Exception as error:  # any failure leaves the version unavailable, as in TF Serving
            log.exception("Loading servable {name: %s version: %d} failed", name, version)
            model.failed.add(version)
            model.states = {**model.states, version: VersionState(State.END, "UNKNOWN", str(error))}
            self._metrics.load_attempt_count.inc(str(path), "fail")
            return
        self._metrics.load_attempt_count.inc(str(path), "success")
        self._metrics.load_latency.inc(str(path), amount=int((time.perf_counter() - started) * 1e6))
        model.servables = {**model.servables, version: servable}
        model.states = {**model.states, version: VersionState(State.AVAILABLE)}
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def start_polling(self, interval_seconds: float) -> None:
        """Poll in a daemon thread every interval (TF Serving's --file_system_poll_wait_seconds)."""
        if interval_seconds <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.poll()
                except Exception:  # keep polling whatever one pass hit (e.g. a vanished directory)
                    log.exception("Polling the model directories failed")

        self._thread = threading.Thread(target=loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    # -- lookups -------------------------------------------------------------------------------------

    def _model(self, name: str, missing: str) -> Model:
        model = self._models.get(name)
        if model is None:
            raise not_found(missing)
        return model

    def label_version(self, model: Model, label: str) -> int:
        try:
            return model.settings.labels[label]
        except KeyError:
            raise invalid_argument(f"Unrecognized servable version label: {label}") from None

    def servable(self, name: str, version: int | None = None, label: str = "") -> Servable:
        """The loaded version a request names: a number, a label, or (neither) the latest."""
        wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        model = self._model(name, f"Servable not found for request: {wanted}")
        if label:
            version = self.label_version(model, label)
        servables = model.servables
        if version is None:
            if not servables:
                raise not_found(f"Servable not found for request: Latest({name})")
            return servables[max(servables)]
        servable = servables.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return servable

    def status(
        self, name: str, version: int | None = None, label: str = ""
    ) -> list[tuple[int, VersionState]]:
        """Version states as GetModelStatus reports them (all known versions, or the one asked for)."""
        model = self._model(name, f"Could not find any versions of model {name}")
        if label:
            version = self.label_version(model, label)
        states = model.states
        if version is None:
            if not states:
                raise not_found(f"Could not find any versions of model {name}")
            return sorted(states.items(), reverse=True)
        if version not in states:
            raise not_found(f"Could not find version {version} of model {name}")
        return [(version, states[version])]
