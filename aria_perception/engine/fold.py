"""Fold inference-time BatchNorm into the preceding convolution.

MiDaS small's EfficientNet-Lite3 backbone has 72 BatchNorms; in eval mode each is a separate
kernel after its convolution (measured on the H100: about 0.3 ms of the depth stream per
frame). Folding gives the same function with the scale and shift inside the convolution's
weights and bias. The model keeps its official ``state_dict`` layout for loading; the engine
folds a copy once the weights are in.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_batchnorm"]

# (convolution, norm) attribute pairs of timm's EfficientNet blocks, by block class name.
_PAIRS = {
    "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
    "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3")),
}


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(shift.to(conv.weight.dtype))
        else:
            conv.bias.mul_(scale).add_(shift)


def _after_norm(bn: nn.BatchNorm2d) -> nn.Module:
    """What remains of a norm layer once folded: timm's BatchNormAct2d keeps drop + act."""
    parts = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
    parts = [m for m in parts if not isinstance(m, nn.Identity)]
    if not parts:
        return nn.Identity()
    return parts[0] if len(parts) == 1 else nn.Sequential(*parts)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """Return an eval-mode copy of ``model`` with conv + BatchNorm pairs folded, and the count.

    Pairs are the named ones of timm's EfficientNet blocks and consecutive (Conv2d,
    BatchNorm2d) entries of ``nn.Sequential`` containers. Other norms are left alone.
    """
    folded = copy.deepcopy(model).eval()
    count = 0
    for parent in list(folded.modules()):
        pairs = _PAIRS.get(type(parent).__name__, ())
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                _fold_into(conv, bn)
                setattr(parent, bn_name, _after_norm(bn))
                count += 1
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            for first, second in zip(names, names[1:], strict=False):
                conv, bn = parent._modules[first], parent._modules[second]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    _fold_into(conv, bn)
                    parent._modules[second] = _after_norm(bn)
                    count += 1
    return folded, count
