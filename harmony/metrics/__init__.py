"""Evaluation math: VAL@FAR (exact, blocked), the compatibility record, identification, clustering,
negative flips, the LFW protocol, VAL-vs-FAR and version-matrix plots, and the one FAR validator (``fars``). Pure functions over ``(n, d)`` float32 L2-normalised
embeddings; distances are squared L2 (``2 - 2 a.b``). Importing this package loads numpy only;
torch, scipy and matplotlib load inside the functions that need them.
"""

from harmony.metrics._checks import MetricsWarning
from harmony.metrics.clustering import (ClusterReport, PairwisePR, agglomerative_clusters, cluster_report,
                                        pairwise_precision_recall)
from harmony.metrics.fars import DEFAULT_FARS, check_far, check_fars
from harmony.metrics.compat import (CompatReport, CompatRow, IdentificationReport, compatibility_report,
                                    gain_recovered, identification_report)
from harmony.metrics.flips import FlipReport, FlipSet, check_rate, flip_report
from harmony.metrics.identification import knn_accuracy
from harmony.metrics.lfw import LfwResult, Pair, PairSet, lfw_protocol, read_lfw_pairs, read_pairs_csv
from harmony.metrics.plots import plot_val_far, plot_val_matrix
from harmony.metrics.val_at_far import ValAtFar, val_at_far, val_far_curve

__all__ = [
    "DEFAULT_FARS", "check_far", "check_fars", "ClusterReport", "CompatReport", "CompatRow", "FlipReport", "FlipSet", "IdentificationReport", "LfwResult", "MetricsWarning",
    "Pair", "PairSet", "PairwisePR", "ValAtFar", "agglomerative_clusters", "cluster_report",
    "check_rate", "compatibility_report", "flip_report", "gain_recovered", "identification_report", "knn_accuracy", "lfw_protocol", "pairwise_precision_recall",
    "plot_val_far", "plot_val_matrix", "read_lfw_pairs", "read_pairs_csv", "val_at_far", "val_far_curve",
]
