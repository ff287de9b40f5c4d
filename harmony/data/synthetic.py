"""Procedural synthetic faces: identity-labelled, deterministic, thousands of images a second.

An identity is a random parameter vector (face shape, skin, hair, eyes, brows, nose, mouth, ears,
beard, glasses) drawn from a seed stream keyed by ``(seed, split, identity)``; an image adds
nuisance drawn from ``(seed, split, identity, image)``: rotation, scale, shift, yaw-like feature
shifts, expression (eye opening, mouth opening, brow raise), background, directional light,
contrast, sensor noise and an occluding box. Train/val/test identities come from disjoint seed
streams, so held-out identities never appear in training (open-set, like FaceNet's hold-out set).

Rendering draws soft ellipses analytically on an affine-transformed pixel grid with torch, batched,
so pose changes cost nothing extra and any image size works (64 px for CPU runs, 160 px like
FaceNet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from harmony.errors import InvalidInput

SPLITS = {"train": 1, "val": 2, "test": 3}
_N_ID = 40  # identity parameter count
_N_IMG = 24  # per-image nuisance parameter count
_NOISE_BANK = 16


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; the defaults are calibrated so raw pixels fail and a CNN learns."""

    image_size: int = 64
    seed: int = 0
    rotation_deg: float = 14.0
    occlusion_p: float = 0.3
    noise_std: float = 0.06
    nuisance: float = 1.0  # scales every nuisance amplitude (0 = canonical renders)


def _check(cfg: SynthConfig, split: str) -> None:
    if split not in SPLITS:
        raise InvalidInput(f"unknown split {split!r}", hint=f"use one of {sorted(SPLITS)}")
    if not 16 <= cfg.image_size <= 512:
        raise InvalidInput(f"image_size {cfg.image_size} out of range", hint="use 16..512 (64 for CPU, 160 like FaceNet)")


def identity_params(identities: np.ndarray, split: str = "train", seed: int = 0) -> np.ndarray:
    """(n, 40) float32 in [0, 1): one deterministic parameter vector per identity."""
    code = SPLITS[split]
    return np.stack(
        [np.random.default_rng([seed, code, int(i)]).random(_N_ID, dtype=np.float32) for i in identities]
    ) if len(identities) else np.zeros((0, _N_ID), np.float32)


def image_params(identities: np.ndarray, images: np.ndarray, split: str = "train", seed: int = 0) -> np.ndarray:
    """(n, 24) float32 in [0, 1): per-image nuisance, deterministic per (identity, image)."""
    code = SPLITS[split]
    return np.stack(
        [np.random.default_rng([seed, code, int(i), int(j), 7]).random(_N_IMG, dtype=np.float32)
         for i, j in zip(identities, images)]
    ) if len(identities) else np.zeros((0, _N_IMG), np.float32)


def _lerp(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


_SKIN = torch.tensor([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.72, 0.52, 0.37], [0.55, 0.38, 0.26], [0.36, 0.24, 0.16]])
_HAIR = torch.tensor([[0.08, 0.06, 0.05], [0.30, 0.18, 0.09], [0.55, 0.38, 0.20], [0.85, 0.72, 0.45], [0.55, 0.55, 0.55], [0.55, 0.20, 0.10]])


def _palette(pal: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear colour ramp: u in [0,1) -> (n, 3)."""
    x = u * (len(pal) - 1)
    i = x.floor().long().clamp(max=len(pal) - 2)
    f = (x - i).unsqueeze(1)
    return pal[i] * (1 - f) + pal[i + 1] * f


class _Canvas:
    """A batch of images plus the per-image transformed coordinate grids.

    Each ellipse is computed only inside the pixel window that holds it in every image of the
    batch (``window``); outside it the soft mask is exactly 0 and painting is a no-op, so the
    result is the same image as over the whole canvas (``windowed=False``, kept as the reference
    tests compare against) at a fraction of the cost: most parts (eyes, nose, glasses) are small."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, bg: torch.Tensor, pose: tuple | None = None,
                 windowed: bool = True):
        self.x, self.y = x, y  # (n, H, W) face coordinates
        self.img = bg  # (n, 3, H, W)
        self.pose = pose  # (cos th, sin th, scale, tx, ty) per image: face -> pixel coordinates
        self.windowed = windowed and pose is not None

    def window(self, cx: torch.Tensor, cy: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor) -> tuple[slice, slice]:
        """Rows and columns of the pixels any image's ellipse can touch. Its mask is > 0 only where
        ((R(f - c))_x / rx)^2 + ((R(f - c))_y / ry)^2 < 1, i.e. within max(|rx|, |ry|) of its centre
        in face coordinates, sc times that in pixels; two pixels of margin on each side."""
        n, h, w = self.x.shape
        if not self.windowed:
            return slice(0, h), slice(0, w)
        c, sn, sc, tx, ty = self.pose
        px = sc * (c * cx - sn * cy) + tx  # the inverse of the pose in render_params
        py = sc * (sn * cx + c * cy) + ty
        rad = sc * torch.maximum(rx.abs(), ry.abs())
        to_col = (w - 1) / 2.0
        to_row = (h - 1) / 2.0
        c0 = int(math.floor(float(((px - rad).min() + 1) * to_col))) - 2
        c1 = int(math.ceil(float(((px + rad).max() + 1) * to_col))) + 3
        r0 = int(math.floor(float(((py - rad).min() + 1) * to_row))) - 2
        r1 = int(math.ceil(float(((py + rad).max() + 1) * to_row))) + 3
        return slice(max(r0, 0), max(min(r1, h), 0)), slice(max(c0, 0), max(min(c1, w), 0))

    def ellipse(self, cx, cy, rx, ry, color, angle=None, soft=12.0, cut=None) -> None:
        """Composite a soft ellipse; all params are (n,) tensors, color (n, 3)."""
        rows, cols = self.window(cx, cy, rx, ry)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return
        x, y = self.x[:, rows, cols], self.y[:, rows, cols]
        dx = x - cx[:, None, None]
        dy = y - cy[:, None, None]
        if angle is not None:
            c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
            dx, dy = c * dx + s * dy, c * dy - s * dx
        dx.mul_((1.0 / rx)[:, None, None]).square_()
        dy.mul_((1.0 / ry)[:, None, None]).square_()
        m = dx.add_(dy).neg_().add_(1.0).mul_(soft).clamp_(0.0, 1.0)
        if cut is not None:  # keep only the part above y = cut (hairline, beard line)
            y0, sign = cut
            m.mul_(((y0[:, None, None] - y) * (sign * 20.0)).clamp_(0.0, 1.0))
        img = self.img[:, :, rows, cols]
        img.lerp_(color[:, :, None, None].expand_as(img), m.unsqueeze(1))


def _noise_bank(size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_007 * seed + size)
    return torch.randn(_NOISE_BANK, 3, size, size, generator=g)


_BANKS: dict[tuple[int, int], torch.Tensor] = {}


def render_params(idp: np.ndarray, imp: np.ndarray, cfg: SynthConfig = SynthConfig(),
                  windowed: bool = True) -> np.ndarray:
    """Render (n, H, W, 3) uint8 RGB from identity params (n, 40) and image params (n, 24).
    ``windowed=False`` paints every part over the whole canvas (the reference; same pixels)."""
    n, s = len(idp), cfg.image_size
    if n == 0:
        return np.zeros((0, s, s, 3), np.uint8)
    P = torch.from_numpy(np.ascontiguousarray(idp, dtype=np.float32))
    Q = torch.from_numpy(np.ascontiguousarray(imp, dtype=np.float32))
    k = cfg.nuisance
    q = lambda j: (Q[:, j] - 0.5) * 2 * k  # noqa: E731  nuisance in [-k, k]

    # affine grid: rotation, scale, shift (pose is applied to coordinates, not pixels)
    lin = torch.linspace(-1, 1, s)
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    th = q(0) * math.radians(cfg.rotation_deg)
    sc = 1.0 + 0.12 * q(1)
    tx, ty = 0.10 * q(2), 0.10 * q(3)
    c, sn = torch.cos(th)[:, None, None], torch.sin(th)[:, None, None]
    X0, Y0 = gx[None] - tx[:, None, None], gy[None] - ty[:, None, None]
    x = (c * X0 + sn * Y0) / sc[:, None, None]
    y = (-sn * X0 + c * Y0) / sc[:, None, None]

    # background: colour + linear gradient
    bgc = torch.stack([Q[:, 4], Q[:, 5], Q[:, 6]], 1) * 0.8 + 0.1
    ga = Q[:, 7] * 2 * math.pi
    grad = (torch.cos(ga)[:, None, None] * gx + torch.sin(ga)[:, None, None] * gy) * 0.25 * k
    bg = bgc[:, :, None, None] + grad[:, None]
    cv = _Canvas(x, y, bg.expand(n, 3, s, s).clone(), (c[:, 0, 0], sn[:, 0, 0], sc, tx, ty), windowed)

    yaw = 0.22 * q(8)  # yaw-like: features slide sideways, nose most
    skin = _palette(_SKIN, P[:, 0]) * _lerp(P[:, 1], 0.9, 1.1)[:, None]
    hair = _palette(_HAIR, P[:, 2])
    frx, fry = _lerp(P[:, 3], 0.50, 0.72) * (1 - 0.25 * yaw.abs()), _lerp(P[:, 4], 0.66, 0.90)
    fcy = _lerp(P[:, 5], -0.02, 0.10)
    one = torch.ones(n)
    zero = torch.zeros(n)

    if True:  # long hair behind the head for some identities
        long = (P[:, 6] > 0.55).float()
        cv.ellipse(zero + yaw * 0.05, fcy + 0.15 * long, frx * (1.05 + 0.25 * long), fry * (0.75 + 0.35 * long), hair)
    ear_y = fcy + _lerp(P[:, 7], -0.08, 0.08)
    ear_r = _lerp(P[:, 8], 0.07, 0.14)
    for side in (-1.0, 1.0):
        cv.ellipse(side * frx * 0.98 - yaw * 0.1, ear_y, ear_r * 0.7, ear_r * 1.3, skin * 0.92)
    cv.ellipse(yaw * 0.04, fcy, frx, fry, skin)
    hairline = fcy - fry * _lerp(P[:, 9], 0.25, 0.65)
    cv.ellipse(yaw * 0.04, fcy - fry * 0.15, frx * 1.06, fry * _lerp(P[:, 10], 0.95, 1.12), hair, cut=(hairline, 1.0))
    beard = (P[:, 11] > 0.75).float()
    mouth_y = fcy + fry * _lerp(P[:, 12], 0.42, 0.62)
    cv.ellipse(yaw * 0.08, fcy + fry * 0.55, frx * 0.8 * beard + 1e-3, fry * 0.5, hair * 0.9 + skin * 0.1,
               cut=(mouth_y - 0.04, -1.0))

    eye_dx = _lerp(P[:, 13], 0.20, 0.36)
    eye_y = fcy + fry * _lerp(P[:, 14], -0.25, 0.0)
    eye_rx = _lerp(P[:, 15], 0.08, 0.15)
    open_ = _lerp(Q[:, 9], 1 - 0.6 * k, 1.0).clamp(0.25, 1.0)  # expression: blink/squint
    eye_ry = eye_rx * _lerp(P[:, 16], 0.45, 0.8) * open_
    iris = torch.stack([P[:, 17], P[:, 18], P[:, 19]], 1) * 0.5
    iris_r = eye_rx * _lerp(P[:, 20], 0.4, 0.65)
    brow_h = _lerp(P[:, 21], 0.07, 0.14) + 0.03 * q(10)
    brow_t = _lerp(P[:, 22], 0.015, 0.04)
    brow_a = _lerp(P[:, 23], -0.35, 0.35)
    brow_c = hair * 0.7
    white = torch.tensor([0.95, 0.95, 0.92]).expand(n, 3)
    for side in (-1.0, 1.0):
        ex = side * eye_dx + yaw * 0.12
        cv.ellipse(ex, eye_y, eye_rx, eye_ry, white)
        cv.ellipse(ex + 0.3 * eye_rx * q(11), eye_y, iris_r, torch.minimum(iris_r, eye_ry), iris)
        cv.ellipse(ex, eye_y - eye_ry - brow_h, eye_rx * 1.2, brow_t + 0 * one, brow_c, angle=side * brow_a)

    nose_l = _lerp(P[:, 24], 0.10, 0.22)
    nose_w = _lerp(P[:, 25], 0.05, 0.11)
    cv.ellipse(yaw * 0.25, eye_y + nose_l * 1.1, nose_w, nose_l, skin * _lerp(P[:, 26], 0.7, 0.85)[:, None])
    mouth_w = _lerp(P[:, 27], 0.12, 0.26) * (1 + 0.15 * q(12))
    mouth_h = _lerp(P[:, 28], 0.025, 0.06) * (1 + 0.8 * Q[:, 13] * k)
    lip = torch.stack([_lerp(P[:, 29], 0.55, 0.85), _lerp(P[:, 30], 0.2, 0.4), _lerp(P[:, 31], 0.2, 0.4)], 1)
    cv.ellipse(yaw * 0.12, mouth_y, mouth_w, mouth_h, lip, angle=0.15 * q(14))
    glasses = (P[:, 32] > 0.8).float()
    gc = torch.stack([P[:, 33], P[:, 34], P[:, 35]], 1) * 0.3
    for side in (-1.0, 1.0):
        ex = side * eye_dx + yaw * 0.12
        ro = eye_rx * 1.45 * glasses + 1e-3
        cv.ellipse(ex, eye_y, ro, ro * 0.8, gc)
        cv.ellipse(ex, eye_y, ro * 0.85, ro * 0.68, skin * 0.9 + white * 0.1)
        cv.ellipse(ex, eye_y, eye_rx * glasses + 1e-3, eye_ry * glasses + 1e-4, white)
    # moles/freckle: a small identity-specific dark spot
    cv.ellipse(_lerp(P[:, 36], -0.3, 0.3) * frx, fcy + _lerp(P[:, 37], 0.0, 0.4) * fry,
               0.035 * (P[:, 38] > 0.5).float() + 1e-3, 0.035 * one, skin * 0.55)

    img = cv.img
    # lighting: directional gradient, then contrast/brightness
    la = Q[:, 15] * 2 * math.pi
    light = 1 + 0.35 * k * Q[:, 16][:, None, None] * (torch.cos(la)[:, None, None] * gx + torch.sin(la)[:, None, None] * gy)
    img = img * light[:, None]
    contrast = 1 + 0.25 * q(17)
    bright = 0.12 * q(18)
    img = (img - 0.5) * contrast[:, None, None, None] + 0.5 + bright[:, None, None, None]
    tint = 1 + 0.08 * torch.stack([q(19), q(20), q(21)], 1)
    img = img * tint[:, :, None, None]
    # occlusion: a random box of random colour
    occ = (Q[:, 22] < cfg.occlusion_p * min(k, 1.0)).float()
    u = Q[:, 23]
    bx0, by0 = _lerp(u, -0.9, 0.3), _lerp((u * 7.31) % 1, -0.9, 0.3)
    bw, bh = _lerp((u * 3.17) % 1, 0.3, 0.7), _lerp((u * 5.53) % 1, 0.3, 0.7)
    box = ((gx[None] >= bx0[:, None, None]) & (gx[None] <= (bx0 + bw)[:, None, None])
           & (gy[None] >= by0[:, None, None]) & (gy[None] <= (by0 + bh)[:, None, None])).float() * occ[:, None, None]
    occ_c = torch.stack([(u * 11.3) % 1, (u * 13.7) % 1, (u * 17.9) % 1], 1)
    img = img * (1 - box[:, None]) + occ_c[:, :, None, None] * box[:, None]
    # sensor noise from a fixed bank, picked and rolled per image (deterministic, cheap)
    key = (s, cfg.seed)
    if key not in _BANKS:
        _BANKS[key] = _noise_bank(s, cfg.seed)
    bank = _BANKS[key]
    pick = (Q[:, 18] * 997).long() % _NOISE_BANK
    sig = cfg.noise_std * k * (0.3 + Q[:, 19])
    img = img + bank[pick] * sig[:, None, None, None]
    out = (img.clamp_(0, 1) * 255 + 0.5).to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def render(
    identities: np.ndarray | list[int],
    images: np.ndarray | list[int],
    split: str = "train",
    cfg: SynthConfig = SynthConfig(),
    chunk: int = 128,
    windowed: bool = True,
) -> np.ndarray:
    """Render image ``images[i]`` of identity ``identities[i]``: (n, H, W, 3) uint8.
    ``windowed=False``: the whole-canvas reference (the same pixels, slower; render_params)."""
    _check(cfg, split)
    ids = np.asarray(identities, dtype=np.int64)
    ims = np.asarray(images, dtype=np.int64)
    if ids.shape != ims.shape or ids.ndim != 1:
        raise InvalidInput("identities and images must be 1-D arrays of equal length")
    out = np.empty((len(ids), cfg.image_size, cfg.image_size, 3), np.uint8)
    uniq, inv = np.unique(ids, return_inverse=True)
    idp_all = identity_params(uniq, split, cfg.seed)
    with torch.inference_mode():
        for a in range(0, len(ids), chunk):
            b = min(a + chunk, len(ids))
            imp = image_params(ids[a:b], ims[a:b], split, cfg.seed)
            out[a:b] = render_params(idp_all[inv[a:b]], imp, cfg, windowed)
    return out


def render_set(
    n_identities: int,
    per_identity: int,
    split: str = "train",
    cfg: SynthConfig = SynthConfig(),
    first_identity: int = 0,
    first_image: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled set: ``n_identities x per_identity`` images, labels are identity numbers."""
    if n_identities < 1 or per_identity < 1:
        raise InvalidInput("n_identities and per_identity must be >= 1")
    ids = np.repeat(np.arange(first_identity, first_identity + n_identities), per_identity)
    ims = np.tile(np.arange(first_image, first_image + per_identity), n_identities)
    return render(ids, ims, split, cfg), ids
