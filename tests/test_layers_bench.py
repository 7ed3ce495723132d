"""`vbayes bench layers`: the target lines printed after the table."""

from vbayes.cli.bench.layers import TARGETS, target_report


def _ratios(one, two):
    kinds = list(TARGETS)
    return {("mlp", 128, 1): dict(zip(kinds, one)), ("mlp", 128, 2): dict(zip(kinds, two))}


def test_target_report_met_and_missed():
    lines = target_report(_ratios((1.43, 1.9, 2.0), (1.6, 2.3, 2.2)), 2)
    text = "\n".join(lines)
    assert "reparam  1.43x <= 1.5x: met" in text
    assert "lrt      1.90x <= 1.8x: missed by 0.10x" in text
    assert "flipout  2.00x <= 2.0x: met" in text
    assert "reparam  1.60x - 1.43x = +0.17x <= +0.3x: met" in text
    assert "lrt      2.30x - 1.90x = +0.40x <= +0.3x: missed by 0.10x" in text


def test_target_report_without_batch_128_or_threads():
    assert "not checked" in target_report({("mlp", 512, 1): {}}, 1)[0]
    lines = target_report(_ratios((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)), 1)
    assert "thread target was not checked" in lines[-1]


def test_every_optimizer_choice_steps_the_baseline_and_a_bayesian_net():
    import torch

    from vbayes.cli.bench.layers import OPTIMIZERS, make_step, mlp

    x, y = torch.rand(4, 784), torch.tensor([0, 1, 2, 3])
    for name in OPTIMIZERS:
        for kind in ("nn.Linear", "vbayes reparam"):
            model = mlp(kind, None)
            before = [p.detach().clone() for p in model.parameters()]
            make_step(model, x, y, name)()
            assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters())), (name, kind)
