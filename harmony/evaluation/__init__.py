"""`harmony eval` as a library: evaluation sets, the embedding cache, and the evaluation itself.

    from harmony.evaluation import evaluate, synthetic_set
    res = evaluate(Registry.open(), "v2", against="v1", data=synthetic_set(300, 8), plot="val_far.png")
    res.compatible            # {0.01: True, 0.001: False}: is v2 compatible with v1 at each FAR

Modules: ``datasets`` (labelled sets and pair lists over ``harmony.data.sources``, the CLI's data
options), ``cache`` (the embedding pipeline's output per version sha256 and image set, atomic .npz
files with an explicit ``ok`` mask under ``<registry>/cache/embeddings/``), ``run`` (the figures, the
plot, the registry records), ``results`` (records; the CLI draws their tables, harmony.cli.tables).
Tests: tests/evaluation/.
"""

from harmony.data.sources import ArraySource, FileSource, ImageSource, SyntheticSource
from harmony.evaluation.cache import Embedded, embed_cached
from harmony.evaluation.datasets import (EvalData, LabelledSet, PairsSet, csv_pairs_set, folder_set, lfw_pairs_set,
                                         resolve_data, synthetic_set)
from harmony.evaluation.results import EvalResult, VersionEval
from harmony.evaluation.run import evaluate

__all__ = [
    "ArraySource", "Embedded", "EvalData", "EvalResult", "FileSource", "ImageSource", "LabelledSet", "PairsSet",
    "SyntheticSource", "VersionEval", "csv_pairs_set", "embed_cached", "evaluate", "folder_set", "lfw_pairs_set",
    "resolve_data", "synthetic_set",
]
