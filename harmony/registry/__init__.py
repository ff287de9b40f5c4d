"""The registry: a DuckDB catalog of immutable embedding versions, their artifacts (with sha256),
aliases, evaluations, compatibility verdicts, galleries and migrations.

    from harmony.registry import Registry
    reg = Registry.open()              # --registry flag, else $HARMONY_REGISTRY, else ./registry
    reg.add_version("v1", kind="base", artifact="ckpt.pt", backbone="resnet-small", dim=128)

Modules: ``store`` (the Registry API), ``schema`` (DDL per schema version and upgrades),
``connection`` (short-lived connections, lock retry), ``artifacts`` (crash-safe copies, sha256),
``catalog`` (evaluations, compatibility), ``galleries`` (galleries, migrations),
``maintenance`` (verify, export), ``manifests`` (dlib's model files, checked by sha256). The
registry runs no model: encoders for every kind of version live in ``harmony.models``.
"""

from harmony.registry.records import Compat, Gallery, Migration, TransformEdge, Version, VerifyResult
from harmony.registry.store import Registry

__all__ = ["Registry", "Version", "Compat", "Gallery", "Migration", "TransformEdge", "VerifyResult"]
