"""Operations: the library layer behind `harmony gallery` and `harmony migrate`.

It joins the registry (versions, verdicts, gallery and migration rows), the models (encoders),
the gallery store (FAISS indexes on disk) and the migration engine (backfill, mixed search,
swap). Modules, one job each:

- ``items``: image files and folders -> gallery items (item id, source path, identity).
- ``embedding``: a registered version as an encoder / backfill ``embed_fn`` over image files.
- ``verdicts``: what the registry says about scoring one version's queries against another's
  vectors at a gallery's FAR, and the refusal when it says no.
- ``galleries``: build, add, remove, search, info, list (registry row + store folder).
- ``plan``: the migration plan (compatible -> mixed search at once; else full backfill first).
- ``migrate``: run a migration (resumable backfill mirrored into the registry, report, swap).
- ``lifecycle``: status, swap, rollback, gc, and reconciling registry and store after a kill.
- ``report``: VAL@FAR before/cross/after and identification over the gallery's items.

Import the modules directly; this package imports nothing heavy.
"""
