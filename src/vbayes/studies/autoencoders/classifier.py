"""A small digit classifier, used as a judge: which digit does a (reconstructed) image look like?

It is trained on the training split only, validated on the validation split, and then applied
to decoded images, never to choose or tune the auto-encoders themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vbayes.errors import DataError, TrainingDiverged
from vbayes.methods.base import train_loop
from vbayes.models.nets import mlp


class DigitClassifier(nn.Module):
    """MLP ``C*H*W -> hidden -> hidden -> n_classes`` on pixels in [0, 1].

    Input ``(N, C, H, W)``; output ``(N, n_classes)`` logits. An MLP keeps classifying many
    thousands of sampled reconstructions cheap on a CPU.
    """

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = (int(c), int(h), int(w))
        body = mlp(c * h * w, (hidden, hidden), n_classes)
        body.insert(2, nn.Dropout(0.2))  # after the first hidden layer only
        self.net = nn.Sequential(nn.Flatten(), *body)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, n_classes)`` logits."""
        return self.net(x)

    @torch.no_grad()
    def predict_proba(self, x: Tensor, chunk: int = 4096) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, n_classes)`` class probabilities (eval mode, in chunks)."""
        was_training = self.training
        self.eval()
        try:
            parts = [torch.softmax(self(x[i : i + chunk]), dim=1) for i in range(0, len(x), chunk)]
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else x.new_zeros((0, self.net[-1].out_features))


@dataclass
class ClassifierResult:
    """A trained :class:`DigitClassifier` and its accuracies (fractions in [0, 1])."""

    model: DigitClassifier
    val_accuracy: float
    test_accuracy: float
    epochs: int


def train_digit_classifier(
    data: object,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 1e-3,
    hidden: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> ClassifierResult:
    """Train a :class:`DigitClassifier` on ``data.x_train`` / ``data.y_train``.

    Args:
        data: an :class:`~vbayes.data.ImageData` (``x_*`` ``(N, C, H, W)`` in [0, 1], ``y_*`` ``(N,)``).
        epochs, batch_size, lr: Adam on the cross-entropy (:func:`vbayes.methods.base.train_loop`,
            ``epochs`` passes over the data); the weights of the epoch with the best validation
            accuracy are kept.
        seed: seeds the initialisation and the batch order (a CPU run repeats exactly).

    Returns:
        The trained classifier (eval mode) with its validation and test accuracy.
    """
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        if not hasattr(data, attr):
            raise DataError(f"the digit classifier needs labelled image data; {type(data).__name__} has no {attr}")
    x_tr, y_tr = data.x_train.to(device), data.y_train.to(device)  # type: ignore[attr-defined]
    x_va, y_va = data.x_val.to(device), data.y_val.to(device)  # type: ignore[attr-defined]
    x_te, y_te = data.x_test.to(device), data.y_test.to(device)  # type: ignore[attr-defined]
    n_classes = int(max(y_tr.max(), y_va.max(), y_te.max())) + 1
    gen = torch.Generator().manual_seed(seed)
    best: dict[str, Any] = {"accuracy": -1.0, "state": None}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(tuple(x_tr.shape[1:]), n_classes, hidden).to(device)  # type: ignore[arg-type]

        def keep_best() -> None:
            acc = _accuracy(model, x_va, y_va)  # predict_proba leaves the model in train mode
            if acc > best["accuracy"]:
                best.update(accuracy=acc, state={k: v.detach().clone() for k, v in model.state_dict().items()})

        def loss_fn(xb: Tensor, yb: Tensor, step: int) -> Tensor:
            return nn.functional.cross_entropy(model(xb), yb)

        info: dict[str, Any] = {}
        steps = epochs * math.ceil(len(x_tr) / batch_size)
        if not train_loop(model.parameters(), loss_fn, x_tr, y_tr, steps=steps, batch_size=batch_size, lr=lr,
                          info=info, generator=gen, modules=[model], on_epoch_end=keep_best):  # fmt: skip
            raise TrainingDiverged(f"digit classifier: {info['error']}")
    best_acc, best_state = best["accuracy"], best["state"]
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return ClassifierResult(model, best_acc, _accuracy(model, x_te, y_te), epochs)


def _accuracy(model: DigitClassifier, x: Tensor, y: Tensor) -> float:
    return float((model.predict_proba(x).argmax(1) == y).float().mean())
