"""CycleGAN training (Zhu et al. 2017) as a zoo.train recipe, with the reference implementation's defaults, plus an
opt-in CyCADA-style semantic consistency loss for the built-in digits pair."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data.unpaired import DigitsPair, UnpairedImageFolder, digits_pair
from zoo.errors import ConfigError
from zoo.train import Recipe, TrainOptions

from .evaluate import semantic_reader
from .models import CycleGANPair
from .networks import NLayerDiscriminator, init_weights

GAN_MODES = ("lsgan", "vanilla")


class ImagePool:
    """History of generated images (Shrivastava et al.): each query returns, per image, either the new image or a
    stored older one (swapping the new one in) with probability 1/2 once full; size 0 passes images through."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state(self) -> Tensor:
        """The stored images as one tensor (for checkpoints)."""
        return torch.cat(self.images).cpu() if self.images else torch.empty(0)

    def load(self, images: Tensor, device: torch.device) -> None:
        self.images = [im.unsqueeze(0).to(device) for im in images] if images.numel() else []


def gan_loss(logits: Tensor, target_is_real: bool, mode: str) -> Tensor:
    """LSGAN: MSE against 1/0 over the patch map; vanilla: BCE with logits."""
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


@dataclass
class CycleGANOptions(TrainOptions):
    """CycleGAN flags on top of the engine's (reference defaults)."""

    gan_mode: str = field(default="lsgan", metadata={"help": "adversarial loss: lsgan (MSE) or vanilla (BCE)"})
    lambda_cycle: float = field(default=10.0, metadata={"help": "weight of the cycle losses A->B->A and B->A->B"})
    lambda_identity: float = field(default=0.5, metadata={
        "help": "identity loss weight as a fraction of lambda_cycle (0 disables; needs equal channel counts)"})
    pool_size: int = field(default=50, metadata={"help": "image pool of past fakes for the discriminators (0 = off)"})
    n_epochs_decay: int = field(default=-1, metadata={
        "help": "final epochs over which the learning rate decays linearly to 0 (-1 = half of --epochs)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1"})
    ngf: int = field(default=0, metadata={"help": "generator width (0 = the model's default)"})
    n_blocks: int = field(default=0, metadata={"help": "residual blocks (0 = the model's default)"})
    ndf: int = field(default=64, metadata={"help": "discriminator width"})
    n_layers_d: int = field(default=3, metadata={"help": "PatchGAN discriminator layers"})
    load_size: int = field(default=286, metadata={"help": "--data folders: resize images to this size, then crop"})
    crop_size: int = field(default=256, metadata={"help": "--data folders: random crop size (training image size)"})
    lambda_semantic: float = field(default=0.0, metadata={
        "help": "built-in digits pair only: weight of a semantic consistency loss (after Hoffman et al., CyCADA): "
                "a frozen digit reader trained on both domains must read G_A(a) and G_B(b) as it reads a and b "
                "(0 = off, the reference recipe)"})


class CycleGANRecipe(Recipe):
    """Two generators (G_A: A->B, G_B: B->A), two PatchGAN discriminators (D_A judges B, D_B judges A)."""

    Options = CycleGANOptions

    def _config(self) -> dict[str, Any]:
        config = dict(self.spec.config)
        for key in ("ngf", "n_blocks"):
            if getattr(self.opts, key):
                config[key] = getattr(self.opts, key)
        return config

    def _check_options(self, config: dict[str, Any]) -> None:
        o = self.opts
        if o.gan_mode not in GAN_MODES:
            raise ConfigError(f"--gan-mode must be one of {GAN_MODES}, got {o.gan_mode!r}")
        if o.lambda_cycle < 0 or o.lambda_identity < 0 or o.pool_size < 0:
            raise ConfigError("--lambda-cycle, --lambda-identity and --pool-size must be >= 0")
        if o.lambda_identity > 0 and config["input_nc"] != config["output_nc"]:
            raise ConfigError(
                f"the identity loss needs equal channel counts, got input_nc={config['input_nc']} and "
                f"output_nc={config['output_nc']}; pass --lambda-identity 0"
            )
        if o.lambda_semantic < 0:
            raise ConfigError(f"--lambda-semantic must be >= 0, got {o.lambda_semantic}")
        if o.lambda_semantic > 0 and o.data:
            raise ConfigError("--lambda-semantic needs the built-in digits pair (its reader knows only digits); "
                              "drop --data or pass --lambda-semantic 0")
        if not -1 <= o.n_epochs_decay <= o.epochs:
            raise ConfigError(f"--n-epochs-decay must be -1 or between 0 and --epochs ({o.epochs}), got {o.n_epochs_decay}")

    def build(self, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]:
        config = self._config()
        self._check_options(config)
        self.config = config
        o = self.opts
        self.pair = CycleGANPair(**{k: v for k, v in config.items() if k != "direction"}).to(device)
        norm = config.get("norm", "instance")
        self.D_A = NLayerDiscriminator(config["output_nc"], o.ndf, o.n_layers_d, norm).to(device)
        self.D_B = NLayerDiscriminator(config["input_nc"], o.ndf, o.n_layers_d, norm).to(device)
        for net in (self.pair, self.D_A, self.D_B):
            init_weights(net, 0.02)
        betas = (o.beta1, 0.999)
        opt_g = torch.optim.Adam([*self.pair.G_A.parameters(), *self.pair.G_B.parameters()], lr=o.lr, betas=betas)
        opt_d = torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], lr=o.lr, betas=betas)
        decay = o.epochs // 2 if o.n_epochs_decay < 0 else o.n_epochs_decay
        constant = o.epochs - decay

        def rule(epoch: int) -> float:  # reference 'linear' policy; stepped once per finished epoch
            return 1.0 - max(0, epoch + 1 - constant) / float(decay + 1)

        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, rule) for name, opt in
                           (("G", opt_g), ("D", opt_d))}
        self.pool_A, self.pool_B = ImagePool(o.pool_size), ImagePool(o.pool_size)
        self.reader = copy.deepcopy(semantic_reader()).to(device) if o.lambda_semantic > 0 else None  # cache stays put
        self.device = device
        return ({"G_A": self.pair.G_A, "G_B": self.pair.G_B, "D_A": self.D_A, "D_B": self.D_B},
                {"G": opt_g, "D": opt_d})

    def dataset(self) -> torch.utils.data.Dataset:
        if not self.opts.data:
            return DigitsPair("train")
        return UnpairedImageFolder(self.opts.data, "train", load_size=self.opts.load_size,
                                   crop_size=self.opts.crop_size, channels_a=self.config["input_nc"],
                                   channels_b=self.config["output_nc"])

    def step(self, batch: Any, it: int) -> dict[str, float]:
        o = self.opts
        real_A, real_B = (t.to(self.device, non_blocking=True) for t in batch)
        G_A, G_B = self.pair.G_A, self.pair.G_B
        fake_B, fake_A = G_A(real_A), G_B(real_B)
        rec_A, rec_B = G_B(fake_B), G_A(fake_A)

        for d in (self.D_A, self.D_B):
            d.requires_grad_(False)
        loss_gan = gan_loss(self.D_A(fake_B), True, o.gan_mode) + gan_loss(self.D_B(fake_A), True, o.gan_mode)
        loss_cycle = (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B)) * o.lambda_cycle
        loss_idt = torch.zeros((), device=self.device)
        if o.lambda_identity > 0:
            loss_idt = (F.l1_loss(G_A(real_B), real_B) + F.l1_loss(G_B(real_A), real_A)) * o.lambda_cycle * o.lambda_identity
        loss_sem = self._semantic_loss(real_A, fake_B) + self._semantic_loss(real_B, fake_A)
        loss_g = loss_gan + loss_cycle + loss_idt + loss_sem
        self.optimize("G", loss_g)

        for d in (self.D_A, self.D_B):
            d.requires_grad_(True)
        pooled_B, pooled_A = self.pool_A.query(fake_B.detach()), self.pool_B.query(fake_A.detach())
        loss_d_a = 0.5 * (gan_loss(self.D_A(real_B), True, o.gan_mode) + gan_loss(self.D_A(pooled_B), False, o.gan_mode))
        loss_d_b = 0.5 * (gan_loss(self.D_B(real_A), True, o.gan_mode) + gan_loss(self.D_B(pooled_A), False, o.gan_mode))
        self.optimize("D", loss_d_a + loss_d_b)
        return {"G_gan": loss_gan.item(), "cycle": loss_cycle.item(), "idt": loss_idt.item(), "sem": loss_sem.item(),
                "D_A": loss_d_a.item(), "D_B": loss_d_b.item()}

    def _semantic_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The frozen two-style reader must read the translation as the digit it reads in the source (its own
        argmax: no labels at this point). Zero when --lambda-semantic is 0."""
        if self.reader is None:
            return torch.zeros((), device=self.device)
        with torch.no_grad():
            target = self.reader(real).argmax(1)
        return F.cross_entropy(self.reader(fake), target) * self.opts.lambda_semantic

    def end_epoch(self, epoch: int) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def _fixed_batch(self) -> tuple[Tensor, Tensor]:
        """8 images of each domain for the sample grid, always the same ones (one per digit for the default data)."""
        if not self.opts.data:
            data = digits_pair("test")
            pick = [[int(torch.nonzero(data[f"labels_{d}"] == c)[0]) for c in range(8)] for d in "AB"]
            return data["A"][pick[0]], data["B"][pick[1]]
        phase = "test" if (Path(self.opts.data) / "testA").is_dir() else "train"
        ds = UnpairedImageFolder(self.opts.data, phase, load_size=self.opts.crop_size, crop_size=self.opts.crop_size,
                                 channels_a=self.config["input_nc"], channels_b=self.config["output_nc"], augment=False)
        items = [ds[i % len(ds)] for i in range(8)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    def sample_images(self) -> Tensor:
        """Rows: A, G_A(A), G_B(G_A(A)), then B, G_B(B), G_A(G_B(B)) (grey rows repeated to RGB if channels differ)."""
        if not hasattr(self, "_samples"):
            self._samples = self._fixed_batch()
        a, b = (t.to(self.device) for t in self._samples)
        was = self.pair.training
        self.pair.eval()
        ab = self.pair.G_A(a)
        ba = self.pair.G_B(b)
        rows = [a, ab, self.pair.G_B(ab), b, ba, self.pair.G_A(ba)]
        self.pair.train(was)
        channels = max(r.shape[1] for r in rows)
        return torch.cat([r.expand(-1, channels, -1, -1) if r.shape[1] != channels else r for r in rows]).cpu()

    def grid_nrow(self) -> int:
        return 8

    def export_module(self) -> nn.Module:
        return self.pair

    def export_config(self) -> dict[str, Any]:
        return dict(self.config)

    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state(), "pool_B": self.pool_B.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_A.load(state["pool_A"], self.device)
        self.pool_B.load(state["pool_B"], self.device)
