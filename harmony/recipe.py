"""YAML recipes loaded into typed, frozen dataclasses; every knob of a run lives here.

Validation is strict: an unknown or misspelled key, a wrong type or a value outside its allowed set
is an error naming the full key (``train.mining``) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from harmony.errors import InvalidInput, NotFound
from harmony.metrics.fars import DEFAULT_FARS, check_fars


@dataclass(frozen=True)
class DataSpec:
    source: Literal["synthetic", "folder"] = "synthetic"
    image_size: int = 64
    # synthetic source
    train_identities: int = 2000
    per_identity: int = 8
    val_identities: int = 200
    test_identities: int = 300
    eval_per_identity: int = 8
    synth_seed: int = 0
    # folder source
    path: Optional[str] = None
    eval_path: Optional[str] = None  # a separate held-out folder; else split by identity hash
    split: tuple[float, float, float] = (0.8, 0.05, 0.15)
    min_images: int = 2
    num_workers: int = 0


@dataclass(frozen=True)
class ModelSpec:
    backbone: str = "small_cnn"
    backbone_args: dict = field(default_factory=dict)
    dim: int = 128
    dropout: float = 0.0


@dataclass(frozen=True)
class MarginLossSpec:
    """The margin-softmax objectives' knobs (``train.loss`` sphereface/cosface/arcface; see
    harmony/losses/margins.py). ``scale``/``margin`` None take the loss's paper value: s 30/64/64,
    m 4 (SphereFace, an integer: multiplicative) / 0.35 (CosFace, on the cosine) / 0.5 (ArcFace,
    radians on the angle). The lambda keys are SphereFace's annealing,
    lambda = max(lambda_min, lambda_base (1 + lambda_gamma step)^-lambda_power)."""

    scale: Optional[float] = None
    margin: Optional[float] = None
    easy_margin: bool = False  # ArcFace: keep cos(theta) where cos(theta) <= 0 instead of insightface's threshold
    lambda_base: float = 1000.0
    lambda_gamma: float = 0.12
    lambda_power: float = 1.0
    lambda_min: float = 5.0
    # CosFace/ArcFace: the margin grows linearly from 0 to ``margin`` over the first steps, so the
    # rows of a classifier that starts random are not asked for a margin before they point anywhere
    warmup_steps: int = 0
    # the classifier's learning rate as a multiple of train.lr: each row gets a positive gradient
    # only when its identity is in the batch (6% of the steps at 128 of 2,000 identities)
    classifier_lr_mult: float = 1.0


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 6
    steps_per_epoch: int = 100
    p: int = 32
    k: int = 8
    optimizer: Literal["adagrad", "adam", "adamw", "sgd"] = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: Literal["none", "cosine", "step"] = "cosine"
    warmup_steps: int = 0
    loss: Literal["triplet", "sphereface", "cosface", "arcface"] = "triplet"  # the margin ones train a classifier
    margin_loss: MarginLossSpec = field(default_factory=MarginLossSpec)
    margin: float = 0.2  # the triplet loss's (also the harmonic triplet term's)
    mining: Literal["semihard", "hard", "all"] = "semihard"
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "auto"] = "32-true"  # auto: training/precision.py
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    sync_batchnorm: bool | None = None  # BatchNorm over the global batch; None = on when > 1 process trains
    log_every: int = 20
    hflip: bool = False


@dataclass(frozen=True)
class HarmonicSpec:
    method: Literal["harmonic", "bct"] = "harmonic"
    anchors: Literal["new", "both"] = "new"
    positives: Literal["both", "old"] = "both"  # where a v2 anchor's positives come from (old = v1 side only)
    negatives: Literal["both", "old"] = "both"  # and its negatives (old: v1 side only, every triplet cross-version)
    loss: Literal["triplet", "ract"] = "triplet"  # ract: relative-order contrastive (hot-refresh upgrades)
    ract_tau: float = 0.05
    frozen_stages: int = 0  # stage 2 keeps this many leading body stages frozen (their output is cached)
    prototype_weight: float = 16.0  # 0 = the paper's triplet-only harmonic loss
    centre_weight: float = 0.0  # x ||mean v2 - mean v1||^2 per identity of a batch (losses/harmonic.centre_offset)
    margin_weight: float = 1.0  # with a margin train.loss: weight of that loss on v2 next to the harmonic term
    prototype_renders: int = 6  # v1 images per training identity averaged into its prototype
    bct_weight: float = 1.0
    bct_scale: float = 16.0
    head_steps: int = 200  # stage 1: new embedding layer only, body frozen
    head_lr: float = 2e-3
    full_steps: int = 400  # stage 2: the whole network (0 = skip)
    full_lr: float = 5e-4
    reinit_head: bool = True
    # v2 carries v1's body as a frozen branch beside the init model's; its head starts as v1's
    # (models/branched.py): far better cross-version queries, at v1's cost added to every embedding
    v1_branch: bool = False


@dataclass(frozen=True)
class TransformSpec:
    """``harmony train transform``: h maps v1 embeddings into v2's space (models/transform.py)."""

    hidden: int = 0  # width of the MLP's hidden layers; 0 = twice the output dim
    blocks: int = 1  # hidden layers of the residual MLP; 0 = the linear map alone
    norm: Literal["none", "layer", "batch"] = "none"  # after each hidden layer (batch: P x K batch statistics)
    init: Literal["lstsq", "random"] = "lstsq"  # linear part starts at the least-squares fit of v2 on v1
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: Literal["none", "cosine"] = "cosine"
    p: int = 64  # identities per batch
    k: int = 4  # images per identity
    l2_weight: float = 1.0  # FCT's loss: mean ||h(v1(x)) - v2(x)||^2
    triplet_weight: float = 0.0  # triplet loss over h(v1) and v2 embeddings of the batch (losses/harmonic.py)
    loss: Literal["triplet", "sphereface", "cosface", "arcface"] = "triplet"  # the margin ones train a classifier
    margin_loss: MarginLossSpec = field(default_factory=MarginLossSpec)
    margin: float = 0.2  # the triplet loss's (also the harmonic triplet term's)
    mining: Literal["semihard", "hard", "all"] = "semihard"
    anchors: Literal["new", "both"] = "both"  # triplet anchors: h(v1) only, or h(v1) and v2
    eval_every: int = 0  # > 0: score on the VAL identities every N steps and keep the best h


@dataclass(frozen=True)
class EvalSpec:
    fars: tuple[float, ...] = DEFAULT_FARS
    batch_size: int = 512


@dataclass(frozen=True)
class Recipe:
    name: str = "unnamed"
    description: str = ""
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    harmonic: HarmonicSpec = field(default_factory=HarmonicSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def override(self, **paths: Any) -> "Recipe":
        """Return a copy with dotted keys replaced, e.g. ``override(**{"train.epochs": 2})``."""
        return recipe_from_dict(_overridden(self.to_dict(), paths))


@dataclass(frozen=True)
class TransformRecipe:
    """A ``harmony train transform`` recipe: the labelled data both versions embed, h's knobs,
    the FARs of the recorded table. No model/train section: the two versions exist already."""

    name: str = "unnamed"
    description: str = ""
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    transform: TransformSpec = field(default_factory=TransformSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def override(self, **paths: Any) -> "TransformRecipe":
        """Return a copy with dotted keys replaced, e.g. ``override(**{"transform.steps": 100})``."""
        return transform_recipe_from_dict(_overridden(self.to_dict(), paths))


def _overridden(d: dict, paths: dict[str, Any]) -> dict:
    for key, value in paths.items():
        if value is None:
            continue
        node = d
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        if last not in node:
            raise InvalidInput(f"unknown recipe key {key!r}")
        node[last] = value
    return d


def with_sets(recipe: Recipe | TransformRecipe, sets: Sequence[str]) -> Recipe | TransformRecipe:
    """Apply ``--set KEY=VALUE`` overrides (``model.dim=64``, ``eval.fars=[0.01,0.001]``) and
    validate the result exactly as a recipe file: VALUE is read as a YAML scalar or list, KEY is a
    dotted recipe key (new keys only inside free mappings such as ``model.backbone_args``).
    Raises InvalidInput naming the key and the fix; returns the recipe unchanged for no sets."""
    if not sets:
        return recipe
    d = recipe.to_dict()
    for item in sets:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise InvalidInput(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set model.dim=64")
        if not text.strip():
            raise InvalidInput(f"--set {key}= has no value", hint=f"give one, e.g. --set {key}=VALUE (null for none)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidInput(f"--set {key}: {text!r} is not a YAML value: {str(e).splitlines()[0]}",
                               hint="quote strings, write lists as [a, b]") from None
        _set_path(d, type(recipe), key, value)
    build = recipe_from_dict if isinstance(recipe, Recipe) else transform_recipe_from_dict
    try:
        return build(d)
    except InvalidInput as e:
        raise InvalidInput(f"--set {' '.join(sets)}: {e.message}", e.hint) from None


def _set_path(d: dict, cls: type, key: str, value: Any) -> None:
    """Set a dotted key in a recipe's dict, walking the dataclasses so an unknown key is refused
    with the keys allowed where it went wrong."""
    node, tp, where = d, cls, []
    parts = key.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp):
            names = [f.name for f in dataclasses.fields(tp)]
            if part not in names:
                at = ".".join(where) or "the top level"
                raise InvalidInput(f"--set {key}: unknown recipe key {'.'.join(where + [part])!r}",
                                   hint=f"keys at {at}: {', '.join(names)}")
            tp = typing.get_type_hints(tp)[part]
        elif tp is dict or tp is None:
            tp = None  # inside a free mapping (model.backbone_args): any key
        else:
            raise InvalidInput(f"--set {key}: recipe key {'.'.join(where)!r} is a value, not a section",
                               hint=f"set it whole: --set {'.'.join(where)}=VALUE")
        where.append(part)
        if last:
            node[part] = value
            return
        if not isinstance(node.get(part), dict):
            if tp is dict or tp is None:
                node[part] = {}
            else:
                raise InvalidInput(f"--set {key}: recipe key {'.'.join(where)!r} is a value, not a section",
                                   hint=f"set it whole: --set {'.'.join(where)}=VALUE")
        node = node[part]


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise InvalidInput(f"recipe key {key!r} is {value!r}", hint=f"allowed values: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise InvalidInput(f"recipe key {key!r} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise InvalidInput(f"recipe key {key!r} must have {len(args)} entries, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is dict:
        if not isinstance(value, dict):
            raise InvalidInput(f"recipe key {key!r} must be a mapping, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"recipe key {key!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"recipe key {key!r} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-3" as a string
            try:
                value = float(value)
            except ValueError:
                raise InvalidInput(f"recipe key {key!r} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(f"recipe key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InvalidInput(f"recipe key {key!r} must be a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"recipe section {prefix or 'root'!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in names:
            where = f"{prefix}.{k}" if prefix else k
            raise InvalidInput(f"unknown recipe key {where!r}", hint=f"allowed keys here: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    return cls(**kwargs)


def _fars_ok(fars: tuple[float, ...]) -> bool:
    """The one FAR rule (harmony.metrics.fars), worded as a recipe key error by the caller."""
    try:
        check_fars(fars, unique=False)
    except InvalidInput:
        return False
    return True


def _data_checks(r: Recipe | TransformRecipe) -> list[tuple[bool, str, str]]:
    return [
        (16 <= r.data.image_size <= 1024, "data.image_size", "must be in 16..1024"),
        (r.data.train_identities >= 2 and r.data.val_identities >= 2 and r.data.test_identities >= 2,
         "data.train_identities/val_identities/test_identities", "must each be >= 2"),
        (r.data.per_identity >= 2 and r.data.eval_per_identity >= 2, "data.per_identity/eval_per_identity",
         "must both be >= 2"),
        (r.data.min_images >= 1, "data.min_images", "must be >= 1"),
        (r.data.num_workers >= 0, "data.num_workers", "must be >= 0"),
        (r.eval.batch_size >= 1, "eval.batch_size", "must be >= 1"),
        (_fars_ok(r.eval.fars), "eval.fars", "each FAR must be in (0, 1]"),
        (abs(sum(r.data.split) - 1) < 1e-6, "data.split", "fractions must sum to 1"),
        (r.data.source != "folder" or bool(r.data.path), "data.path", "is required when data.source is folder"),
    ]


def _devices_ok(devices: Any) -> bool:
    if isinstance(devices, bool):
        return False
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    if isinstance(devices, str):
        return devices == "auto" or devices.strip().lstrip("-").isdigit()
    return isinstance(devices, list) and len(devices) > 0 and all(isinstance(d, int) and d >= 0 for d in devices)


def requested_processes(devices: Any, num_nodes: int = 1) -> int | None:
    """Training processes a recipe asks for (devices x nodes); None when Lightning decides
    (devices auto or -1)."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int) and devices > 0:
        return devices * num_nodes
    if isinstance(devices, (list, tuple)):
        return len(devices) * num_nodes
    if isinstance(devices, str) and devices.strip().isdigit() and int(devices) > 0:
        return int(devices) * num_nodes
    return None


def _world(t: TrainSpec) -> int:
    return requested_processes(t.devices, t.num_nodes) or 1


def _p_splits(t: TrainSpec) -> bool:
    """Each rank takes P / world whole identities of the global P x K batch."""
    return t.p % _world(t) == 0


def _raise_first(checks: list[tuple[bool, str, str]]) -> None:
    for ok, key, msg in checks:
        if not ok:
            raise InvalidInput(f"recipe key {key!r} {msg}")


def _validate(r: Recipe) -> Recipe:
    checks = _data_checks(r) + [
        (2 <= r.model.dim <= 4096, "model.dim", "must be in 2..4096"),
        (0.0 <= r.model.dropout < 1.0, "model.dropout", "must be in [0, 1)"),
        (r.train.weight_decay >= 0, "train.weight_decay", "must be >= 0"),
        (0.0 <= r.train.momentum < 1.0, "train.momentum", "must be in [0, 1)"),
        (r.train.warmup_steps >= 0, "train.warmup_steps", "must be >= 0"),
        (r.train.log_every >= 1, "train.log_every", "must be >= 1"),
        (r.train.num_nodes >= 1, "train.num_nodes", "must be >= 1"),
        (_devices_ok(r.train.devices), "train.devices", "must be auto, a positive integer, -1 or a list of device ids"),
        (_p_splits(r.train), "train.p", (f"is {r.train.p}, which the {_world(r.train)} training processes "
                                         "(train.devices x train.num_nodes) cannot share as whole identities: "
                                         "make it a multiple of them")),
        (r.data.source != "synthetic" or r.train.k <= r.data.per_identity, "train.k",
         f"is {r.train.k} but data.per_identity renders only {r.data.per_identity} images per identity"),
        (r.harmonic.prototype_weight >= 0 and r.harmonic.bct_weight >= 0, "harmonic.prototype_weight/bct_weight",
         "must be >= 0"),
        (r.harmonic.centre_weight >= 0, "harmonic.centre_weight", "must be >= 0"),
        (r.harmonic.bct_scale > 0, "harmonic.bct_scale", "must be > 0"),
        (r.harmonic.head_lr > 0 and r.harmonic.full_lr > 0, "harmonic.head_lr/full_lr", "must be > 0"),
        (r.train.p >= 2 and r.train.k >= 2, "train.p/train.k", "must both be >= 2"),
        (r.train.epochs >= 1, "train.epochs", "must be >= 1"),
        (r.train.steps_per_epoch >= 1, "train.steps_per_epoch", "must be >= 1"),
        (r.train.lr > 0, "train.lr", "must be > 0"),
        (r.train.margin >= 0, "train.margin", "must be >= 0"),
        (r.harmonic.head_steps >= 0 and r.harmonic.full_steps >= 0, "harmonic.head_steps/full_steps", "must be >= 0"),
        (r.harmonic.head_steps + r.harmonic.full_steps > 0, "harmonic.head_steps/full_steps", "need at least one step"),
        (r.harmonic.prototype_renders >= 1, "harmonic.prototype_renders", "must be >= 1"),
        (r.harmonic.ract_tau > 0, "harmonic.ract_tau", "must be > 0"),
        (r.harmonic.negatives == "both" or (r.harmonic.positives == "old" and r.harmonic.anchors == "new"),
         "harmonic.negatives",
         "old needs harmonic.positives: old and harmonic.anchors: new (v2 anchors, v1 positives)"),
        (r.harmonic.frozen_stages >= 0, "harmonic.frozen_stages", "must be >= 0"),
        (r.harmonic.margin_weight >= 0, "harmonic.margin_weight", "must be >= 0"),
    ] + _margin_checks(r.train)
    _raise_first(checks)
    from harmony.models.backbones import BACKBONES

    if r.model.backbone not in BACKBONES:
        raise InvalidInput(f"recipe key 'model.backbone' is {r.model.backbone!r}",
                           hint=f"allowed values: {', '.join(sorted(BACKBONES))}")
    _check_backbone(r)
    return r


def _margin_checks(t: TrainSpec) -> list[tuple[bool, str, str]]:
    m, s = t.margin_loss.margin, t.margin_loss.scale
    ml = t.margin_loss
    return [
        (s is None or s > 0, "train.margin_loss.scale", "must be > 0 (or null: the loss's default)"),
        (t.loss != "sphereface" or m is None or (float(m).is_integer() and 1 <= m <= 8), "train.margin_loss.margin",
         "must be a whole number in 1..8 for sphereface (its margin multiplies the angle: 4 in the paper)"),
        (t.loss != "cosface" or m is None or 0 <= m < 1, "train.margin_loss.margin",
         "must be in [0, 1) for cosface (subtracted from the cosine: 0.35 in the paper)"),
        (t.loss != "arcface" or m is None or 0 <= m < 1.5708, "train.margin_loss.margin",
         "must be in [0, pi/2) radians for arcface (added to the angle: 0.5 in the paper)"),
        (ml.lambda_min >= 0 and ml.lambda_base >= ml.lambda_min, "train.margin_loss.lambda_base/lambda_min",
         "need lambda_base >= lambda_min >= 0"),
        (ml.lambda_gamma >= 0 and ml.lambda_power >= 0, "train.margin_loss.lambda_gamma/lambda_power",
         "must be >= 0"),
        (isinstance(ml.warmup_steps, int) and ml.warmup_steps >= 0, "train.margin_loss.warmup_steps",
         "must be a whole number >= 0 (0: the full margin from the first step)"),
        (t.loss not in ("sphereface", "triplet") or ml.warmup_steps == 0, "train.margin_loss.warmup_steps",
         "applies to cosface and arcface only (sphereface anneals with its lambda keys)"),
        (ml.classifier_lr_mult > 0, "train.margin_loss.classifier_lr_mult", "must be > 0 (1: train.lr)"),
    ]


def _check_backbone(r: Recipe) -> None:
    """Build the backbone and run one image through it, so bad ``backbone_args`` (or an input too
    small for the network) fail here, before any data is rendered or a trainer starts."""
    import torch

    from harmony.models.backbones import BACKBONES

    try:
        net, _ = BACKBONES[r.model.backbone](**r.model.backbone_args)
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, r.data.image_size, r.data.image_size))
    except (TypeError, ValueError, RuntimeError, IndexError, ZeroDivisionError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidInput(f"recipe key 'model.backbone_args' {dict(r.model.backbone_args)} does not build a "
                           f"{r.model.backbone} for {r.data.image_size} px input: {first}",
                           hint="see the backbone's signature in harmony/models/ for the arguments it takes") from None


def _validate_transform(r: TransformRecipe) -> TransformRecipe:
    _raise_first(_data_checks(r) + [
        (r.transform.hidden >= 0, "transform.hidden", "must be >= 0 (0: twice the output dim)"),
        (r.transform.blocks >= 0, "transform.blocks", "must be >= 0 (0: the linear map alone)"),
        (r.transform.steps >= 1, "transform.steps", "must be >= 1"),
        (r.transform.lr > 0, "transform.lr", "must be > 0"),
        (r.transform.weight_decay >= 0, "transform.weight_decay", "must be >= 0"),
        (r.transform.p >= 2 and r.transform.k >= 2, "transform.p/transform.k", "must both be >= 2"),
        (r.data.source != "synthetic" or r.transform.k <= r.data.per_identity, "transform.k",
         f"is {r.transform.k} but data.per_identity renders only {r.data.per_identity} images per identity"),
        (r.transform.l2_weight >= 0 and r.transform.triplet_weight >= 0, "transform.l2_weight/triplet_weight",
         "must be >= 0"),
        (r.transform.l2_weight + r.transform.triplet_weight > 0, "transform.l2_weight/triplet_weight",
         "need at least one > 0"),
        (r.transform.margin >= 0, "transform.margin", "must be >= 0"),
        (r.transform.eval_every >= 0, "transform.eval_every", "must be >= 0 (0: no selection on val)"),
    ])
    return r


REQUIRED_SECTIONS = ("data", "model", "train")
TRANSFORM_SECTIONS = ("data", "transform")  # a transform recipe: the labelled data and h's knobs
NETWORK_SECTIONS = ("model", "train", "harmonic")  # what a transform recipe has no use for


def recipe_from_dict(raw: dict) -> Recipe:
    return _validate(_build(Recipe, raw, ""))


def transform_recipe_from_dict(raw: dict) -> TransformRecipe:
    if isinstance(raw, dict):
        extra = [s for s in NETWORK_SECTIONS if s in raw]
        if extra:
            raise InvalidInput(f"a transform recipe has no {', '.join(repr(s) for s in extra)} section: those train "
                               "networks, and a transform maps the vectors of two versions that exist already",
                               hint="remove them; h's knobs live under 'transform' (see recipes/transform-tiny.yaml)")
    return _validate_transform(_build(TransformRecipe, raw, ""))


def load_transform_recipe(path: str | Path) -> TransformRecipe:
    """Load and validate a ``harmony train transform`` recipe (sections data and transform)."""
    p = Path(path)
    raw = _read_yaml(p)
    _check_sections(p, raw, TRANSFORM_SECTIONS, "every transform recipe sets", "recipes/transform-tiny.yaml")
    try:
        return transform_recipe_from_dict(raw)
    except InvalidInput as e:
        raise InvalidInput(f"{p}: {e.message}", e.hint) from None


def load_recipe(path: str | Path) -> Recipe:
    """Load and validate a YAML recipe; errors name the file and the key."""
    p = Path(path)
    raw = _read_yaml(p)
    _check_sections(p, raw, REQUIRED_SECTIONS, "every recipe file sets", "recipes/base-tiny.yaml")
    try:
        return recipe_from_dict(raw or {})
    except InvalidInput as e:
        raise InvalidInput(f"{p}: {e.message}", e.hint) from None


def _read_yaml(p: Path) -> Any:
    if not p.is_file():
        raise NotFound(f"recipe {p} does not exist", hint="see recipes/ for the shipped recipes")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InvalidInput(f"recipe {p} is not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r})",
                           hint="save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        raise InvalidInput(f"recipe {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    return raw


def _check_sections(p: Path, raw: Any, required: tuple[str, ...], every: str, example: str) -> None:
    if raw is None:
        raise InvalidInput(f"recipe {p} is empty", hint=f"start from {example}")
    missing = [s for s in required if not (isinstance(raw, dict) and raw.get(s))]
    if isinstance(raw, dict) and missing:  # a recipe file says what it trains; defaults hide typos
        raise InvalidInput(f"recipe {p} has no {', '.join(repr(m) for m in missing)} section",
                           hint=f"{every} {', '.join(required)}; start from {example}")
