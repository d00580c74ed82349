"""The model server: version manager, gRPC and REST front ends, started and stopped together."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable

from serving.modelserver.batch_scheduler import Batcher
from serving.modelserver.config import (
    ConfigError,
    ModelSettings,
    load_model_settings,
    prometheus_path,
    read_batching_parameters,
)
from serving.modelserver.grpc_service import build_grpc_server
from serving.modelserver.inference import Inference
from serving.modelserver.manager import ModelManager
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.rest import RestServer

log = logging.getLogger(__name__)


class ConfigWatch:
    """Re-reads models.config every interval (TF Serving's --model_config_file_poll_wait_seconds).

    A changed list of models is applied to the manager; a file that does not parse is logged and the
    models served so far stay as they are.
    """

    def __init__(self, read: Callable[[], list[ModelSettings]], manager: ModelManager, seconds: float) -> None:
        self.read = read
        self.manager = manager
        self.seconds = seconds
        self._last = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                models = self.read()
            except ConfigError as error:
                log.error("Keeping the current models: %s", error)
                continue
            if models != self._last:
                log.info("Model config changed: now serving %s", ", ".join(m.name for m in models))
                self.manager.reconfigure(models)
                self._last = models


class ModelServer:
    def __init__(
        self,
        manager: ModelManager,
        inference: Inference,
        grpc_port: int,
        rest_port: int,
        metrics_path: str | None,
        poll_seconds: float,
        grpc_threads: int,
        config_watch: ConfigWatch | None = None,
    ) -> None:
        self.manager = manager
        self.poll_seconds = poll_seconds
        self.config_watch = config_watch
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self._grpc = build_grpc_server(inference, grpc_port, grpc_threads)
        self._rest = RestServer(inference, rest_port, metrics_path) if rest_port else None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelServer:
        models = load_model_settings(args.model_config_file, args.model_name, args.model_base_path, args.models_dir)
        metrics = ServingMetrics()
        manager = ModelManager(
            models,
            metrics,
            warm_up=args.enable_model_warmup,
            max_load_retries=args.max_num_load_retries,
            retry_interval=args.load_retry_interval_micros / 1e6,
        )
        batcher = None
        if args.enable_batching:
            batcher = Batcher(read_batching_parameters(args.batching_parameters_file))
        inference = Inference(manager, metrics, batcher)
        for model in models:
            log.info("Serving model %s from %s (%s)", model.name, model.base_path, model.policy)
        watch = None
        if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
            watch = ConfigWatch(
                lambda: load_model_settings(
                    args.model_config_file, args.model_name, args.model_base_path, args.models_dir
                ),
                manager,
                args.model_config_file_poll_wait_seconds,
            )
        return cls(
            manager,
            inference,
            args.port,
            args.rest_api_port,
            prometheus_path(args.monitoring_config_file),
            args.file_system_poll_wait_seconds,
            args.grpc_max_threads,
            watch,
        )

    def start(self) -> None:
        """Load the initial versions (like TF Serving, before answering), then open the ports."""
        self.manager.poll()
        self._grpc.start()
        log.info("Running gRPC ModelServer at 0.0.0.0:%d ...", self.grpc_port)
        if self._rest is not None:
            self._rest.start()
            log.info("Exporting HTTP/REST API at:localhost:%d ...", self.rest_port)
        self.manager.start_polling(self.poll_seconds)
        if self.config_watch is not None:
            self.config_watch.start()

    def stop(self) -> None:
        if self.config_watch is not None:
            self.config_watch.stop()
        self.manager.stop()
        if self._rest is not None:
            self._rest.stop()
        self._grpc.stop(grace=2).wait()
