"""Loads and unloads model versions as they appear on disk, and finds the version a request asks for.

Like TF Serving's file-system source (version directories: serving/modelserver/disk.py), the version policy
picks which versions to serve, and new versions are loaded before old ones are dropped, so the model stays
available through a rollout. Readers never lock: the per-model version table is replaced, not mutated.

Faults, handled as TF Serving does or more conservatively:
- a version that fails to load is retried up to `max_load_retries` times, `retry_interval` seconds apart
  (`--max_num_load_retries`, `--load_retry_interval_micros`), and at once when its files change;
- a failing version takes no slot of the policy: `latest 2` with v3 corrupt serves v2 and v1, and an intact
  v1 is loaded when every newer version is corrupt;
- a loaded version whose files vanish (its directory is still there) keeps serving from memory; its status
  says which files are gone (DATA_LOSS) until they are back. A version whose directory is removed is unloaded,
  except the last loaded one;
- an unreadable base path is logged once (not every poll) and shown in the model's status; nothing crashes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tensorflow_serving.apis import get_model_status_pb2

from serving.modelserver.config import ModelSettings
from serving.modelserver.disk import Fingerprint, fingerprint, missing_files, versions_on_disk
from serving.modelserver.errors import invalid_argument, not_found
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.servable import Servable

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State
# TF Serving's defaults: 5 retries, one minute apart.
DEFAULT_MAX_LOAD_RETRIES = 5
DEFAULT_RETRY_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class VersionState:
    state: int  # ModelVersionStatus.State
    error_code: str = "OK"  # status code name
    error_message: str = ""


@dataclass(frozen=True)
class FailedLoad:
    """A version that failed to load: how often, when it may be tried again, and its files at the last try."""

    attempts: int
    retry_at: float
    files: Fingerprint


@dataclass
class Model:
    settings: ModelSettings
    servables: dict[int, Servable] = field(default_factory=dict)  # replaced as a whole on every change
    states: dict[int, VersionState] = field(default_factory=dict)
    failed: dict[int, FailedLoad] = field(default_factory=dict)
    loaded_files: dict[int, Fingerprint] = field(default_factory=dict)
    disk_problem: str = ""  # why the base path shows nothing servable, as last logged


class ModelManager:
    def __init__(
        self,
        models: list[ModelSettings],
        metrics: ServingMetrics,
        warm_up: bool = True,
        load: Callable[[str, int, Path], Servable] = Servable,
        max_load_retries: int = DEFAULT_MAX_LOAD_RETRIES,
        retry_interval: float = DEFAULT_RETRY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = {settings.name: Model(settings) for settings in models}
        self._metrics = metrics
        self._warm_up = warm_up
        self._load = load
        self._max_load_retries = max_load_retries
        self._retry_interval = retry_interval
        self._clock = clock
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
                settings.name: (
                    replace(current[settings.name], settings=settings) if settings.name in current else Model(settings)
                )
                for settings in models
            }
        for name in sorted(current.keys() - self._models.keys()):
            log.info("Model %s left the config; its versions are unloaded", name)
        self.poll()

    def _sync(self, model: Model) -> None:
        base = model.settings.base_path
        try:
            on_disk = versions_on_disk(base)
        except OSError as error:
            self._disk_problem(model, f"cannot read the base path {base}: {error.strerror or error}")
            return
        self._disk_problem(model, "" if on_disk else f"no versions of servable {model.settings.name} under {base}")
        # Loaded versions whose directory is still there stay candidates even if their files went.
        present = set(on_disk) | {v for v in model.servables if (base / str(v)).is_dir()}
        now = self._clock()
        tried: set[int] = set()
        while True:  # load the newest wanted versions; a failure frees its slot for an older one
            wanted = model.settings.policy.select(v for v in present if not self._blocked(model, v, now, tried))
            to_load = sorted(wanted - model.servables.keys(), reverse=True)
            if not to_load:
                break
            for version in to_load:
                tried.add(version)
                self._load_version(model, version, now)
        self._report_files(model)
        if not wanted & model.servables.keys():
            return  # never unload the last good version because newer ones failed to load
        for version in sorted(model.servables.keys() - wanted):
            model.servables = {v: s for v, s in model.servables.items() if v != version}
            model.states = {**model.states, version: VersionState(State.END)}
            model.loaded_files.pop(version, None)
            log.info("Unloaded servable version {name: %s version: %d}", model.settings.name, version)

    def _blocked(self, model: Model, version: int, now: float, tried: set[int]) -> bool:
        """A failed version may be tried again once its retry is due, or at once when its files changed."""
        failed = model.failed.get(version)
        if failed is None:
            return False
        if version in tried:
            return True
        path = model.settings.base_path / str(version)
        if fingerprint(path) != failed.files:
            return False
        return failed.attempts > self._max_load_retries or now < failed.retry_at

    def _disk_problem(self, model: Model, problem: str) -> None:
        """Log a problem with the base path when it first appears (not on every poll), and when it clears."""
        if problem and problem != model.disk_problem:
            log.warning("%s", problem)
        model.disk_problem = problem

    def _load_version(self, model: Model, version: int, now: float) -> None:
        name, path = model.settings.name, model.settings.base_path / str(version)
        files = fingerprint(path)
        model.states = {**model.states, version: VersionState(State.LOADING)}
        started = time.perf_counter()
        try:
            servable = self._load(name, version, path)
            if self._warm_up:
                records = servable.warm_up()
                log.info(
                    "Finished reading warmup data for model at %s. Number of warmup records read: %d", path, records
                )
        except Exception as error:  # any failure leaves the version unavailable, as in TF Serving
            self._load_failed(model, version, files, now, error)
            return
        self._metrics.load_attempt_count.inc(str(path), "success")
        self._metrics.load_latency.inc(str(path), amount=int((time.perf_counter() - started) * 1e6))
        model.failed.pop(version, None)
        model.loaded_files[version] = files
        model.servables = {**model.servables, version: servable}
        model.states = {**model.states, version: VersionState(State.AVAILABLE)}
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _load_failed(self, model: Model, version: int, files: Fingerprint, now: float, error: Exception) -> None:
        previous = model.failed.get(version)
        attempts = previous.attempts + 1 if previous is not None and previous.files == files else 1
        retries_left = self._max_load_retries - attempts + 1
        log.error(
            "Loading servable {name: %s version: %d} failed (attempt %d, %d retries left): %s",
            model.settings.name,
            version,
            attempts,
            max(retries_left, 0),
            error,
        )
        model.failed[version] = FailedLoad(attempts, now + self._retry_interval, files)
        plan = (
            f"retry {attempts} of {self._max_load_retries} in {self._retry_interval:g}s"
            if retries_left > 0
            else "no retries left; changing its files starts over"
        )
        message = f"{error} ({plan})"
        model.states = {**model.states, version: VersionState(State.END, "UNKNOWN", message)}
        self._metrics.load_attempt_count.inc(str(model.settings.base_path / str(version)), "fail")

    def _report_files(self, model: Model) -> None:
        """Mark loaded versions whose files have gone (DATA_LOSS, still AVAILABLE), and clear the mark on return."""
        for version, files in model.loaded_files.items():
            gone = missing_files(model.settings.base_path / str(version), files)
            current = model.states.get(version)
            state = VersionState(State.AVAILABLE)
            if gone:
                state = VersionState(
                    State.AVAILABLE,
                    "DATA_LOSS",
                    f"files gone from disk since loading: {', '.join(gone)}; serving the copy in memory",
                )
            if state != current:
                (log.warning if gone else log.info)(
                    "Servable {name: %s version: %d}: %s",
                    model.settings.name,
                    version,
                    state.error_message or "files back on disk",
                )
                model.states = {**model.states, version: state}

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

    def status(self, name: str, version: int | None = None, label: str = "") -> list[tuple[int, VersionState]]:
        """Version states as GetModelStatus reports them (all known versions, or the one asked for)."""
        model = self._model(name, f"Could not find any versions of model {name}")
        if label:
            version = self.label_version(model, label)
        states = model.states
        if version is None:
            if not states:
                reason = f": {model.disk_problem}" if model.disk_problem else ""
                raise not_found(f"Could not find any versions of model {name}{reason}")
            return sorted(states.items(), reverse=True)
        if version not in states:
            raise not_found(f"Could not find version {version} of model {name}")
        return [(version, states[version])]
