"""harmony: versioned face embeddings with backward-compatible (harmonic) upgrades."""

__version__ = "0.1.0"
