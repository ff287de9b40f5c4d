"""Embedding models: backbones by name, the FaceNet head (linear + L2 norm), loading versions."""
