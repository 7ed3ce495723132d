"""``ensemble``: deep ensemble (Lakshminarayanan, Pritzel & Blundell 2017).

``n_members`` networks with a heteroscedastic Gaussian head (softmax for classification), each
initialised and shuffled from its own seed, trained independently on the NLL; optionally with
adversarial training (fast gradient sign, ``adversarial=True``, off by default). The predictive
is the equal-weight mixture of the members: S = ``n_members``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from vbayes.errors import VBayesError
from vbayes.methods.predictive import RegressionPrediction
from vbayes.methods.base import Method, Prediction, seeded, stack_predictions
from vbayes.methods.noise import NoiseModel
from vbayes.methods.output import OutputMethod, train_point_network


class EnsembleMethod(Method):
    """Deep ensemble of ``n_members`` networks.

    Options: ``n_members`` (5), ``lr``, ``batch_size``, ``steps``, ``weight_decay``,
    ``activation``, ``noise``, ``noise_std``, ``adversarial`` (False) and ``adv_eps`` (perturbation size as a
    fraction of each input's training range, 0.01 as in the paper).
    Member ``m`` uses seed ``seed * 1000 + m``.
    """

    name: ClassVar[str] = "ensemble"
    defaults: ClassVar[dict[str, Any]] = {
        "n_members": 5,
        **OutputMethod.defaults,  # each member is an ``output`` network
        "adversarial": False,
        "adv_eps": 0.01,
    }

    def _fit(self, x: Tensor, y: Tensor) -> None:
        opt = self.options
        m = int(opt["n_members"])
        if m < 1:
            raise VBayesError(f"n_members must be >= 1, got {m}")
        eps = opt["adv_eps"] * (x.max(0).values - x.min(0).values)  # (D,)
        self.members: list[tuple[nn.Module, NoiseModel | None]] = []
        errors = []
        for k in range(m):
            with seeded(self.seed * 1000 + k):
                member_info: dict[str, Any] = {}
                model, head = train_point_network(
                    self, x, y, dropout=0.0, weight_decay=float(opt["weight_decay"]), info=member_info,
                    adversarial_eps=eps if opt["adversarial"] else None,
                )  # fmt: skip
            if "error" in member_info:
                errors.append(f"member {k}: {member_info['error']}")
            self.info["epochs"] = member_info.get("epochs")
            self.members.append((model, head))
        if errors:
            self.info["error"] = "; ".join(errors)

    def _predict(self, x: Tensor) -> Prediction:
        outs = []
        for model, _ in self.members:
            model.eval()
            outs.append(model(x))
        # every member's head has the same form; heads differ only in the homoscedastic sigma
        if self.task == "classification":
            return stack_predictions(outs, self.task, None, self.info)
        mus, sigmas = [], []
        for out, (_, head) in zip(outs, self.members):
            assert head is not None
            mu, sigma = head(out)
            mus.append(mu)
            sigmas.append(sigma)
        return RegressionPrediction(mu=torch.stack(mus), sigma=torch.stack(sigmas), info=dict(self.info))
