"""Galleries: the FAISS wrapper (index.py), the on-disk store (store.py, table.py; writes go through harmony.io) and
synthetic stand-ins for tests and benchmarks (synthetic.py). Import the modules directly; this
package imports nothing heavy."""
