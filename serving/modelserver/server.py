"""The model server: version manager, gRPC and REST front ends, started and stopped together."""

from __future__ import annotations

import argparse
import logging

from serving.modelserver.batching import Batcher
from serving.modelserver.config import load_model_settings, prometheus_path, read_batching_parameters
from serving.modelserver.core import PredictionCore
from serving.modelserver.grpc_service import build_grpc_server
from serving.modelserver.manager import ModelManager
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.rest import RestServer

log = logging.getLogger(__name__)


class ModelServer:
    def __init__(
        self,
        manager: ModelManager,
        core: PredictionCore,
        grpc_port: int,
        rest_port: int,
        metrics_path: str | None,
        poll_seconds: float,
        grpc_threads: int,
    ) -> None:
        self.manager = manager
        self.poll_seconds = poll_seconds
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self._grpc = build_grpc_server(core, grpc_port, grpc_threads)
        self._rest = RestServer(core, rest_port, metrics_path) if rest_port else None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelServer:
        models = load_model_settings(
            args.model_config_file, args.model_name, args.model_base_path, args.models_dir
        )
        metrics = ServingMetrics()
        manager = ModelManager(
            models, metrics, warm_up=args.enable_model_warmup, max_load_retries=args.max_num_load_retries,
            retry_interval=args.load_retry_interval_micros / 1e6,
        )
        batcher = None
        if args.enable_batching:
            batcher = Batcher(read_batching_parameters(args.batching_parameters_file))
        core = PredictionCore(manager, metrics, batcher)
        for model in models:
            log.info("Serving model %s from %s (%s)", model.name, model.base_path, model.policy)
        return cls(
            manager, core, args.port, args.rest_api_port, prometheus_path(args.monitoring_config_file),
            args.file_system_poll_wait_seconds, args.grpc_max_threads,
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

    def stop(self) -> None:
        self.manager.stop()
        if self._rest is not None:
            self._rest.stop()
        self._grpc.stop(grace=2).wait()
