"""Which models to serve, from TF Serving's flags and config files.

Base paths: a config written for the container (`base_path: "/models/mnist"`) is served locally with
`--models_dir DIR`, which maps every base path under `/models/` to the same path under DIR. A relative
base path is resolved against the config file's folder (or the working directory for --model_base_path).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from google.protobuf import message, text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.protos import tfs_config_pb2

CONTAINER_MODELS_ROOT = PurePosixPath("/models")


class ConfigError(ValueError):
    """A config file, flag combination or port the server cannot start with."""


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: `latest` N (the default, N=1), `specific` versions, or `all`."""

    latest: int | None = 1
    specific: frozenset[int] = frozenset()

    def select(self, on_disk: Iterable[int]) -> set[int]:
        """The versions to serve among those on disk."""
        versions = sorted(on_disk)
        if self.specific:
            return self.specific.intersection(versions)
        if self.latest is None:
            return set(versions)
        return set(versions[-self.latest :]) if self.latest > 0 else set()


@dataclass(frozen=True)
class ModelSettings:
    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def resolve_base_path(base_path: str, relative_to: Path, models_dir: Path | None) -> Path:
    """Where a configured base path lives on this machine (see the module docstring)."""
    posix = PurePosixPath(base_path)
    if models_dir is not None and posix.is_relative_to(CONTAINER_MODELS_ROOT):
        return models_dir / posix.relative_to(CONTAINER_MODELS_ROOT)
    path = Path(base_path)
    return path if path.is_absolute() else relative_to / path


def read_text_proto(path: Path, proto: message.Message) -> message.Message:
    """Parse a text-format config file, naming the file in any error."""
    try:
        return text_format.Parse(path.read_text(), proto)
    except (OSError, text_format.ParseError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error


def _policy(config: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    policy = config.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "specific":
        return VersionPolicy(latest=None, specific=frozenset(policy.specific.versions))
    if choice == "all":
        return VersionPolicy(latest=None)
    if choice == "latest":
        return VersionPolicy(latest=policy.latest.num_versions or 1)
    return VersionPolicy()


def models_from_config_file(path: Path, models_dir: Path | None) -> list[ModelSettings]:
    config = read_text_proto(path, model_server_config_pb2.ModelServerConfig())
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{path}: only model_config_list is supported")
    models = []
    for entry in config.model_config_list.config:
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{path}: model {entry.name!r} has platform {entry.model_platform!r}")
        models.append(
            ModelSettings(
                name=entry.name,
                base_path=resolve_base_path(entry.base_path, path.resolve().parent, models_dir),
                policy=_policy(entry),
                labels=dict(entry.version_labels),
            )
        )
    names = [model.name for model in models]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"{path}: model names must be present and unique, got {names}")
    return models


def load_model_settings(
    model_config_file: str, model_name: str, model_base_path: str, models_dir: str
) -> list[ModelSettings]:
    """The models to serve: from --model_config_file, or the single --model_name/--model_base_path."""
    local_root = Path(models_dir).resolve() if models_dir else None
    if model_config_file:
        if model_base_path:
            raise ConfigError("use either --model_config_file or --model_base_path, not both")
        return models_from_config_file(Path(model_config_file), local_root)
    if not model_base_path:
        raise ConfigError("give --model_config_file, or --model_base_path (with --model_name)")
    return [ModelSettings(model_name, resolve_base_path(model_base_path, Path.cwd(), local_root))]


def read_batching_parameters(path: str) -> tfs_config_pb2.BatchingParameters:
    return (
        read_text_proto(Path(path), tfs_config_pb2.BatchingParameters())
        if path
        else (tfs_config_pb2.BatchingParameters())
    )


def prometheus_path(monitoring_config_file: str) -> str | None:
    """The metrics path when the monitoring config enables Prometheus, else None (TF Serving's rule)."""
    if not monitoring_config_file:
        return None
    config = read_text_proto(Path(monitoring_config_file), tfs_config_pb2.MonitoringConfig())
    if not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or "/monitoring/prometheus/metrics"
