"""CycleGAN networks with the reference implementation's exact module layout (state_dict keys `model.<idx>.*`).

Instance norm + ReLU / LeakyReLU pairs run fused through `zoo.ops.InstanceNormAct2d` (no state, like the reference's
affine-free InstanceNorm2d); the activation's slot in the Sequential is an `nn.Identity` so conv indices match.
"""
from __future__ import annotations

from torch import Tensor, nn

from zoo import ops
from zoo.errors import ConfigError

NORMS = ("instance", "batch")


def _check(input_nc: int, output_nc: int, ngf: int, n_blocks: int, norm: str) -> None:
    """Reject configurations the reference cannot express, naming the bad value."""
    if input_nc < 1 or output_nc < 1 or ngf < 1 or n_blocks < 0:
        raise ConfigError(
            f"ResnetGenerator needs input_nc, output_nc, ngf >= 1 and n_blocks >= 0, "
            f"got {input_nc}, {output_nc}, {ngf}, {n_blocks}"
        )
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")


def _norm_act(channels: int, norm: str, negative_slope: float) -> list[nn.Module]:
    """[norm, activation] occupying two Sequential slots, as in the reference (fused for instance norm)."""
    if norm == "instance":
        return [ops.InstanceNormAct2d(channels, affine=False, negative_slope=negative_slope), nn.Identity()]
    act = nn.ReLU(True) if negative_slope == 0.0 else nn.LeakyReLU(negative_slope, True)
    return [nn.BatchNorm2d(channels), act]


def _norm(channels: int, norm: str) -> nn.Module:
    """A norm layer without activation (the end of a residual block)."""
    return nn.InstanceNorm2d(channels, affine=False) if norm == "instance" else nn.BatchNorm2d(channels)


class ResnetBlock(nn.Module):
    """x + conv_block(x); conv_block = [pad, conv, norm, ReLU, (Dropout), pad, conv, norm] (reference keys)."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        bias = norm == "instance"  # the reference drops conv biases in front of affine batch norm
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), *_norm_act(dim, norm, 0.0)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(dim, norm)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Johnson-style generator: 7x7 conv, two stride-2 downsamplings, n_blocks residual blocks, two upsamplings."""

    size_multiple = 4  # two stride-2 stages: H and W must be multiples of 4 for the output to match the input
    min_size = 8  # the 1-px reflection pads of the residual blocks need a bottleneck of at least 2x2

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        use_dropout: bool = False,
    ):
        super().__init__()
        _check(input_nc, output_nc, ngf, n_blocks, norm)
        self.input_nc, self.output_nc, self.ngf, self.n_blocks = input_nc, output_nc, ngf, n_blocks
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), *_norm_act(ngf, norm, 0.0)]
        for i in range(2):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       *_norm_act(ngf * mult * 2, norm, 0.0)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       *_norm_act(ngf * mult // 2, norm, 0.0)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (70x70 receptive field for n_layers=3): a map of real/fake logits."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        if input_nc < 1 or ndf < 1 or n_layers < 1:
            raise ConfigError(f"NLayerDiscriminator needs input_nc, ndf, n_layers >= 1, got {input_nc}, {ndf}, {n_layers}")
        if norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS}, got {norm!r}")
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       *_norm_act(ndf * mult, norm, 0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The reference 'normal' init: conv weights N(0, gain), biases 0; batch-norm weights N(1, gain), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
