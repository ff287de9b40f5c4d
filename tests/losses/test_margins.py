"""SphereFace / CosFace / ArcFace against hand-computed logits at angles where the formulas are
easy, SphereFace's psi and annealing, and the gradient pulling the embedding onto its class."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harmony.losses.margins import (MarginClassifier, MarginParams, margin_logits, margin_loss, sphereface_lambda,
                                    sphereface_psi)

S = 10.0


def at_angle(theta: float) -> torch.Tensor:
    """A unit embedding at angle theta from class 0's weight e1, in the (e1, e2) plane."""
    return torch.tensor([[math.cos(theta), math.sin(theta), 0.0]], dtype=torch.float64)


W = torch.eye(3, dtype=torch.float64)  # class j's weight is e_j
Y0 = torch.tensor([0])


def logits(loss: str, theta: float, margin: float, **kw) -> torch.Tensor:
    return margin_logits(at_angle(theta), W, Y0, MarginParams(loss, S, margin, **kw))[0]


def test_cosface_subtracts_m_from_the_true_cosine_only():
    out = logits("cosface", math.pi / 3, 0.35)
    expect = S * torch.tensor([0.5 - 0.35, math.sin(math.pi / 3), 0.0], dtype=torch.float64)
    torch.testing.assert_close(out.double(), expect, atol=1e-6, rtol=0)


def test_arcface_adds_m_to_the_angle_and_falls_back_past_the_threshold():
    out = logits("arcface", math.pi / 3, 0.5)
    assert float(out[0]) == pytest.approx(S * math.cos(math.pi / 3 + 0.5), abs=1e-5)
    assert float(out[1]) == pytest.approx(S * math.sin(math.pi / 3), abs=1e-5)  # other classes untouched
    # theta + m past pi: cos would rise again; insightface's fix: cos(theta) - m sin(m)
    theta = math.pi - 0.3  # > pi - m
    out = logits("arcface", theta, 0.5)
    assert float(out[0]) == pytest.approx(S * (math.cos(theta) - math.sin(math.pi - 0.5) * 0.5), abs=1e-5)
    # easy margin: no margin where cos(theta) <= 0
    out = logits("arcface", 2 * math.pi / 3, 0.5, easy_margin=True)
    assert float(out[0]) == pytest.approx(S * -0.5, abs=1e-5)


@pytest.mark.parametrize("theta,psi", [(0.0, 1.0), (math.pi / 8, 0.0), (math.pi / 4, -1.0), (math.pi / 2, -3.0),
                                       (3 * math.pi / 4, -5.0), (math.pi, -7.0)])
def test_sphereface_psi_at_easy_angles(theta, psi):
    c = torch.tensor([math.cos(theta)], dtype=torch.float64)
    assert float(sphereface_psi(c, 4)) == pytest.approx(psi, abs=1e-6)


def test_sphereface_psi_is_continuous_and_decreasing_on_0_pi():
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    psi = sphereface_psi(torch.cos(theta), 4)
    d = psi[1:] - psi[:-1]
    assert (d <= 1e-9).all()  # monotone: a larger angle always scores lower
    assert d.abs().max() < 0.02  # no jump at the k pi / m boundaries
    assert (psi <= torch.cos(theta) + 1e-9).all()  # never easier than softmax


def test_sphereface_annealing_blends_cos_and_psi():
    p = MarginParams("sphereface", S, 4.0, lambda_base=1000.0, lambda_gamma=0.12, lambda_power=1.0, lambda_min=5.0)
    assert sphereface_lambda(0, p) == 1000.0
    assert sphereface_lambda(100, p) == pytest.approx(1000 / 13)
    assert sphereface_lambda(10**6, p) == 5.0
    theta = math.pi / 4  # cos = 0.7071, psi = -1
    for step in (0, 10**6):
        lam = sphereface_lambda(step, p)
        out = margin_logits(at_angle(theta), W, Y0, p, step)[0]
        assert float(out[0]) == pytest.approx(S * (lam * math.cos(theta) - 1.0) / (1 + lam), abs=1e-5)
        assert float(out[1]) == pytest.approx(S * math.sin(theta), abs=1e-5)


@pytest.mark.parametrize("loss,m", [("sphereface", 4.0), ("cosface", 0.35), ("arcface", 0.5)])
def test_margin_makes_the_loss_harder_and_its_gradient_pulls_onto_the_class(loss, m):
    g = torch.Generator().manual_seed(0)
    w = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    emb = F.normalize(w[y] + 0.8 * torch.randn(8, 8, generator=g), dim=1).requires_grad_(True)
    p = MarginParams(loss, S, m, lambda_min=0.0, lambda_base=0.0)  # sphereface at full margin
    plain = F.cross_entropy(S * emb @ w.T, y)
    out = margin_loss(emb, w, y, p)
    assert float(out.detach()) > float(plain)  # the margin asks for more than plain softmax
    out.backward()
    before = (emb.detach() * w[y]).sum(1)
    after = (F.normalize(emb.detach() - 0.05 * emb.grad, dim=1) * w[y]).sum(1)
    assert (after > before).all()  # a descent step moves every embedding towards its class weight


def test_classifier_gradient_moves_the_true_row_towards_its_embeddings():
    torch.manual_seed(0)
    clf = MarginClassifier(4, 8, MarginParams("arcface", S, 0.5), seed=1)
    emb = F.normalize(torch.randn(4, 8), dim=1)
    y = torch.arange(4)
    clf(emb, y).backward()
    w = clf.weight.detach()
    after = F.normalize(w - 0.05 * clf.weight.grad, dim=1)
    assert ((after * emb).sum(1) > (F.normalize(w, dim=1) * emb).sum(1)).all()


def test_classifier_size_and_refuses_labels_outside_its_rows():
    clf = MarginClassifier(2000, 128, MarginParams("cosface", S, 0.35))
    assert clf.size() == {"identities": 2000, "dim": 128, "parameters": 256000, "megabytes": 0.977}
    with pytest.raises(ValueError, match="outside the classifier"):
        clf(F.normalize(torch.randn(2, 128), dim=1), torch.tensor([0, 2000]))
    init = F.normalize(torch.randn(2000, 128), dim=1)
    assert torch.equal(MarginClassifier(2000, 128, clf.params, init=init).weight.detach(), init)


@pytest.mark.parametrize("loss", ["cosface", "arcface"])
def test_margin_warmup_ramps_the_margin_from_zero(loss):
    """warmup_steps: no margin at step 0 (the plain scaled cosine), half of it half-way, all of it after."""
    p = MarginParams(loss, S, 0.4, warmup_steps=100)
    x, theta = at_angle(math.pi / 3), math.pi / 3
    at = lambda step: float(margin_logits(x, W, Y0, p, step)[0, 0])  # noqa: E731
    plain = MarginParams(loss, S, 0.0)
    assert at(0) == pytest.approx(float(margin_logits(x, W, Y0, plain)[0, 0]), abs=1e-6)
    assert at(0) == pytest.approx(S * math.cos(theta), abs=1e-6)
    assert at(50) == pytest.approx(float(margin_logits(x, W, Y0, MarginParams(loss, S, 0.2))[0, 0]), abs=1e-6)
    full = float(margin_logits(x, W, Y0, MarginParams(loss, S, 0.4))[0, 0])
    assert at(100) == pytest.approx(full, abs=1e-6) and at(5000) == pytest.approx(full, abs=1e-6)
    assert p.margin_at(25) == pytest.approx(0.1)


def test_sphereface_margin_is_never_ramped():
    assert MarginParams("sphereface", S, 4.0, warmup_steps=100).margin_at(0) == 4.0
