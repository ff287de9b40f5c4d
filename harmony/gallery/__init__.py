"""Galleries: the FAISS wrapper (index.py), the on-disk store (store.py, table.py; writes go through
harmony.io), image files as items (items.py), a gallery as the user sees it, registry row plus
store folder: build, add, remove, view (catalog.py), and synthetic stand-ins for tests and
benchmarks (synthetic.py). Import the modules directly; this package imports nothing heavy."""
