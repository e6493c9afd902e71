from __future__ import annotations

import torch
from torch import nn

from aria_perception.engine.fold import fold_batchnorm
from aria_perception.engine.midas import MidasSmall


def _randomise_norms(model: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def test_folded_midas_computes_the_same_function_without_batchnorm() -> None:
    torch.manual_seed(0)
    model = MidasSmall().eval()
    _randomise_norms(model)  # non-trivial statistics, so a wrong fold shows
    folded, count = fold_batchnorm(model)
    assert count == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 72
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    # The original keeps its official layout for loading checkpoints.
    assert "pretrained.layer1.1.running_mean" in model.state_dict()
