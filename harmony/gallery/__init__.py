"""Galleries: the FAISS wrapper (index.py), the on-disk store (store.py, table.py, atomic.py) and
synthetic stand-ins for tests and benchmarks (synthetic.py). Import the modules directly; this
package imports nothing heavy."""
