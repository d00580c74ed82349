"""What both models' training shares: the data error the CLI reports, and per-epoch progress output."""

from __future__ import annotations

import time


class DataError(ValueError):
    """Input data that cannot be used; the CLI prints the message and exits non-zero."""


class EpochLog:
    """Keras callback printing one line per epoch: progress output that also reads well in CI logs."""

    def __new__(cls, total_epochs: int, label: str):
        import keras

        class _EpochLog(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                shown = "  ".join(f"{key}={value:.4f}" for key, value in logs.items() if key != "learning_rate")
                elapsed = time.perf_counter() - self.start
                print(f"[{label}] epoch {epoch + 1}/{total_epochs}  {shown}  ({elapsed:.1f}s)", flush=True)

        return _EpochLog()
