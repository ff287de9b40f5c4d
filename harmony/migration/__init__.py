"""Gallery migration between embedding versions: resumable backfill (backfill.py, checkpoint.py),
mixed old/new search while it runs (mixed_search.py), swap/rollback/gc (swap.py)."""
