"""Margin-softmax objectives over a training-only classifier: SphereFace, CosFace, ArcFace.

Each scores a unit embedding x against unit class weights W_j (cos theta_j = W_j . x) and adds a
margin to the true class's logit only, then softmax cross-entropy over the training identities:

- SphereFace (A-Softmax, Liu et al. 2017): multiplicative angular margin m (integer, 4),
  psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m] (monotone decreasing on
  [0, pi]), annealed as (lambda cos + psi) / (1 + lambda) with lambda decaying from ~1000 to a floor
  (5), as in the paper's Caffe code: lambda = max(min, base (1 + gamma step)^-power).
- CosFace (LMCL, Wang et al. 2018): s (cos theta_y - m).
- ArcFace (Deng et al. 2019): s cos(theta_y + m), with insightface's fix where theta_y + m would
  pass pi (cos no longer decreasing): past the threshold cos theta_y <= cos(pi - m) the logit is
  cos theta_y - m sin(m) (``easy_margin``: keep cos theta_y wherever cos theta_y <= 0).

harmony's embedder L2-normalises its output (the registered model's distances are FaceNet's), so
SphereFace's feature norm ||x|| is the fixed scale s here, as in the normalised-feature variants
(NormFace, SphereFace's own later releases). The classifier (n_identities x dim) lives only in
the LightningModule: it is checkpointed for resume but never registered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MARGIN_LOSSES = ("sphereface", "cosface", "arcface")
# (scale s, margin m) per loss: the papers' values; tiny recipes set a smaller s for 128-D runs
DEFAULTS = {"sphereface": (30.0, 4.0), "cosface": (64.0, 0.35), "arcface": (64.0, 0.5)}


@dataclass(frozen=True)
class MarginParams:
    """One margin objective, resolved (no None): the loss, s, m and SphereFace's lambda schedule."""

    loss: str
    scale: float
    margin: float
    easy_margin: bool = False
    lambda_base: float = 1000.0
    lambda_gamma: float = 0.12
    lambda_power: float = 1.0
    lambda_min: float = 5.0
    warmup_steps: int = 0  # CosFace/ArcFace: the margin ramps linearly from 0 over these steps

    def margin_at(self, step: int) -> float:
        """The margin in force at an optimiser step (SphereFace's is fixed: its lambda anneals)."""
        if self.loss == "sphereface" or self.warmup_steps <= 0:
            return self.margin
        return self.margin * min(1.0, step / self.warmup_steps)


def sphereface_lambda(step: int, p: MarginParams) -> float:
    """SphereFace's annealing weight at an optimiser step: starts at ``lambda_base`` (almost plain
    softmax, so the net can start learning) and decays to ``lambda_min`` (most of the margin)."""
    return max(p.lambda_min, p.lambda_base * (1.0 + p.lambda_gamma * step) ** (-p.lambda_power))


def _cos_m_theta(c: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) as a polynomial in c = cos theta (Chebyshev: T_0=1, T_1=c, T_{n+1}=2c T_n - T_{n-1}),
    so the gradient never goes through acos (infinite at c = +-1)."""
    t0, t1 = torch.ones_like(c), c
    if m == 0:
        return t0
    for _ in range(m - 1):
        t0, t1 = t1, 2 * c * t1 - t0
    return t1


def sphereface_psi(c: torch.Tensor, m: int) -> torch.Tensor:
    """psi(theta) = (-1)^k cos(m theta) - 2k, k = floor(m theta / pi), from c = cos theta."""
    with torch.no_grad():
        theta = torch.acos(c.clamp(-1.0, 1.0))
        k = torch.floor(m * theta / math.pi).clamp(0, m - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)
    return sign * _cos_m_theta(c, m) - 2.0 * k


def target_logit(c: torch.Tensor, p: MarginParams, step: int = 0) -> torch.Tensor:
    """The true class's margined cosine (before the scale) from its cos theta_y."""
    if p.loss == "cosface":
        return c - p.margin_at(step)
    if p.loss == "arcface":
        m = p.margin_at(step)
        cos_m, sin_m = math.cos(m), math.sin(m)
        sin = torch.sqrt((1.0 - c * c).clamp_min(1e-12))
        phi = c * cos_m - sin * sin_m  # cos(theta + m)
        if p.easy_margin:
            return torch.where(c > 0, phi, c)
        return torch.where(c > math.cos(math.pi - m), phi, c - math.sin(math.pi - m) * m)
    if p.loss == "sphereface":
        lam = sphereface_lambda(step, p)
        return (lam * c + sphereface_psi(c, int(p.margin))) / (1.0 + lam)
    raise ValueError(f"loss must be one of {MARGIN_LOSSES}, got {p.loss!r}")


def margin_logits(emb: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, p: MarginParams,
                  step: int = 0) -> torch.Tensor:
    """Scaled logits (B, C): s cos theta_j for every class, the margined value for the true one.
    ``emb`` (B, d) is normalised here too (harmless for unit vectors), ``weight`` (C, d) rows likewise."""
    with torch.autocast(emb.device.type, enabled=False):  # fp32 cosines even under bf16-mixed
        cos = F.normalize(emb.float(), dim=1) @ F.normalize(weight.float(), dim=1).T
    cos = cos.clamp(-1.0, 1.0)
    c_y = cos.gather(1, labels[:, None])
    return p.scale * cos.scatter(1, labels[:, None], target_logit(c_y, p, step))


def margin_loss(emb: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, p: MarginParams,
                step: int = 0) -> torch.Tensor:
    """Softmax cross-entropy over the margined logits (mean over the batch)."""
    return F.cross_entropy(margin_logits(emb, weight, labels, p, step), labels)


class MarginClassifier(torch.nn.Module):
    """The training-only classifier: one weight row per training identity (labels index rows)."""

    def __init__(self, n_classes: int, dim: int, params: MarginParams, init: torch.Tensor | None = None,
                 seed: int = 0):
        super().__init__()
        self.params = params
        if init is not None:
            w = init.detach().float().clone()
            if w.shape != (n_classes, dim):
                raise ValueError(f"classifier init has shape {tuple(w.shape)}, expected {(n_classes, dim)}")
        else:
            g = torch.Generator().manual_seed(seed)
            w = F.normalize(torch.randn(n_classes, dim, generator=g), dim=1)
        self.weight = torch.nn.Parameter(w)

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    def size(self) -> dict:
        """What the classifier costs (fp32) and why it is not registered."""
        n, d = self.weight.shape
        return {"identities": n, "dim": d, "parameters": n * d, "megabytes": round(n * d * 4 / 2**20, 3)}

    def forward(self, emb: torch.Tensor, labels: torch.Tensor, step: int = 0) -> torch.Tensor:
        if int(labels.max()) >= self.n_classes or int(labels.min()) < 0:
            raise ValueError(f"label {int(labels.max())} outside the classifier's {self.n_classes} identities")
        return margin_loss(emb, self.weight, labels, self.params, step)
