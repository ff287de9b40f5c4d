"""Embedding models: backbones, the FaceNet head, the Encoder protocol every version meets
(trained, TorchScript, dlib), loading a registered version, and the one image -> embedding
pipeline (``pipeline``). Import the modules directly; this package imports nothing heavy."""
