"""A migration of a gallery between embedding versions, in one package: the states and their
moves (states.py), the compatibility gate (gate.py), the plan (plan.py), the run (run.py) over a
resumable backfill (backfill.py, checkpoint.py), searching mid-migration (search.py,
mixed_search.py), the report (report.py), swap/rollback in the store (swap.py) and the lifecycle
commands over registry and store (lifecycle.py). Import the modules directly; this package
imports nothing heavy."""
