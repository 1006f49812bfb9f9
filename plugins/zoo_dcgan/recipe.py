"""Training recipes for `zoo train dcgan-mnist` / `zoo train dcgan-64`: non-saturating GAN loss, Adam(2e-4, 0.5),
one-sided label smoothing and an exponential moving average (EMA) of the generator, which is what ships; optional
differentiable augmentation of D's inputs, an R1 gradient penalty, a separate D learning rate (TTUR), top-k generator
loss, a final linear learning-rate decay and, for dcgan-mnist, an InfoGAN code or a learned mixture latent prior."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ConfigError
from zoo.train import Recipe, TrainOptions

from .networks import Dcgan64Discriminator, MnistDiscriminator, build_dcgan64_generator, build_mnist_generator


@dataclass
class GanOptions(TrainOptions):
    """DCGAN training flags on top of the engine's common ones."""

    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 (beta2 is 0.999)"})
    real_label: float = field(default=0.9, metadata={"help": "target for real images in D's loss (one-sided "
                                                           "label smoothing; 1.0 disables it)"})
    ema: float = field(default=0.999, metadata={"help": "decay of the generator's weight EMA (the exported "
                                                    "generator); 0 exports the raw generator"})
    bn_recalibration: int = field(default=20, metadata={"help": "batches of 256 latents used to re-estimate the "
                                                                "exported generator's BatchNorm statistics"})
    augment: str = field(default="", metadata={"help": "differentiable augmentations applied to every image D sees, "
                                                     "real and fake (DiffAugment): comma-separated of "
                                                     "translation, cutout; empty = none"})
    r1: float = field(default=0.0, metadata={"help": "R1 penalty weight gamma: gamma/2 * E|grad_x D(real)|^2 "
                                                   "(0 = off)"})
    lr_d: float = field(default=0.0, metadata={"help": "discriminator learning rate; 0 = same as --lr"})
    lr_decay: int = field(default=0, metadata={"help": "final epochs over which both learning rates decay linearly "
                                                     "towards 0 (epoch by epoch; 0 = constant)"})
    top_k: float = field(default=1.0, metadata={"help": "fraction of each batch's fakes, those D rates most real, "
                                                      "that the generator's loss uses (top-k training, Sinha et "
                                                      "al. 2020); 1 = all"})


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. initialisation: conv/linear weights N(0, 0.02), BatchNorm scales N(1, 0.02) and zero shifts."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, batches: int, batch_size: int = 256, seed: int = 0) -> nn.Module:
    """Return a copy of `generator` whose BatchNorm running statistics are the exact averages over `batches` batches
    of fresh latents: an EMA of weights does not match the running statistics collected by the raw generator."""
    out = copy.deepcopy(generator)
    norms = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batches < 1 or not norms:
        return out.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    out.train()
    gen = torch.Generator().manual_seed(seed)
    device = next(out.parameters()).device
    for _ in range(batches):
        out(out.draw_latent(batch_size, generator=gen, device=device)[0])
    for m in norms:
        m.momentum = 0.1
    return out.eval()


AUGMENTATIONS = ("translation", "cutout")


def parse_augment(spec: str) -> tuple[str, ...]:
    """The augmentations named by `--augment` ("translation,cutout"), or a clear error for an unknown one."""
    names = tuple(a.strip() for a in spec.split(",") if a.strip())
    unknown = [a for a in names if a not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"--augment: unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def augment(x: Tensor, names: tuple[str, ...]) -> Tensor:
    """DiffAugment (Zhao et al. 2020): per-image random translation by up to 1/8 of the size (the uncovered border
    is background, -1) and a random cutout of half the size (set to -1); differentiable with respect to `x`."""
    if not names:
        return x
    n, _, h, w = x.shape
    dev = x.device
    if "translation" in names:
        ph, pw = max(h // 8, 1), max(w // 8, 1)
        padded = F.pad(x, (pw, pw, ph, ph), value=-1.0)
        dy = torch.randint(0, 2 * ph + 1, (n, 1, 1), device=dev)
        dx = torch.randint(0, 2 * pw + 1, (n, 1, 1), device=dev)
        rows = torch.arange(h, device=dev).view(1, h, 1) + dy
        cols = torch.arange(w, device=dev).view(1, 1, w) + dx
        x = padded[torch.arange(n, device=dev).view(n, 1, 1), :, rows, cols].permute(0, 3, 1, 2)
    if "cutout" in names:
        ch, cw = h // 2, w // 2
        cy = torch.randint(0, h - ch + 1, (n, 1, 1), device=dev)
        cx = torch.randint(0, w - cw + 1, (n, 1, 1), device=dev)
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        hole = ((ys >= cy) & (ys < cy + ch) & (xs >= cx) & (xs < cx + cw)).unsqueeze(1)
        x = torch.where(hole, torch.full_like(x, -1.0), x)
    return x.contiguous()


class _GanRecipe(Recipe):
    """Shared DCGAN loop; subclasses provide the networks and the data."""

    Options = GanOptions

    def _networks(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def build(self, device: torch.device):
        opts = self.opts
        if not 0.0 <= opts.ema < 1.0:
            raise ConfigError(f"--ema must be in [0, 1), got {opts.ema}")
        if opts.r1 < 0 or opts.lr_d < 0:
            raise ConfigError(f"--r1 and --lr-d must be >= 0, got {opts.r1} and {opts.lr_d}")
        if not 0 <= opts.lr_decay <= opts.epochs:
            raise ConfigError(f"--lr-decay must be between 0 and --epochs ({opts.epochs}), got {opts.lr_decay}")
        if not 0.0 < opts.top_k <= 1.0:
            raise ConfigError(f"--top-k must be in (0, 1], got {opts.top_k}")
        self.augment = parse_augment(opts.augment)
        G, D = self._networks()
        G.apply(dcgan_init)
        D.apply(dcgan_init)
        self.G, self.D = G.to(device), D.to(device)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self._exported: nn.Module | None = None
        modules = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        self.Q: nn.Module | None = None
        if self.G.categorical:  # InfoGAN's auxiliary head: recovers the code from D's features
            self.Q = nn.Sequential(nn.Linear(self.D.head.in_features, 128), nn.LeakyReLU(0.2),
                                   nn.Linear(128, self.G.categorical)).to(device)
            self.Q.apply(dcgan_init)
            modules["Q"] = self.Q
        betas = (opts.beta1, 0.999)
        d_params = [*self.D.parameters(), *(self.Q.parameters() if self.Q is not None else ())]
        optimizers = {"D": torch.optim.Adam(d_params, opts.lr_d or opts.lr, betas=betas),
                      "G": torch.optim.Adam(self._generator_groups(), opts.lr, betas=betas)}
        # each group's rate before any decay (a resumed checkpoint brings its decayed rates with it)
        self._base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in optimizers.items()}
        return modules, optimizers

    def _generator_groups(self) -> list[dict]:
        """The generator optimiser's parameter groups: its network weights at --lr; recipes with a learned latent
        prior add a second group."""
        return [{"params": list(self.G.parameters())}]

    def lr_factor(self, epoch: int) -> float:
        """The learning-rate multiplier during `epoch` (0-based): 1, then linear over the last --lr-decay epochs
        (1/(decay+1) in the last one), as a pure function of the epoch, so a resume needs no scheduler state."""
        return min(1.0, (self.opts.epochs - epoch) / (self.opts.lr_decay + 1)) if self.opts.lr_decay else 1.0

    def begin_epoch(self, epoch: int) -> None:
        factor = self.lr_factor(epoch)
        for name, bases in self._base_lrs.items():
            for group, base in zip(self.optimizers[name].param_groups, bases, strict=True):
                group["lr"] = base * factor

    def step(self, batch, it: int) -> dict[str, float]:
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        z, codes = self.G.draw_latent(real.shape[0], device=real.device)
        fake = self.G(z)
        real_in = augment(real, self.augment)
        if self.opts.r1 > 0:
            real_in = real_in.detach().requires_grad_(True)
        d_real = self.D(real_in)
        d_fake, info_d = self._discriminate(augment(fake.detach(), self.augment), codes)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, self.opts.real_label))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        losses = {}
        if info_d is not None:
            loss_d = loss_d + self.opts.info_weight * info_d
            losses["info"] = info_d.item()
        if self.opts.r1 > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
            penalty = grad.square().flatten(1).sum(1).mean()
            loss_d = loss_d + 0.5 * self.opts.r1 * penalty
            losses["r1"] = penalty.item()
        self.optimize("D", loss_d)
        d_gen, info_g = self._discriminate(augment(fake, self.augment), codes)
        if self.opts.top_k < 1.0:
            d_gen = d_gen.topk(max(1, round(self.opts.top_k * d_gen.shape[0]))).values
        loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        if info_g is not None:
            loss_g = loss_g + self.opts.info_weight * info_g
        self.optimize("G", loss_g)
        self._update_ema()
        self._exported = None
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(d_real).mean().item(), "d_fake": torch.sigmoid(d_fake).mean().item(),
                **losses}

    def _discriminate(self, x: Tensor, codes: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """D's logits for fakes `x` and, with a categorical code, InfoGAN's loss: cross-entropy of Q's reading of
        the code from D's features (a lower bound on the code/image mutual information, up to a constant)."""
        if self.Q is None:
            return self.D(x), None
        features = self.D.features(x)
        return self.D.head(features).squeeze(1), F.cross_entropy(self.Q(features), codes)

    @torch.no_grad()
    def _update_ema(self) -> None:
        for pe, pg in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(pg, 1.0 - self.opts.ema)
        for be, bg in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(bg)

    def sample_images(self) -> Tensor:
        return self.export_module().sample(64, seed=0)

    def export_module(self) -> nn.Module:
        if self._exported is None:  # one recalibration per epoch serves grid and checkpoint
            self._exported = recalibrate_batchnorm(self.G_ema, self.opts.bn_recalibration, seed=self.opts.seed)
        return self._exported


@dataclass
class MnistOptions(GanOptions):
    """dcgan-mnist flags: an optional InfoGAN categorical code."""

    info_codes: int = field(default=0, metadata={"help": "InfoGAN categorical code (Chen et al. 2016): the first K "
                                                         "latent dims are a uniform one-hot code that a head on D's "
                                                         "features must read back from the fake, which separates "
                                                         "K modes; exported in the generator's config; 0 = off"})
    info_weight: float = field(default=1.0, metadata={"help": "weight of the InfoGAN loss in D's and G's losses"})
    mixture: int = field(default=0, metadata={"help": "learned latent prior (DeLiGAN, Gurumurthy et al. 2017): z is "
                                                      "drawn from a uniform mixture of K diagonal Gaussians whose "
                                                      "means and scales G's loss trains; exported in the "
                                                      "generator's config and state; may be switched on when "
                                                      "resuming a run trained without it; 0 = z ~ N(0, I)"})
    mixture_lr: float = field(default=3e-3, metadata={"help": "learning rate of the mixture's means and log-scales"})


class MnistRecipe(_GanRecipe):
    """dcgan-mnist on the embedded 5k MNIST digits (or IDX files from --data)."""

    Options = MnistOptions

    def _networks(self):
        opts = self.opts
        if opts.info_weight < 0:
            raise ConfigError(f"--info-weight must be >= 0, got {opts.info_weight}")
        if opts.mixture < 0 or opts.mixture_lr <= 0 or (opts.mixture and opts.info_codes):
            raise ConfigError(f"--mixture must be >= 0 (and not combined with --info-codes) and --mixture-lr > 0, "
                              f"got --mixture {opts.mixture}, --info-codes {opts.info_codes}, "
                              f"--mixture-lr {opts.mixture_lr}")
        G = build_mnist_generator(**self.export_config())
        return G, MnistDiscriminator(channels=self.spec.config.get("channels", 1))

    def export_config(self) -> dict:
        return {**self.spec.config, "categorical": self.opts.info_codes, "mixture": self.opts.mixture}

    def _generator_groups(self) -> list[dict]:
        if not self.opts.mixture:
            return super()._generator_groups()
        prior = [self.G.prior_mean, self.G.prior_log_sigma]
        net = [p for p in self.G.parameters() if all(p is not q for q in prior)]
        return [{"params": net}, {"params": prior, "lr": self.opts.mixture_lr}]

    def upgrade_checkpoint(self, ckpt: dict, modules: dict) -> None:
        """Resuming a run trained with z ~ N(0, I) with --mixture K: the generators take their fresh prior (an
        approximation of N(0, I), see MnistGenerator) and G's optimiser a fresh group for it."""
        state = ckpt["modules"]["G"]
        saved = state["prior_mean"].shape[0] if "prior_mean" in state else 0
        if saved == self.opts.mixture:
            return
        if saved:
            raise ConfigError(f"this run was trained with --mixture {saved}; it cannot resume with --mixture "
                              f"{self.opts.mixture} (the learned prior's components cannot be added or removed)")
        for name in ("G", "G_ema"):
            fresh = modules[name].state_dict()
            ckpt["modules"][name].update({k: fresh[k] for k in ("prior_mean", "prior_log_sigma")})
        ckpt["optimizers"]["G"]["param_groups"].append(self.optimizers["G"].state_dict()["param_groups"][1])

    def dataset(self):
        from zoo.data.mnist import load_mnist

        images, _ = load_mnist(self.opts.data or None)
        return torch.utils.data.TensorDataset(images)


@dataclass
class Dcgan64Options(GanOptions):
    """dcgan-64 flags: the discriminator width (the generator's config comes from the model)."""

    ndf: int = field(default=64, metadata={"help": "discriminator base width (pytorch/examples --ndf)"})
    bn_recalibration: int = field(default=0, metadata={"help": "batches of 256 latents used to re-estimate the "
                                                               "exported generator's BatchNorm statistics"})


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images of a folder, centre-cropped to a square and resized to `size`, as (C, size, size) in [-1, 1]."""

    def __init__(self, folder: str, size: int, channels: int):
        from zoo.imageio import list_images

        self.paths, self.size, self.channels = list_images(folder), size, channels
        if not self.paths:
            raise ConfigError(f"{folder} holds no images (png/jpg/...); dcgan-64 needs a folder of training images")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        from zoo.imageio import read_image

        x, _, _ = read_image(self.paths[index])
        if x.shape[0] != self.channels:
            x = x.mean(0, keepdim=True) if self.channels == 1 else x.expand(self.channels, -1, -1)
        h, w = x.shape[1:]
        s = min(h, w)
        x = x[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x[0] * 2 - 1).clamp(-1, 1)


class Dcgan64Recipe(_GanRecipe):
    """dcgan-64 (Radford et al.) on a folder of images (--data DIR, centre-cropped and resized to image_size);
    without --data, on the 100 small LFW faces embedded in scikit-image."""

    Options = Dcgan64Options

    def _networks(self):
        cfg = self.spec.config
        return (build_dcgan64_generator(**cfg),
                Dcgan64Discriminator(nc=cfg["nc"], ndf=self.opts.ndf, image_size=cfg["image_size"]))

    def dataset(self):
        cfg = self.spec.config
        if self.opts.data:
            return ImageFolderDataset(self.opts.data, cfg["image_size"], cfg["nc"])
        return torch.utils.data.TensorDataset(embedded_faces(cfg["image_size"], cfg["nc"]))


def embedded_faces(size: int, channels: int) -> Tensor:
    """Default dcgan-64 data: the 100 grey 25x25 LFW faces shipped with scikit-image, resized, in [-1, 1]."""
    import numpy as np

    from zoo.data import packaged_file

    faces = torch.from_numpy(np.load(packaged_file("scikit-image", "skimage/data/lfw_subset.npy"))[:100]).float()
    x = F.interpolate(faces[:, None], size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return (x * 2 - 1).expand(-1, channels, -1, -1).contiguous()
