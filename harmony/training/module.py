"""The LightningModule: one embedder, one objective, one optimiser schedule.

The objective is a plain function ``(module, batch) -> loss`` so base (triplet or a margin loss)
and harmonic training share everything else. A margin objective's classifier (one row per
training identity) is a submodule here, not of the embedder: Lightning's checkpoint carries it
(and its optimiser state) for resume, the registered model never does. ``trainable="head"`` freezes the backbone (BatchNorm included) and
trains only the embedding layer, as harmonic stage 1 does. Its checkpoints carry the stage and
the per-epoch history, so a resumed stage reports every epoch.

Under DDP each rank embeds its share of the P x K batch and the objective sees the global batch
(``distributed.global_batch``): mining runs over every rank's embeddings, gradients flow to the
local rows, and the loss each rank logs is the single-process loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from harmony.errors import InvalidInput
from harmony.models.embedder import Embedder
from harmony.recipe import TrainSpec
from harmony.training.distributed import global_batch, maybe_die

Objective = Callable[["EmbeddingModule", dict, torch.Tensor], torch.Tensor]


def make_optimizer(params, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> torch.optim.Optimizer:
    if name == "adagrad":  # FaceNet's choice
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}")


def lr_lambda(schedule: str, total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            t = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t))
        if schedule == "step":
            return 0.1 ** int(3 * step / max(total, 1))
        return 1.0

    return f


def cached_rows(cache: torch.Tensor | tuple, idx: torch.Tensor, device) -> torch.Tensor | tuple:
    """A batch's rows of a feature cache (a tensor, or a tuple of them for a v1-branched body), float32."""
    if isinstance(cache, tuple):
        return tuple(cached_rows(c, idx, device) for c in cache)
    return cache[idx.cpu()].to(device, torch.float32)


class EmbeddingModule(L.LightningModule):
    def __init__(self, model: Embedder, train: TrainSpec, objective: Objective, total_steps: int,
                 lr: float | None = None, trainable: str = "all", val_images: np.ndarray | None = None,
                 val_labels: np.ndarray | None = None, val_far: float = 1e-3,
                 feature_cache: torch.Tensor | tuple | None = None, frozen_stages: int = 0,
                 classifier: torch.nn.Module | None = None):
        super().__init__()
        self.model, self.spec, self.objective = model, train, objective
        self.classifier = classifier  # training-only (margin losses); trained with the same optimiser
        self.total_steps, self.lr = total_steps, lr if lr is not None else train.lr
        self.trainable = trainable
        self.val_images, self.val_labels, self.val_far = val_images, val_labels, val_far
        self.history: list[dict] = []
        # head-only training on a frozen body without augmentation: backbone features of every
        # training image are computed once, so a step costs one linear layer
        # the same for a partly frozen body (``frozen_stages`` leading stages, trainable="all"):
        # the cache then holds those stages' output and a step runs only the rest of the net
        self.feature_cache = feature_cache
        self.frozen_stages = frozen_stages if trainable == "all" else 0
        if trainable == "head":
            for p in self.model.body.parameters():
                p.requires_grad_(False)
        if self.frozen_stages:
            for p in self.model.lower_stages(self.frozen_stages).parameters():
                p.requires_grad_(False)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps whatever mode a module arrives in (a loaded model is in eval mode)
        self.model.train()
        if self.trainable == "head":
            self.model.body.eval()  # frozen BatchNorm statistics
        if self.frozen_stages:
            self.model.lower_stages(self.frozen_stages).eval()

    def embed(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        if self.trainable == "head" and self.feature_cache is not None and idx is not None:
            return self.model.embed_features(self.feature_cache[idx.cpu()].to(self.device))
        if self.trainable == "head":
            with torch.no_grad():
                f = self.model.features(x)
            return self.model.embed_features(f)
        if self.frozen_stages:
            n = self.frozen_stages
            if self.feature_cache is not None and idx is not None:
                z = cached_rows(self.feature_cache, idx, self.device)
            else:
                with torch.no_grad():
                    z = self.model.lower_features(x, n)
            return self.model.embed_features(self.model.upper_features(z, n))
        return self.model(x)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        maybe_die(self.global_rank, self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        emb = self.embed(batch["x"], batch.get("idx"))
        batch, emb = global_batch(batch, emb)
        loss = self.objective(self, batch, emb)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(emb))
        return loss

    def on_train_epoch_end(self) -> None:
        if self.val_images is None or self.trainer.sanity_checking:
            return
        from harmony.metrics import val_at_far
        from harmony.models.encode import encode_array

        emb = encode_array(self.model, self.val_images, device=str(self.device))
        r = val_at_far(emb, self.val_labels, far=self.val_far)
        self.log("val/val_at_far", r.val, prog_bar=True)
        self.history.append({"epoch": self.current_epoch, "step": self.global_step, "val": r.val,
                             "processes": self.trainer.world_size,
                             "loss": float(self.trainer.callback_metrics.get("train/loss_epoch", float("nan")))})

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["harmony"] = {"trainable": self.trainable, "history": list(self.history)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed stage continues its own history; a checkpoint of another stage (head-only vs
        whole net) is refused."""
        saved = checkpoint.get("harmony", {})
        if saved.get("trainable") != self.trainable:
            raise InvalidInput(f"a checkpoint of the {saved.get('trainable')!r} stage cannot resume the "
                               f"{self.trainable!r} stage",
                               hint="pass --no-resume to start the run over")
        self.history = list(saved["history"])

    def configure_optimizers(self):
        t = self.spec
        params: list[dict] = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        if self.classifier is not None:
            params.append({"params": list(self.classifier.parameters()),
                           "lr": self.lr * t.margin_loss.classifier_lr_mult})
        opt = make_optimizer(params, t.optimizer, self.lr, t.weight_decay, t.momentum)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.schedule, self.total_steps, t.warmup_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
