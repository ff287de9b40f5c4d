"""Every mining strategy against a naive loop over explicit triplets (FaceNet / TF semantics)."""

import itertools

import numpy as np
import pytest
import torch

from harmony.distances import pairwise_sq_l2
from harmony.losses import harmonic_triplet_loss, triplet_loss
from harmony.losses.triplet import mined_triplet_loss


def naive(anchors, cands, la, lc, exclude, margin, mining):
    d = ((anchors[:, None, :] - cands[None, :, :]) ** 2).sum(-1).double().numpy()
    terms, all_terms = [], []
    for a in range(len(anchors)):
        negs = [n for n in range(len(cands)) if lc[n] != la[a]]
        for p in range(len(cands)):
            if lc[p] != la[a] or exclude[a, p] or not negs:
                continue
            dap = d[a, p]
            if mining == "semihard":
                outside = [d[a, n] for n in negs if d[a, n] > dap]
                dan = min(outside) if outside else max(d[a, n] for n in negs)
                terms.append(max(dap - dan + margin, 0.0))
            elif mining == "hard":
                terms.append(max(dap - min(d[a, n] for n in negs) + margin, 0.0))
            else:
                all_terms += [dap - d[a, n] + margin for n in negs if dap - d[a, n] + margin > 0]
    if mining == "all":
        return sum(all_terms) / len(all_terms) if all_terms else 0.0
    return float(np.mean(terms)) if terms else 0.0


def batch(n_ids, k, d=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    e = torch.nn.functional.normalize(torch.randn(n_ids * k, d, generator=g, dtype=dtype), dim=1)
    return e, torch.arange(n_ids).repeat_interleave(k)


@pytest.mark.parametrize("mining", ["semihard", "hard", "all"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5), (6, 2), (3, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_naive(mining, shape, dtype):
    e, y = batch(*shape, seed=shape[0] * 10 + shape[1], dtype=dtype)
    got = triplet_loss(e, y, 0.2, mining).item()
    want = naive(e, e, y, y, np.eye(len(y), dtype=bool), 0.2, mining)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_semihard_fallback_when_no_negative_is_farther():
    # identity 0 spread wide, identity 1 packed next to anchor 0: no negative beyond D(a,p)
    e = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.99, 0.14], [0.98, 0.2]])
    e = torch.nn.functional.normalize(e, dim=1)
    y = torch.tensor([0, 0, 1, 1])
    want = naive(e, e, y, y, np.eye(4, dtype=bool), 0.2, "semihard")
    assert triplet_loss(e, y).item() == pytest.approx(want, rel=1e-6)
    assert want > 0.2  # the fallback (largest negative) still leaves a violated margin


def test_single_identity_gives_zero_connected_loss():
    e, y = batch(1, 6)
    e.requires_grad_(True)
    for m in ["semihard", "hard", "all"]:
        loss = triplet_loss(e, y, mining=m)
        assert loss.item() == 0.0
        loss.backward()  # still differentiable: a training step does not crash


def test_gradients_match_naive_autograd():
    e, y = batch(3, 3, seed=5, dtype=torch.float64)
    e1 = e.clone().requires_grad_(True)
    triplet_loss(e1, y, 0.2, "semihard").backward()
    # reference gradient: explicit triplets chosen by the naive rule, autograd through them
    e2 = e.clone().requires_grad_(True)
    d = pairwise_sq_l2(e2, e2)
    dd = d.detach().numpy()
    terms = []
    for a, p in itertools.permutations(range(len(y)), 2):
        if y[a] != y[p]:
            continue
        negs = [n for n in range(len(y)) if y[n] != y[a]]
        out = [n for n in negs if dd[a, n] > dd[a, p]]
        n = min(out, key=lambda n: dd[a, n]) if out else max(negs, key=lambda n: dd[a, n])
        terms.append((d[a, p] - d[a, n] + 0.2).clamp_min(0))
    torch.stack(terms).mean().backward()
    assert torch.allclose(e1.grad, e2.grad, atol=1e-10)


def test_harmonic_matches_naive_union():
    new, y = batch(3, 3, seed=1)
    old, _ = batch(3, 3, seed=2)
    b = len(y)
    cands = torch.cat([new, old])
    lc = torch.cat([y, y])
    excl = np.zeros((b, 2 * b), bool)
    excl[np.arange(b), np.arange(b)] = True
    want = naive(new, cands, y, lc, excl, 0.2, "semihard")
    assert harmonic_triplet_loss(new, old, y).item() == pytest.approx(want, rel=1e-5)
    both = naive(cands, cands, lc, lc, np.eye(2 * b, dtype=bool), 0.2, "semihard")
    assert harmonic_triplet_loss(new, old, y, anchors="both").item() == pytest.approx(both, rel=1e-5)


def test_harmonic_gradient_pulls_v2_towards_v1_structure():
    """Toy case: v1 places identities on opposite poles; v2 starts scrambled. A few gradient
    steps on the harmonic loss move v2 embeddings onto v1's identity structure (cross-version
    same-identity distances shrink, cross-version different-identity distances grow)."""
    y = torch.tensor([0, 0, 1, 1])
    old = torch.tensor([[1.0, 0.0], [0.98, 0.2], [-1.0, 0.0], [-0.98, -0.2]])
    old = torch.nn.functional.normalize(old, dim=1)
    raw = torch.tensor([[0.1, 1.0], [-0.1, 1.0], [0.1, -1.0], [0.0, 1.0]], requires_grad=True)

    def cross_gap(v2):
        d = pairwise_sq_l2(v2, old)
        same = y[:, None] == y[None, :]
        return (d[same].mean() - d[~same].mean()).item()

    before = cross_gap(torch.nn.functional.normalize(raw, dim=1).detach())
    opt = torch.optim.SGD([raw], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        harmonic_triplet_loss(torch.nn.functional.normalize(raw, dim=1), old, y, margin=0.5).backward()
        opt.step()
    after = cross_gap(torch.nn.functional.normalize(raw, dim=1).detach())
    assert after < before - 1.0


def test_prototype_pull_adds_weighted_distance():
    new, y = batch(2, 2, seed=3)
    old, _ = batch(2, 2, seed=4)
    protos = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    base = harmonic_triplet_loss(new, old, y).item()
    got = harmonic_triplet_loss(new, old, y, prototypes=protos, prototype_weight=3.0).item()
    assert got == pytest.approx(base + 3.0 * ((new - protos) ** 2).sum(1).mean().item(), rel=1e-5)


def test_memory_is_quadratic_at_facenet_batch():
    """B = 1,800 (45 x 40, the paper's batch) runs; a cube of triplets would need ~23 GB."""
    e, y = batch(45, 40, d=128, seed=0)
    e.requires_grad_(True)
    loss = triplet_loss(e, y)
    loss.backward()
    assert torch.isfinite(loss) and e.grad is not None


def test_unknown_mining_is_an_error():
    e, y = batch(2, 2)
    with pytest.raises(ValueError, match="mining"):
        mined_triplet_loss(e, e, y, y, mining="random")
