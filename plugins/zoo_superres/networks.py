"""Super-resolution networks: ESPCN, SRResNet / SRGAN generator and discriminator, ESRGAN RRDBNet (BasicSR keys).

Every generator maps x in [0,1] (N,C,H,W) to (N,C,H*scale,W*scale) (clamping is the task's job) and carries
`scale`, `in_channels`, `size_multiple` and `receptive_field` (LR pixels on each side a pixel's output depends on).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import zoo.ops
from zoo.errors import ConfigError


def _check_scale(scale: int, allowed: tuple[int, ...], model: str) -> int:
    """Validate an upscaling factor for `model` against its supported set."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale not in allowed:
        raise ConfigError(f"{model} scale must be one of {allowed}, got {scale!r}")
    return scale


def _check_channels(in_channels: int) -> int:
    """Images have 1 (grayscale) or 3 (RGB) channels; alpha is handled by the task, not the network."""
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 or 3, got {in_channels!r}")
    return in_channels


class ConvLeakyReLU(nn.Conv2d):
    """3x3 conv whose bias is applied by the fused bias+LeakyReLU op; state dict identical to nn.Conv2d."""

    def __init__(self, in_ch: int, out_ch: int, negative_slope: float = 0.2):
        super().__init__(in_ch, out_ch, 3, 1, 1)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return zoo.ops.bias_leaky_relu(y, self.bias, negative_slope=self.negative_slope)


# ----------------------------------------------------------------------------------------------------------------
# ESPCN (Shi et al. 2016)
# ----------------------------------------------------------------------------------------------------------------


class ESPCN(nn.Module):
    """Efficient sub-pixel CNN: conv5x5-conv3x3-conv3x3 in LR space, then PixelShuffle to the HR grid.

    `residual=True` adds bicubic upsampling of the input so the network only predicts the missing detail, which
    trains faster and better than the plain paper variant at the same size.
    """

    def __init__(self, scale: int = 2, in_channels: int = 3, width: int = 64, mid_width: int = 32,
                 activation: str = "tanh", residual: bool = False):
        super().__init__()
        self.scale = _check_scale(scale, (2, 3, 4), "ESPCN")
        self.in_channels = _check_channels(in_channels)
        if activation not in ("tanh", "relu"):
            raise ConfigError(f"ESPCN activation must be 'tanh' or 'relu', got {activation!r}")
        if width < 1 or mid_width < 1:
            raise ConfigError(f"ESPCN widths must be positive, got width={width}, mid_width={mid_width}")
        self.residual = bool(residual)
        self.size_multiple = 1
        # 5x5 + 3x3 + 3x3 convs: 2 + 1 + 1 LR pixels per side; bicubic's 4-tap kernel reaches 2 LR pixels.
        self.receptive_field = 4
        self.conv1 = nn.Conv2d(in_channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, mid_width, 3, padding=1)
        self.conv3 = nn.Conv2d(mid_width, in_channels * scale * scale, 3, padding=1)
        self.act = nn.Tanh() if activation == "tanh" else nn.ReLU()
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.conv3(self.act(self.conv2(self.act(self.conv1(x))))))
        if self.residual:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return y


def build_espcn(scale: int = 2, in_channels: int = 3, width: int = 64, mid_width: int = 32,
                activation: str = "tanh", residual: bool = False) -> ESPCN:
    """Builder for the registry (a picklable top-level function)."""
    return ESPCN(scale, in_channels, width, mid_width, activation, residual)


# ----------------------------------------------------------------------------------------------------------------
# SRResNet / SRGAN (Ledig et al. 2017)
# ----------------------------------------------------------------------------------------------------------------


class _ResidualBlock(nn.Module):
    """conv3x3-BN-PReLU-conv3x3-BN with identity skip."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(nf)
        self.act = nn.PReLU(nf)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class _Upsample(nn.Module):
    """conv3x3 to r^2 * nf channels, PixelShuffle(r), PReLU."""

    def __init__(self, nf: int, r: int):
        super().__init__()
        self.conv = nn.Conv2d(nf, nf * r * r, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(r)
        self.act = nn.PReLU(nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class SRResNet(nn.Module):
    """SRResNet / SRGAN generator: conv9x9+PReLU, B residual blocks, conv+BN, global skip, PixelShuffle stages."""

    def __init__(self, scale: int = 4, in_channels: int = 3, num_feat: int = 64, num_block: int = 16):
        super().__init__()
        self.scale = _check_scale(scale, (2, 3, 4, 8), "SRResNet")
        self.in_channels = _check_channels(in_channels)
        if num_block < 1 or num_feat < 1:
            raise ConfigError(f"SRResNet needs num_block >= 1 and num_feat >= 1, got {num_block}, {num_feat}")
        self.size_multiple = 1
        self.head = nn.Conv2d(in_channels, num_feat, 9, 1, 4)
        self.head_act = nn.PReLU(num_feat)
        self.body = nn.Sequential(*[_ResidualBlock(num_feat) for _ in range(num_block)])
        self.body_conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.body_bn = nn.BatchNorm2d(num_feat)
        stages = [3] if scale == 3 else [2] * int(math.log2(scale))
        self.upsample = nn.Sequential(*[_Upsample(num_feat, r) for r in stages])
        self.tail = nn.Conv2d(num_feat, in_channels, 9, 1, 4)
        # LR pixels: head 4 + 2 per block + 1 body conv + 1 per upsampling conv + tail 4 HR px (<= 2 LR px).
        self.receptive_field = 4 + 2 * num_block + 1 + len(stages) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head_act(self.head(x))
        feat = feat + self.body_bn(self.body_conv(self.body(feat)))
        return self.tail(self.upsample(feat))


def build_srresnet(scale: int = 4, in_channels: int = 3, num_feat: int = 64, num_block: int = 16) -> SRResNet:
    """Builder for the registry."""
    return SRResNet(scale, in_channels, num_feat, num_block)


class SRGANDiscriminator(nn.Module):
    """SRGAN discriminator: 8 VGG-style 3x3 convs (stride 2 every other), Dense(1024), LeakyReLU(0.2), Dense(1).

    Biased LeakyReLUs go through the fused op (`FusedLeakyReLU` owns the bias); BN layers use the bias-free op.
    Takes x in [0,1] of size `input_size` (multiple of 16); returns one logit per image.
    """

    def __init__(self, in_channels: int = 3, num_feat: int = 64, input_size: int = 96):
        super().__init__()
        if input_size < 16 or input_size % 16:
            raise ConfigError(f"SRGAN discriminator input_size must be a positive multiple of 16, got {input_size}")
        self.in_channels = _check_channels(in_channels)
        self.input_size = input_size
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, 1, 1, bias=False),
                                   zoo.ops.FusedLeakyReLU(num_feat)]
        plan = [(num_feat, 2), (num_feat * 2, 1), (num_feat * 2, 2), (num_feat * 4, 1), (num_feat * 4, 2),
                (num_feat * 8, 1), (num_feat * 8, 2)]
        ch = num_feat
        for out, stride in plan:
            layers += [nn.Conv2d(ch, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), zoo.ops.LeakyReLU(0.2)]
            ch = out
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.fc1 = nn.Linear(ch * side * side, 1024, bias=False)
        self.fc1_act = zoo.ops.FusedLeakyReLU(1024)
        self.fc2 = nn.Linear(1024, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ConfigError(f"SRGAN discriminator expects {self.input_size}x{self.input_size} inputs, "
                              f"got {tuple(x.shape[-2:])}")
        h = self.features(x).flatten(1)
        return self.fc2(self.fc1_act(self.fc1(h))).squeeze(1)


# ----------------------------------------------------------------------------------------------------------------
# ESRGAN RRDBNet (Wang et al. 2018), state-dict compatible with BasicSR / Real-ESRGAN
# ----------------------------------------------------------------------------------------------------------------


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (LeakyReLU after the first four); returns 0.2 * x5 + x."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = ConvLeakyReLU(num_feat, num_grow_ch)
        self.conv2 = ConvLeakyReLU(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = ConvLeakyReLU(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = ConvLeakyReLU(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat((x, x1), 1))
        x3 = self.conv3(torch.cat((x, x1, x2), 1))
        x4 = self.conv4(torch.cat((x, x1, x2, x3), 1))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, returns 0.2 * out + x."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator with BasicSR key names; x4 internally, scale 2 / 1 by pixel_unshuffle(2 / 4) first."""

    def __init__(self, scale: int = 4, in_channels: int = 3, out_channels: int | None = None, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        self.scale = _check_scale(scale, (1, 2, 4), "RRDBNet")
        self.in_channels = _check_channels(in_channels)
        out_channels = in_channels if out_channels is None else out_channels
        if out_channels != in_channels:
            raise ConfigError(f"RRDBNet out_channels must equal in_channels ({in_channels}), got {out_channels}")
        if num_block < 1 or num_feat < 1 or num_grow_ch < 1:
            raise ConfigError(f"RRDBNet sizes must be positive, got num_feat={num_feat}, num_block={num_block}, "
                              f"num_grow_ch={num_grow_ch}")
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.size_multiple = self.unshuffle
        self.conv_first = nn.Conv2d(in_channels * self.unshuffle ** 2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = ConvLeakyReLU(num_feat, num_feat)
        self.conv_up2 = ConvLeakyReLU(num_feat, num_feat)
        self.conv_hr = ConvLeakyReLU(num_feat, num_feat)
        self.conv_last = nn.Conv2d(num_feat, out_channels, 3, 1, 1)
        # Feature-grid pixels: conv_first 1 + 15 per RRDB + conv_body 1, then up1/up2/hr/last at 2x/4x the grid
        # (< 1.25 grid px); times the unshuffle factor for input pixels (an upper bound).
        self.receptive_field = (15 * num_block + 4) * self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest"))
        feat = self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest"))
        return self.conv_last(self.conv_hr(feat))


def build_rrdbnet(scale: int = 4, in_channels: int = 3, out_channels: int | None = None, num_feat: int = 64,
                  num_block: int = 23, num_grow_ch: int = 32) -> RRDBNet:
    """Builder for the registry."""
    return RRDBNet(scale, in_channels, out_channels, num_feat, num_block, num_grow_ch)
