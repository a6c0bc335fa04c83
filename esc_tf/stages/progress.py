"""One progress bar per fold: epochs done, current loss and accuracy, instead of a line per step."""
from __future__ import annotations

import tf_keras as keras
from tqdm.auto import tqdm

SHOWN = {"loss": "loss", "accuracy": "acc", "label_accuracy": "acc", "val_loss": "val_loss",
         "val_accuracy": "val_acc", "val_label_accuracy": "val_acc"}


class EpochProgress(keras.callbacks.Callback):
    """A tqdm bar over the epochs of one ``fit``, its postfix the last epoch's metrics."""

    def __init__(self, description: str, epochs: int) -> None:
        super().__init__()
        self.description, self.epochs = description, epochs
        self.bar: tqdm | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.bar = tqdm(total=self.epochs, desc=self.description, unit="epoch", leave=True, dynamic_ncols=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.bar is None:
            return
        shown = {SHOWN[k]: f"{v:.3f}" for k, v in (logs or {}).items() if k in SHOWN}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
