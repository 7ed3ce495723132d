"""Finding ambiguous inputs: test digits whose sampled reconstructions look like two classes.

A stochastic auto-encoder (VAE: S codes z ~ q(z|x); Bayesian AE: S weight samples) gives S
reconstructions of one input. A digit classifier labels each reconstruction; an input is
ambiguous when a substantial share of its reconstructions is judged to be one digit and
another substantial share a second digit (the lecture's 4 / 9 confusion); given the labels,
one of the two must be the input's own digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


class AmbiguityCounter:
    """Accumulates, sample by sample, which class each input's reconstructions are judged to be.

    Use as the ``on_sample`` callback of
    :func:`vbayes.models.bae.sample_reconstructions`: each call receives one sampled code
    ``(N, D)`` and one reconstruction ``(N, C, H, W)`` (pixel means in [0, 1]) per input.

    Args:
        classifier: maps ``(n, C, H, W)`` images to ``(n, K)`` logits.
        n_inputs: N; n_classes: K (``None``: taken from the classifier's first output).
        chunk: images per classifier call (bounds memory).
    """

    def __init__(self, classifier: nn.Module, n_inputs: int, n_classes: int | None = None, chunk: int = 4096) -> None:
        self.classifier = classifier
        self.n_inputs = n_inputs
        self.counts: Tensor | None = None
        self.prob_sum: Tensor | None = None
        if n_classes is not None:
            self._allocate(n_classes)
        self.chunk = chunk

    def _allocate(self, n_classes: int) -> None:
        self.counts = torch.zeros(self.n_inputs, n_classes, dtype=torch.int64)
        self.prob_sum = torch.zeros(self.n_inputs, n_classes, dtype=torch.float64)

    @torch.no_grad()
    def __call__(self, z: Tensor, recon: Tensor, index: Tensor | None = None) -> None:
        """Judge one reconstruction per input; ``index`` ``(n,)`` says which inputs when a chunk."""
        was_training = self.classifier.training
        self.classifier.eval()
        try:
            probs = torch.cat(
                [torch.softmax(self.classifier(recon[i : i + self.chunk]), 1) for i in range(0, len(recon), self.chunk)]
            ).cpu()
        finally:
            self.classifier.train(was_training)
        idx = torch.arange(len(recon)) if index is None else index.cpu()
        if self.counts is None:
            self._allocate(probs.shape[1])
        assert self.counts is not None and self.prob_sum is not None
        if probs.shape[1] != self.counts.shape[1]:
            raise ValueError(f"AmbiguityCounter: classifier gave {probs.shape[1]} classes, expected {self.counts.shape[1]}")
        self.counts[idx, probs.argmax(1)] += 1
        self.prob_sum[idx] += probs.double()

    def result(self) -> "Ambiguity":
        """The accumulated :class:`Ambiguity` (requires at least one sample of every input)."""
        if self.counts is None or self.prob_sum is None:
            raise ValueError("AmbiguityCounter: no recorded reconstruction")
        total = self.counts.sum(1, keepdim=True)
        if int(total.min()) == 0:
            raise ValueError("AmbiguityCounter: some inputs have no recorded reconstruction")
        return Ambiguity(self.counts.double() / total, (self.prob_sum / total).float())


@dataclass
class Ambiguity:
    """Per-input class judgement of the sampled reconstructions.

    Attributes:
        fractions: ``(N, K)`` share of each input's reconstructions whose most probable class
            is k (rows sum to 1).
        mean_probs: ``(N, K)`` classifier probabilities averaged over the reconstructions.
    """

    fractions: Tensor
    mean_probs: Tensor

    def top2(self) -> tuple[Tensor, Tensor]:
        """``(classes (N, 2), fractions (N, 2))``: the two most frequent judgements per input.

        Ties among classes are broken by the mean probability, so that an input whose
        reconstructions are all one class still names a sensible runner-up.
        """
        key = self.fractions.double() + 1e-6 * self.mean_probs.double()
        _, classes = key.topk(2, dim=1)
        return classes, self.fractions.gather(1, classes).float()

    def pairs(self, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(classes (N, 2), shares (N, 2))``: the two classes each input is split between.

        Without ``labels``: the two most frequent judgements (:meth:`top2`). With ``labels``
        ``(N,)``: the input's own label and the most frequent *other* judgement, so that an
        input counts as ambiguous only when its reconstructions are sometimes its own digit and
        sometimes another one (not when a poor decoder turns it into two wrong digits).
        """
        if labels is None:
            return self.top2()
        lab = labels.to(self.fractions.device).long().view(-1, 1)
        key = self.fractions.double() + 1e-6 * self.mean_probs.double()
        key = key.scatter(1, lab, float("-inf"))
        other = key.argmax(1, keepdim=True)
        classes = torch.cat([lab, other], 1)
        return classes, self.fractions.gather(1, classes).float()

    def scores(self, labels: Tensor | None = None) -> Tensor:
        """``(N,)`` ambiguity score: the smaller of the two shares of :meth:`pairs`, plus a tie-break.

        The share is in [0, 0.5]; 0 means the reconstructions were not split between the two
        classes. The tie-break (under 1e-3) is the second class's mean probability, so inputs
        are also ranked by how close they come to a second digit.
        """
        classes, shares = self.pairs(labels)
        second_prob = self.mean_probs.gather(1, classes[:, 1:]).squeeze(1)
        return shares.min(1).values + 1e-3 * second_prob


def find_ambiguous(
    ambiguity: Ambiguity, k: int, exclude: Tensor | None = None, labels: Tensor | None = None
) -> list[tuple[int, int, int, float]]:
    """The ``k`` most ambiguous inputs, most ambiguous first.

    Args:
        ambiguity: the judgement of each input's reconstructions.
        k: how many to return (fewer when there are fewer inputs).
        exclude: optional ``(N,)`` bool mask of inputs not to choose.
        labels: optional ``(N,)`` true classes; see :meth:`Ambiguity.pairs`.

    Returns:
        ``[(index, class_a, class_b, share), ...]``: the two classes the reconstructions are
        split between (without labels the most frequent judgement and the runner-up; with
        labels the input's label and the most frequent other judgement) and the smaller of
        their two shares of the reconstructions (in [0, 0.5]).
    """
    if k < 1:
        raise ValueError(f"find_ambiguous: k must be >= 1, got {k}")
    scores = ambiguity.scores(labels).clone()
    if exclude is not None:
        scores[exclude] = float("-inf")
    classes, shares = ambiguity.pairs(labels)
    order = torch.argsort(scores, descending=True, stable=True)
    out = []
    for i in order[:k].tolist():
        if scores[i] == float("-inf"):
            break
        out.append((i, int(classes[i, 0]), int(classes[i, 1]), float(shares[i].min())))
    return out
