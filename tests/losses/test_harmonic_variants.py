"""The harmonic loss's variants: v1-side positives, the relative-order contrastive loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harmony.losses import harmonic_triplet_loss
from harmony.losses.harmonic import relative_order_loss


def _batch(seed: int, p: int = 4, k: int = 3, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    new = F.normalize(torch.randn(p * k, d, generator=g), dim=1)
    old = F.normalize(torch.randn(p * k, d, generator=g), dim=1)
    return new, old, torch.arange(p).repeat_interleave(k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relative_order_loss_matches_a_loop(seed):
    new, old, y = _batch(seed)
    tau = 0.1
    want = 0.0
    for i in range(len(y)):
        pos = [math.exp(float(new[i] @ old[j]) / tau) for j in range(len(y)) if y[j] == y[i]]
        neg = [math.exp(float(new[i] @ c[j]) / tau) for c in (old, new) for j in range(len(y)) if y[j] != y[i]]
        want += -math.log(sum(pos) / (sum(pos) + sum(neg)))
    assert float(relative_order_loss(new, old, y, tau)) == pytest.approx(want / len(y), rel=1e-5)


def test_relative_order_loss_trains_new_only():
    new, old, y = _batch(3)
    new = new.clone().requires_grad_(True)
    old = old.clone().requires_grad_(True)
    relative_order_loss(new, old, y).backward()
    assert new.grad is not None and new.grad.abs().sum() > 0
    assert old.grad is None  # v1 is frozen: its embeddings are targets


def test_relative_order_loss_is_low_when_v2_lands_on_v1():
    _, old, y = _batch(4)
    centres = F.normalize(torch.eye(8)[:4] * 5 + 0.01 * torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    on = centres[y]
    assert relative_order_loss(on, on, y) < relative_order_loss(old, on, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_old_positives_batch_all_matches_a_loop(seed):
    """positives='old': every triplet is (v2 anchor, v1 positive, v1-or-v2 negative)."""
    new, old, y = _batch(seed)
    m = 0.2
    d = lambda a, b: float(((a - b) ** 2).sum())  # noqa: E731
    losses = []
    for i in range(len(y)):
        for j in range(len(y)):
            if y[j] != y[i]:
                continue
            for c in (new, old):
                for n in range(len(y)):
                    if y[n] != y[i]:
                        v = d(new[i], old[j]) - d(new[i], c[n]) + m
                        if v > 0:
                            losses.append(v)
    got = harmonic_triplet_loss(new, old, y, margin=m, mining="all", positives="old")
    assert float(got) == pytest.approx(sum(losses) / len(losses), rel=1e-4)


def test_positives_old_rejects_both_anchors():
    new, old, y = _batch(6)
    with pytest.raises(ValueError, match="anchors='new'"):
        harmonic_triplet_loss(new, old, y, anchors="both", positives="old")


@pytest.mark.parametrize("seed", [0, 1])
def test_old_negatives_batch_all_matches_a_loop(seed):
    """negatives='old': every triplet is (v2 anchor, v1 positive, v1 negative), a v2 query
    against a v1 gallery; the anchor's own v1 embedding counts as a positive."""
    new, old, y = _batch(seed)
    m = 0.2
    d = lambda a, b: float(((a - b) ** 2).sum())  # noqa: E731
    losses = [v for i in range(len(y)) for j in range(len(y)) if y[j] == y[i]
              for n in range(len(y)) if y[n] != y[i]
              for v in [d(new[i], old[j]) - d(new[i], old[n]) + m] if v > 0]
    got = harmonic_triplet_loss(new, old, y, margin=m, mining="all", positives="old", negatives="old")
    assert float(got) == pytest.approx(sum(losses) / len(losses), rel=1e-4)
    union = harmonic_triplet_loss(new, old, y, margin=m, mining="all", positives="old")
    assert float(union) != pytest.approx(float(got), rel=1e-4)  # v2-side negatives changed something


def test_old_negatives_need_old_positives_in_the_loss_and_the_recipe(tmp_path):
    from harmony.errors import InvalidInput
    from harmony.recipe import load_recipe

    new, old, y = _batch(7)
    with pytest.raises(ValueError, match="needs anchors='new' and positives='old'"):
        harmonic_triplet_loss(new, old, y, negatives="old")
    from pathlib import Path

    import yaml

    d = yaml.safe_load((Path(__file__).resolve().parents[2] / "recipes/harmonic-tiny.yaml").read_text())
    d["harmonic"] |= {"negatives": "old", "positives": "both"}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(InvalidInput, match="harmonic.negatives"):
        load_recipe(p)
    d["harmonic"]["positives"] = "old"
    p.write_text(yaml.safe_dump(d))
    assert load_recipe(p).harmonic.negatives == "old"


def test_centre_offset_sees_identity_shifts_not_per_image_noise():
    from harmony.losses.harmonic import centre_offset

    y = torch.tensor([0, 0, 1, 1, 2, 2])
    old = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    wobble = torch.tensor([1.0, -1.0, 2.0, -2.0, 0.5, -0.5])[:, None] * torch.ones(1, 4)
    assert float(centre_offset(old + wobble, old, y)) == pytest.approx(0.0, abs=1e-6)  # averages out per identity
    shift = torch.zeros(6, 4)
    shift[y == 1, 0] = 0.3
    assert float(centre_offset(old + shift, old, y)) == pytest.approx(0.09 / 3, rel=1e-5)
    new = (old + shift).requires_grad_()
    centre_offset(new, old, y).backward()
    assert new.grad[y != 1].abs().max() == 0 and new.grad[y == 1, 0].gt(0).all()
