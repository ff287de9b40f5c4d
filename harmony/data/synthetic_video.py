"""Synthetic "videos": frames of one identity whose pose and light drift slowly, for set verification.

A video of identity ``i`` (video number ``v``) draws one nuisance vector from its own seed
stream ``(seed, split, i, v, 11)`` (disjoint from the still images' streams) and moves its pose
(rotation, scale, shift, yaw) and light (direction, strength, contrast, brightness) parameters
along smooth curves: ``p_j(t) = base_j + A sin(2 pi f_j t / F + phi_j)`` with a random phase and
0.5-1.5 cycles per video, clipped to [0, 1]; everything else (background, expression,
occlusion) stays fixed for the video. The frames are rendered by the still-image renderer
(``harmony.data.synthetic.render_params``), which this module only calls: the still images of
every existing seed, and the embedding cache's key of synthetic sets (the hash of
synthetic.py), are unchanged by it.

``write_videos`` writes ``ROOT/id<identity>/<video>/<frame>.png`` and ``ROOT/pairs.txt`` in the
format ``harmony eval sets`` reads (``SET_A SET_B SAME FOLD``, balanced same/different pairs in
10 folds). Tests: tests/evaluation/test_sets.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmony.data.synthetic import (
    SPLITS,
    SynthConfig,
    _check,
    identity_params,
    render_params,
)
from harmony.errors import InvalidInput
from harmony.progress import ProgressFn, tick

POSE = (0, 1, 2, 3, 8)  # rotation, scale, shift x, shift y, yaw (image-parameter indices)
LIGHT = (15, 16, 17, 18)  # light direction, light strength, contrast, brightness
AMPLITUDE = 0.25  # of each parameter's [0, 1] range
N_FOLDS = 10


def video_params(identity: int, video: int, n_frames: int, split: str = "test", seed: int = 0,
                 amplitude: float = AMPLITUDE) -> np.ndarray:
    """``(n_frames, 24)`` float32 image parameters of one video: pose and light on smooth curves."""
    if n_frames < 1:
        raise InvalidInput(f"a video needs at least 1 frame, got {n_frames}", hint="e.g. --frames 30")
    rng = np.random.default_rng([seed, SPLITS[split], int(identity), int(video), 11])
    base = rng.random(24, dtype=np.float32)
    moving = np.array(POSE + LIGHT)
    freq = rng.uniform(0.5, 1.5, moving.size)
    phase = rng.uniform(0, 2 * np.pi, moving.size)
    t = np.arange(n_frames)[:, None] / max(n_frames, 1)
    q = np.repeat(base[None], n_frames, 0)
    q[:, moving] = np.clip(base[moving] + amplitude * np.sin(2 * np.pi * freq * t + phase), 0.0, 1.0)
    return q.astype(np.float32)


def render_video(identity: int, video: int, n_frames: int, split: str = "test",
                 cfg: SynthConfig | None = None) -> np.ndarray:
    """``(n_frames, H, W, 3)`` uint8 frames of one video (``cfg`` None: the default generator, 64 px)."""
    import torch

    cfg = cfg or SynthConfig()
    _check(cfg, split)
    idp = np.repeat(identity_params(np.array([identity]), split, cfg.seed), n_frames, 0)
    with torch.inference_mode():
        return render_params(idp, video_params(identity, video, n_frames, split, cfg.seed), cfg)


def video_pairs(identities: int, videos: int, n_pairs: int, seed: int = 0,
                n_folds: int = N_FOLDS) -> list[tuple[tuple[int, int], tuple[int, int], bool, int]]:
    """``n_pairs`` distinct pairs of (identity, video), half same identity, half different, each
    fold holding as many of one kind as of the other."""
    if identities < 2 or videos < 2:
        raise InvalidInput(f"set pairs need 2+ identities with 2+ videos each, got {identities} x {videos}",
                           hint="e.g. --identities 20 --videos 2")
    if n_pairs < 2 * n_folds or n_pairs % (2 * n_folds):
        raise InvalidInput(f"--pairs {n_pairs} must be a multiple of {2 * n_folds} (same and different pairs "
                           f"in each of {n_folds} folds)", hint=f"e.g. --pairs {4 * n_folds}")
    half = n_pairs // 2
    rng = np.random.default_rng([seed, 12])
    same = [((i, a), (i, b)) for i in range(identities) for a in range(videos) for b in range(a + 1, videos)]
    diff = [((i, a), (j, b)) for i in range(identities) for j in range(i + 1, identities)
            for a in range(videos) for b in range(videos)]
    if half > len(same) or half > len(diff):
        raise InvalidInput(f"{identities} identities x {videos} videos give {len(same)} same-person pairs, "
                           f"fewer than the {half} asked for", hint="add --identities or --videos, or ask fewer --pairs")
    s = [same[k] for k in rng.choice(len(same), half, replace=False)]
    d = [diff[k] for k in rng.choice(len(diff), half, replace=False)]
    per = half // n_folds
    out = []
    for f in range(n_folds):
        out += [(a, b, True, f) for a, b in s[f * per:(f + 1) * per]]
        out += [(a, b, False, f) for a, b in d[f * per:(f + 1) * per]]
    return out


def write_videos(root: str | Path, identities: int, videos: int, frames: int, n_pairs: int, *,
                 split: str = "test", size: int = 64, seed: int = 0, fmt: str = "png",
                 progress: ProgressFn | None = None) -> Path:
    """Render ``identities x videos`` videos of ``frames`` frames into ``root`` and write
    ``root/pairs.txt``; returns the pairs file's path. Every file is written atomically."""
    from harmony.data.synthetic_folder import encode_image
    from harmony.io import atomic_write_bytes, atomic_write_text

    pairs = video_pairs(identities, videos, n_pairs, seed)  # validate before rendering anything
    cfg = SynthConfig(image_size=size, seed=seed)
    _check(cfg, split)
    root = Path(root)
    total, done = identities * videos * frames, 0
    for i in range(identities):
        for v in range(videos):
            for t, img in enumerate(render_video(i, v, frames, split, cfg)):
                atomic_write_bytes(root / f"id{i:05d}" / f"{v:02d}" / f"{t:04d}.{fmt}", encode_image(img, fmt))
                done += 1
                tick(progress, "writing video frames", done, total, unit="frames")
    lines = [f"# {len(pairs)} pairs of frame folders: SET_A SET_B SAME FOLD (harmony data videos, seed {seed})"]
    lines += [f"id{a[0]:05d}/{a[1]:02d} id{b[0]:05d}/{b[1]:02d} {int(same)} {fold}" for a, b, same, fold in pairs]
    out = root / "pairs.txt"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
