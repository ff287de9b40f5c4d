"""Margin objectives in training: the classifier trains, is checkpointed for resume and never
registered; labels index it for folder data too; a triplet v1 upgrades to an ArcFace v2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.models.loading import load_embedder
from harmony.recipe import recipe_from_dict
from harmony.registry import Registry
from harmony.training.base import train_base
from harmony.training.runs import LAST, run_path
from tests.conftest import MICRO, write_recipe
from tests.training.test_resume import Killed, assert_same_weights, kill_after_first_epoch

ARC = {**MICRO["train"], "loss": "arcface", "margin_loss": {"scale": 16.0}}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_margin_base_resumes_with_its_classifier_and_registers_the_embedder_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = recipe_from_dict({**MICRO, "train": {**ARC, "loss": "sphereface", "epochs": 2,
                                             "margin_loss": {"scale": 16.0, "lambda_gamma": 1.0}}})
    reg_a, reg_b = Registry.open(tmp_path / "a"), Registry.open(tmp_path / "b")
    full = train_base(reg_a, r, "v1")
    assert full.classifier == {"identities": 24, "dim": 16, "parameters": 384, "megabytes": 0.001}
    with monkeypatch.context() as m:
        kill_after_first_epoch(m, "base")
        with pytest.raises(Killed):
            train_base(reg_b, r, "v1")
    ckpt = torch.load(run_path(reg_b, "v1") / "base" / LAST, weights_only=True)
    assert ckpt["state_dict"]["classifier.weight"].shape == (24, 16)  # resumable: the classifier travels
    res = train_base(reg_b, r, "v1")
    assert res.resumed
    assert_same_weights(reg_a, "v1", reg_b, "v1")  # classifier, its Adam state and lambda's step restored
    saved = torch.load(reg_a.artifact_path("v1"), weights_only=True)
    assert not any("classifier" in k for k in saved["state_dict"])  # the registered model: the embedder only
    v = reg_a.get_version("v1")
    assert v.meta["loss"] == "sphereface" and v.meta["classifier"]["registered"] is False
    assert load_embedder(reg_a, "v1").dim == 16


def test_folder_labels_index_the_classifier_rows(tmp_path, monkeypatch):
    from harmony.data.datamodule import FaceDataModule
    from harmony.training import base

    faces = tmp_path / "faces"
    assert invoke("data", "synth", "-n", "30", "-k", "4", "--size", "32", "--out", faces).exit_code == 0
    r = recipe_from_dict({**MICRO, "data": {"source": "folder", "path": str(faces), "image_size": 32,
                                            "split": [0.6, 0.2, 0.2]}, "train": ARC})
    dm = FaceDataModule(r.data, r.train, 0)
    dm.setup("fit")
    seen = {}
    make = base.make_classifier

    def spy(t, labels, dim, seed, init=None):
        seen["clf"] = make(t, labels, dim, seed, init)
        return seen["clf"]

    monkeypatch.setattr(base, "make_classifier", spy)
    base.fit_base(r)
    n_train = len(np.unique(dm.train_labels))
    assert seen["clf"].n_classes == n_train == int(dm.train_labels.max()) + 1  # 0..n-1, one row each
    assert 0 < n_train < 30  # a split: val/test identities have no row


def test_triplet_v1_upgrades_to_an_arcface_v2_end_to_end(tmp_path, micro_recipe, registry_root):
    wide = {"backbone_args": {"widths": [12, 24]}, "dim": 16}
    arc = write_recipe(tmp_path / "arc.yaml", model=wide, train=ARC)
    for name, rec in [("v1", micro_recipe), ("v2-arcface", arc)]:
        r = invoke("train", "base", "--recipe", rec, "--name", name, "--quiet", "--registry", registry_root)
        assert r.exit_code == 0, r.output
    assert "arcface classifier: 24 identities x 16 = 384 parameters" in r.output.replace("\n", " ")
    assert "Partial FC" in r.output
    r = invoke("train", "harmonic", "--from", "v1", "--init", "v2-arcface", "--recipe", arc, "--name", "v2",
               "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output
    reg = Registry.open(registry_root)
    v2 = reg.get_version("v2")
    assert v2.kind == "harmonic" and v2.parent == "v1" and v2.meta["loss"] == "arcface"
    assert v2.meta["classifier"]["identities"] == 24 and reg.compatibility("v2", "v1")
    saved = torch.load(reg.artifact_path("v2"), weights_only=True)
    assert not any("classifier" in k for k in saved["state_dict"])
    # a margin-trained version is a normal one: it can be the v1 of the next upgrade
    r = invoke("train", "harmonic", "--from", "v2", "--init", "v2-arcface", "--recipe", micro_recipe,
               "--name", "v3", "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output


def test_margin_harmonic_objective_adds_the_margin_loss_to_the_harmonic_term():
    from harmony.losses import harmonic_triplet_loss
    from harmony.losses.margins import margin_loss
    from harmony.training.base import make_classifier
    from harmony.training.harmonic import make_objective

    r = recipe_from_dict({**MICRO, "train": ARC, "harmonic": {**MICRO["harmonic"], "margin_weight": 0.5}})
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(4)
    old = torch.nn.functional.normalize(torch.randn(16, 16, generator=g), dim=1)
    new = torch.nn.functional.normalize(torch.randn(16, 16, generator=g), dim=1)
    protos = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    clf = make_classifier(r.train, y.numpy(), 16, 0, init=protos)
    assert torch.equal(clf.weight.detach(), protos)  # rows start at v1's prototypes

    class Module:
        classifier, global_step = clf, 0

    got = make_objective(r, old, protos)(Module(), {"idx": torch.arange(16), "y": y}, new)
    h = r.harmonic
    want = harmonic_triplet_loss(new, old, y, r.train.margin, r.train.mining, h.anchors, protos[y],
                                 h.prototype_weight, h.positives) + 0.5 * margin_loss(new, protos, y, clf.params)
    torch.testing.assert_close(got, want)



class _Step(torch.nn.Module):
    """Embedder + classifier, the loss computed inside forward as Lightning's DDP wrapper does it."""

    def __init__(self, model, classifier):
        super().__init__()
        self.model, self.classifier = model, classifier

    def forward(self, x, batch):
        from harmony.training.distributed import global_batch

        gb, emb = global_batch(batch, self.model(x))
        return self.classifier(emb, gb["y"])


def _arcface_step(rank: int, world: int) -> dict:
    """One Adam step of ArcFace (embedder + classifier under DDP) on this rank's share of a batch."""
    from torch.nn.parallel import DistributedDataParallel

    from harmony.data.sampler import PKBatchSampler
    from harmony.data.splits import synthetic_split
    from harmony.models.embedder import Embedder
    from harmony.training.base import make_classifier
    from harmony.training.distributed import GlobalBatchNorm
    from harmony.training.runner import spec_from_recipe
    from tests.training.test_ddp import K, P

    recipe = recipe_from_dict({**MICRO, "train": {**ARC, "p": P, "k": K}})
    train = synthetic_split(recipe.data, "train")
    idx = next(iter(PKBatchSampler(train.labels, P, K, steps=1, seed=3, rank=rank, num_replicas=world)))
    x = torch.from_numpy(train.images[idx]).permute(0, 3, 1, 2).float().div(255)
    batch = {"y": torch.as_tensor(train.labels[idx]), "idx": torch.as_tensor(idx)}
    torch.manual_seed(0)
    step = _Step(Embedder(spec_from_recipe(recipe)).train(), make_classifier(recipe.train, train.labels, 16, 0))
    net = step
    if world > 1:
        GlobalBatchNorm().apply(step.model)
        net = DistributedDataParallel(step)
    opt = torch.optim.Adam(step.parameters(), lr=0.01)
    loss = net(x, batch)
    loss.backward()
    opt.step()
    GlobalBatchNorm().revert(step.model)
    return {"loss": loss.item(), "state": {k: v.clone() for k, v in step.state_dict().items()}}


def _arcface_worker(rank: int, world: int, folder: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        torch.save(_arcface_step(rank, world), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_arcface_step_over_two_gloo_processes_equals_one_process(tmp_path):
    """The classifier sees the global batch on every rank: the same gradient everywhere, so DDP's
    average is the single-process step, for the classifier and the embedder alike."""
    import torch.multiprocessing as mp

    mp.start_processes(_arcface_worker, args=(2, str(tmp_path)), nprocs=2, start_method="spawn")
    ref = _arcface_step(0, 1)
    assert ref["loss"] > 0
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)
        assert "classifier.weight" in ref["state"]
        for k, v in ref["state"].items():
            torch.testing.assert_close(got["state"][k], v, rtol=1e-4, atol=1e-5, msg=f"{k} differs (rank {rank})")


def test_classifier_trains_at_its_own_learning_rate_multiple():
    """margin_loss.classifier_lr_mult: the classifier's optimiser group runs at train.lr x mult
    (and the schedule scales both groups alike); the embedder's group stays at train.lr."""
    from dataclasses import replace

    from harmony.losses.margins import MarginClassifier, MarginParams
    from harmony.models.embedder import Embedder, EmbedderSpec
    from harmony.recipe import MarginLossSpec, TrainSpec
    from harmony.training.base import margin_objective
    from harmony.training.module import EmbeddingModule

    t = replace(TrainSpec(), loss="arcface", lr=1e-3, margin_loss=MarginLossSpec(classifier_lr_mult=10.0))
    model = Embedder(EmbedderSpec(dim=8, image_size=32, backbone_args={"widths": [4, 4, 4, 4]}))
    clf = MarginClassifier(5, 8, MarginParams("arcface", 30.0, 0.5))
    opt = EmbeddingModule(model, t, margin_objective, total_steps=10, classifier=clf).configure_optimizers()["optimizer"]
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3), pytest.approx(1e-2)]
    assert opt.param_groups[1]["params"][0] is clf.weight
