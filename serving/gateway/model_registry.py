"""Which anomaly models exist: the names in TF Serving's models.config, re-read when the file changes.

The gateway reads the same file the model server polls (mounted into both in compose and Kubernetes), so a
model added by the training job is scoreable as soon as the server has loaded it, without a restart. Without
a config file the gateway knows only its default anomaly model.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from google.protobuf import text_format

from serving.protos import tfs_config_pb2


class ModelRegistry:
    """Anomaly model names: every model in the config except the digit model."""

    def __init__(self, config_path: str, default_anomaly: str, digits_model: str) -> None:
        self.path = Path(config_path) if config_path else None
        self.default = default_anomaly
        self.digits_model = digits_model
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._names: tuple[str, ...] = (default_anomaly,)

    def anomaly_models(self) -> tuple[str, ...]:
        """The names, sorted, the default first; the last good list while the file is unreadable."""
        if self.path is None:
            return self._names
        try:
            stat = os.stat(self.path)
        except OSError:
            return self._names
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._seen:
                self._names = self._read() or self._names
                self._seen = stamp
            return self._names

    def _read(self) -> tuple[str, ...] | None:
        try:
            parsed = text_format.Parse(
                self.path.read_text(), tfs_config_pb2.ModelServerConfig(), allow_unknown_field=True
            )
        except (OSError, UnicodeDecodeError, text_format.ParseError):
            return None
        names = {c.name for c in parsed.model_config_list.config if c.name and c.name != self.digits_model}
        ordered = sorted(names - {self.default})
        return (self.default, *ordered) if self.default in names else tuple(ordered)
