"""Training recipes for `zoo train`: stage 1 pixel (L1) training of any SR generator (ESPCN, SRResNet, RRDBNet),
and stage 2 adversarial training (SRGAN: standard GAN; ESRGAN: relativistic average GAN) with an optional
perceptual loss whose VGG19 feature network is read from a local weights file (nothing is downloaded)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import zoo
from zoo.data.sr import SRPairs, default_photo_paths, load_photo, training_photos
from zoo.errors import ConfigError, WeightsError
from zoo.train import Recipe, TrainOptions
from zoo.weights import read_state_dict

from .networks import SRGANDiscriminator


@dataclass
class PixelOptions(TrainOptions):
    """Stage 1 options: pixel loss on random aligned crops of HR photos."""

    batch_size: int = field(default=16, metadata={"help": "batch size per process"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (cosine-annealed to 1%% over the run)"})
    patch: int = field(default=32, metadata={"help": "LR patch size (HR patch = patch x scale)"})
    samples_per_epoch: int = field(default=2048, metadata={"help": "random crops per epoch"})
    pretrained: str = field(default="", metadata={"help": "weights file to start from (e.g. a stage 1 export)"})


class PixelRecipe(Recipe):
    """Stage 1: L1 between the upscaled LR crop and the HR crop; cosine learning-rate schedule."""

    Options = PixelOptions

    def model_config(self) -> dict[str, Any]:
        """Builder configuration of the trained generator."""
        return dict(self.spec.config)

    def build(self, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        if self.opts.pretrained:
            self.G = zoo.load(self.spec.name, weights=self.opts.pretrained, **self.model_config())
        else:
            self.G = self.spec.builder(**self.model_config())
        self.G.to(device).train()
        opt = torch.optim.Adam(self.G.parameters(), lr=self.opts.lr, betas=(0.9, 0.99))
        return {"G": self.G}, {"G": opt}

    def set_lr(self, it: int) -> None:
        """Cosine decay from --lr to 1% over the whole run, computed from the iteration alone (exact on resume,
        and a run extended with a larger --epochs stretches its schedule)."""
        total = self.opts.epochs * max(1, self.opts.samples_per_epoch // (self.opts.batch_size * self.world_size))
        progress = min(1.0, it / total)
        lr = self.opts.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def dataset(self) -> SRPairs:
        photos = training_photos(self.opts.data or None, self.G.in_channels)
        return SRPairs(photos, self.G.scale, self.opts.patch, self.opts.samples_per_epoch)

    def step(self, batch: Any, it: int) -> dict[str, float]:
        lr, hr = batch
        self.set_lr(it)
        loss = F.l1_loss(self.G(lr), hr)
        self.optimize("G", loss)
        return {"l1": loss.item()}

    def sample_images(self) -> torch.Tensor:
        """Rows of (bicubic, model, HR) on central crops of the held-out photos, in [-1, 1]."""
        from zoo.tasks.superres import preview_triplets

        self.G.eval()
        images = preview_triplets(self.G, [load_photo(p, self.G.in_channels)
                                           for p in default_photo_paths("eval")], size=96)
        return images * 2 - 1

    def grid_nrow(self) -> int:
        return 3

    def export_module(self) -> nn.Module:
        return self.G

    def export_config(self) -> dict[str, Any]:
        return self.model_config()


@dataclass
class ESPCNOptions(PixelOptions):
    """ESPCN stage 1 options: the network's widths, activation and bicubic skip can be chosen per run."""

    width: int = field(default=0, metadata={"help": "first conv width (0 = the model's default)"})
    mid_width: int = field(default=0, metadata={"help": "second conv width (0 = the model's default)"})
    residual: str = field(default="", metadata={"help": "'yes'/'no': add bicubic upsampling (default: model's)"})
    activation: str = field(default="", metadata={"help": "'tanh' or 'relu' (default: the model's)"})


class ESPCNRecipe(PixelRecipe):
    """ESPCN trained with L1 on the embedded photos (or --data DIR)."""

    Options = ESPCNOptions

    def model_config(self) -> dict[str, Any]:
        config = dict(self.spec.config)
        if self.opts.width:
            config["width"] = self.opts.width
        if self.opts.mid_width:
            config["mid_width"] = self.opts.mid_width
        if self.opts.residual:
            if self.opts.residual not in ("yes", "no"):
                raise ConfigError(f"--residual must be 'yes' or 'no', got {self.opts.residual!r}")
            config["residual"] = self.opts.residual == "yes"
        if self.opts.activation:
            config["activation"] = self.opts.activation
        return config


def vgg19_features(path: str, layer: int = 34) -> nn.Sequential:
    """VGG19 `features[:layer + 1]` (torchvision layout and keys `features.N.*`) from a local weights file."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    layers: list[nn.Module] = []
    ch = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU()]
            ch = v
    if not 0 <= layer < len(layers):
        raise ConfigError(f"perceptual layer must be in 0..{len(layers) - 1}, got {layer}")
    net = nn.Sequential(*layers[:layer + 1])
    state = read_state_dict(path)
    state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    if missing or any(state[k].shape != own[k].shape for k in own):
        raise WeightsError(f"{path} is not a torchvision VGG19 state dict (features.N.weight/bias); "
                           f"missing or mis-shaped: {', '.join(missing[:5]) or 'shapes differ'}")
    net.load_state_dict({k: state[k] for k in own})
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


@dataclass
class GANOptions(PixelOptions):
    """Stage 2 options: adversarial + pixel (+ optional perceptual) losses."""

    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate of G and D"})
    patch: int = field(default=24, metadata={"help": "LR patch size; patch x scale must be a multiple of 16"})
    pixel_weight: float = field(default=1e-2, metadata={"help": "weight of the L1 pixel loss"})
    adv_weight: float = field(default=5e-3, metadata={"help": "weight of the generator's adversarial loss"})
    perceptual_weights: str = field(default="", metadata={"help": "local torchvision VGG19 weights for the "
                                                                  "perceptual loss (empty = no perceptual loss)"})
    perceptual_layer: int = field(default=34, metadata={"help": "VGG19 features index (34 = conv5_4, pre-ReLU)"})
    perceptual_weight: float = field(default=1.0, metadata={"help": "weight of the perceptual (L1 feature) loss"})


class SRGANRecipe(PixelRecipe):
    """Stage 2 SRGAN: G against the VGG-style discriminator with the standard (non-saturating) GAN loss."""

    Options = GANOptions
    relativistic = False

    def build(self, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        nets, opts = super().build(device)
        hr_size = self.opts.patch * self.G.scale
        if hr_size % 16:
            raise ConfigError(f"HR patch {hr_size} (patch x scale) must be a multiple of 16 for the discriminator")
        self.D = SRGANDiscriminator(self.G.in_channels, input_size=hr_size).to(device).train()
        opt_d = torch.optim.Adam(self.D.parameters(), lr=self.opts.lr, betas=(0.9, 0.99))
        self.vgg = None
        if self.opts.perceptual_weights:
            self.vgg = vgg19_features(self.opts.perceptual_weights, self.opts.perceptual_layer).to(device)
            mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
            self._norm = (mean, std)
        return {**nets, "D": self.D}, {**opts, "D": opt_d}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        mean, std = self._norm
        return self.vgg((x - mean) / std)

    def _adv_losses(self, real: torch.Tensor | None, fake: torch.Tensor, for_g: bool) -> torch.Tensor:
        """Discriminator (for_g False) or generator (for_g True) adversarial loss from logits (`real` is only
        needed by the discriminator and by the relativistic generator loss)."""
        bce = F.binary_cross_entropy_with_logits
        ones, zeros = torch.ones_like(fake), torch.zeros_like(fake)
        if self.relativistic:  # RaGAN: real should look more real than the average fake, and vice versa
            r, f = real - fake.mean(), fake - real.mean()
            return (bce(r, zeros) + bce(f, ones)) / 2 if for_g else (bce(r, ones) + bce(f, zeros)) / 2
        return bce(fake, ones) if for_g else (bce(real, ones) + bce(fake, zeros)) / 2

    def step(self, batch: Any, it: int) -> dict[str, float]:
        lr, hr = batch
        self.set_lr(it)
        sr = self.G(lr)
        for p in self.D.parameters():
            p.requires_grad_(False)
        g_pixel = F.l1_loss(sr, hr)
        real = self.D(hr).detach() if self.relativistic else None
        g_adv = self._adv_losses(real, self.D(sr), for_g=True)
        g_loss = self.opts.pixel_weight * g_pixel + self.opts.adv_weight * g_adv
        logs = {"g_pixel": g_pixel.item(), "g_adv": g_adv.item()}
        if self.vgg is not None:
            g_percep = F.l1_loss(self._features(sr), self._features(hr).detach())
            g_loss = g_loss + self.opts.perceptual_weight * g_percep
            logs["g_percep"] = g_percep.item()
        self.optimize("G", g_loss)
        for p in self.D.parameters():
            p.requires_grad_(True)
        d_loss = self._adv_losses(self.D(hr), self.D(sr.detach()), for_g=False)
        self.optimize("D", d_loss)
        logs["d"] = d_loss.item()
        return logs


class ESRGANRecipe(SRGANRecipe):
    """Stage 2 ESRGAN: relativistic average GAN loss (start from a stage 1 export with --pretrained)."""

    relativistic = True
