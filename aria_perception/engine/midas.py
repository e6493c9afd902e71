"""MiDaS v2.1 small, native: timm's ``tf_efficientnet_lite3`` encoder and the MiDaS decoder.

A re-implementation of the official ``MidasNet_small(features=64, backbone="efficientnet_lite3",
non_negative=True, blocks={"expand": True})`` (isl-org/MiDaS, ``midas/midas_net_custom.py`` and
``midas/blocks.py``) with no torch.hub code at run time. Module names follow the official ones, so
the official checkpoints load with ``strict=True`` and give the same output.

The pretrained config (:data:`MIDAS_SMALL_CFG`) travels with the model, timm style: the
preprocessing (:mod:`aria_perception.engine.preprocess`) and the weights loader
(:mod:`aria_perception.engine.midas_weights`) read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CheckpointSource:
    """One published file of the official weights."""

    file_name: str
    url: str
    # The first hex digits of the file's SHA-256, where the file name carries them (torch hub
    # convention, checked by ``torch.hub.load_state_dict_from_url(check_hash=True)``).
    sha256_prefix: str = ""


@dataclass(frozen=True)
class MidasPretrainedCfg:
    """How the official weights were trained to be fed, and where they are published.

    The values are those of the official ``small_transform`` (MiDaS ``hubconf.py``): scale to
    0..1, resize keeping the aspect ratio so that the limiting side is ``input_size`` and both
    sides are multiples of ``multiple_of`` (``upper_bound``), bicubic, normalise with ``mean``
    and ``std``.
    """

    architecture: str
    input_size: int
    multiple_of: int
    resize_method: str
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Looked for in this order in the torch hub cache; the first is the current official name.
    checkpoints: tuple[CheckpointSource, ...]

    @property
    def file_names(self) -> tuple[str, ...]:
        """The accepted checkpoint file names, preferred first."""
        return tuple(source.file_name for source in self.checkpoints)


MIDAS_SMALL_CFG = MidasPretrainedCfg(
    architecture="midas_v21_small",
    input_size=256,
    multiple_of=32,
    resize_method="upper_bound",
    interpolation="bicubic",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    checkpoints=(
        CheckpointSource(
            "midas_v21_small_256.pt",
            "https://github.com/isl-org/MiDaS/releases/download/v2_1/midas_v21_small_256.pt",
        ),
        CheckpointSource(
            "model-small-70d6b9c8.pt",
            "https://github.com/intel-isl/MiDaS/releases/download/v2_1/model-small-70d6b9c8.pt",
            sha256_prefix="70d6b9c8",
        ),
    ),
)

# Input channels of the four encoder stages of tf_efficientnet_lite3 that the decoder taps.
_ENCODER_CHANNELS = (32, 48, 136, 384)


class Interpolate(nn.Module):
    """Resize by a fixed scale factor (the official ``blocks.Interpolate``)."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool = False) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resize ``x`` (N, C, H, W)."""
        return F.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )

    def extra_repr(self) -> str:
        """Shown by ``print(model)``."""
        return (
            f"scale_factor={self.scale_factor}, mode={self.mode!r}, "
            f"align_corners={self.align_corners}"
        )


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``x + conv2(act(conv1(act(x))))`` (``bn=False``, groups 1).

    The official ``ResidualConvUnit_custom``; its ``FloatFunctional.add`` is a plain add for a
    float model.
    """

    def __init__(self, features: int, activation: nn.Module) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        # Not in-place: ``x`` is still needed for the skip connection.
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit."""
        out = self.conv1(self.activation(x))
        out = self.conv2(self.activation(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip feature, upsample x2, then project (1x1 conv).

    The official ``FeatureFusionBlock_custom`` with ``deconv=False, bn=False,
    align_corners=True``: ``out = up2(rcu2(x + rcu1(skip)))``, then ``out_conv``; with
    ``expand`` the projection halves the channels.
    """

    def __init__(self, features: int, activation: nn.Module, expand: bool) -> None:
        super().__init__()
        out_features = features // 2 if expand else features
        self.out_conv = nn.Conv2d(features, out_features, kernel_size=1, stride=1, padding=0)
        self.resConfUnit1 = ResidualConvUnit(features, activation)  # name = checkpoint key
        self.resConfUnit2 = ResidualConvUnit(features, activation)  # name = checkpoint key

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse ``skip`` (if given) into ``x`` and upsample by 2."""
        out = x if skip is None else x + self.resConfUnit1(skip)
        out = self.resConfUnit2(out)
        # Upsample before the projection, as the official block does (the order changes the
        # result: the 1x1 conv has a bias and does not commute with align_corners=True).
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(out)


class EfficientNetLite3Encoder(nn.Module):
    """timm's ``tf_efficientnet_lite3`` cut into the four stages MiDaS taps.

    ``layer1`` is ``[conv_stem, bn1, act1, blocks[0], blocks[1]]`` (stride 4, 32 channels),
    ``layer2`` ``blocks[2]`` (stride 8, 48), ``layer3`` ``blocks[3:5]`` (stride 16, 136),
    ``layer4`` ``blocks[5:7]`` (stride 32, 384). timm's ``tf_`` variant has what the official
    gen-efficientnet backbone has: TF "SAME" padding on the stride-2 convolutions, BatchNorm
    eps 1e-3 and ReLU6.
    """

    def __init__(self) -> None:
        super().__init__()
        # Imported here: timm takes a while to import and only the worker builds models.
        import timm

        effnet = timm.create_model(
            "tf_efficientnet_lite3", pretrained=False, drop_rate=0.0, drop_path_rate=0.0
        )
        # timm folds the stem activation into ``bn1`` (BatchNormAct2d); the official backbone
        # has it as a module of its own at ``layer1[2]``. Move it out so that the structure,
        # not only the keys, matches.
        stem_act = effnet.bn1.act
        effnet.bn1.act = nn.Identity()
        self.layer1 = nn.Sequential(effnet.conv_stem, effnet.bn1, stem_act, *effnet.blocks[0:2])
        self.layer2 = nn.Sequential(*effnet.blocks[2:3])
        self.layer3 = nn.Sequential(*effnet.blocks[3:5])
        self.layer4 = nn.Sequential(*effnet.blocks[5:9])
        # The head (conv_head, bn2, classifier) is not used: let it go with ``effnet``.

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the four stage outputs (strides 4, 8, 16, 32)."""
        layer_1 = self.layer1(x)
        layer_2 = self.layer2(layer_1)
        layer_3 = self.layer3(layer_2)
        layer_4 = self.layer4(layer_3)
        return layer_1, layer_2, layer_3, layer_4


class MidasDecoder(nn.Module):
    """The official ``scratch`` module: per-stage 3x3 projections, four fusion blocks, the head."""

    def __init__(self, features: int = 64, non_negative: bool = True) -> None:
        super().__init__()
        widths = (features, features * 2, features * 4, features * 8)  # expand=True
        self.layer1_rn = nn.Conv2d(_ENCODER_CHANNELS[0], widths[0], 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(_ENCODER_CHANNELS[1], widths[1], 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(_ENCODER_CHANNELS[2], widths[2], 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(_ENCODER_CHANNELS[3], widths[3], 3, padding=1, bias=False)
        # One shared, not in-place ReLU, as in the official model (it holds no state).
        self.activation = nn.ReLU(inplace=False)
        self.refinenet4 = FeatureFusionBlock(widths[3], self.activation, expand=True)
        self.refinenet3 = FeatureFusionBlock(widths[2], self.activation, expand=True)
        self.refinenet2 = FeatureFusionBlock(widths[1], self.activation, expand=True)
        # The official model builds refinenet1 without ``expand``: it keeps 64 channels.
        self.refinenet1 = FeatureFusionBlock(widths[0], self.activation, expand=False)
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1),
            Interpolate(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(features // 2, 32, kernel_size=3, stride=1, padding=1),
            self.activation,
            nn.Conv2d(32, 1, kernel_size=1, stride=1, padding=0),
            nn.ReLU(inplace=True) if non_negative else nn.Identity(),
            nn.Identity(),
        )

    def forward(self, layers: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Decode the four encoder features to (N, 1, H, W)."""
        layer_1, layer_2, layer_3, layer_4 = layers
        path_4 = self.refinenet4(self.layer4_rn(layer_4))
        path_3 = self.refinenet3(path_4, self.layer3_rn(layer_3))
        path_2 = self.refinenet2(path_3, self.layer2_rn(layer_2))
        path_1 = self.refinenet1(path_2, self.layer1_rn(layer_1))
        return self.output_conv(path_1)


class MidasSmall(nn.Module):
    """MiDaS v2.1 small: relative inverse depth (bigger = nearer, not metres) from one image.

    Constructed with default arguments it is randomly initialised and downloads nothing; load the
    official weights with :func:`aria_perception.engine.midas_weights.load_midas_weights`.
    ``forward`` has no data-dependent Python control flow and no host synchronisation, so the
    model can be captured in a CUDA graph and run in half precision and channels_last.

    Args:
        features: width of the finest decoder stage (64 for the official model).
        non_negative: end with a ReLU (True for the official model).
    """

    pretrained_cfg: MidasPretrainedCfg = MIDAS_SMALL_CFG

    def __init__(self, features: int = 64, non_negative: bool = True) -> None:
        super().__init__()
        self.pretrained = EfficientNetLite3Encoder()
        self.scratch = MidasDecoder(features, non_negative)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict relative inverse depth.

        Args:
            x: (N, 3, H, W) float image, normalised as :data:`MIDAS_SMALL_CFG` says (see
                :func:`aria_perception.engine.preprocess.midas_preprocess`); H and W multiples
                of 32.

        Returns:
            (N, H, W) relative inverse depth, same dtype as the model.
        """
        return self.scratch(self.pretrained(x)).squeeze(1)


__all__ = [
    "MIDAS_SMALL_CFG",
    "CheckpointSource",
    "EfficientNetLite3Encoder",
    "FeatureFusionBlock",
    "Interpolate",
    "MidasDecoder",
    "MidasPretrainedCfg",
    "MidasSmall",
    "ResidualConvUnit",
]
