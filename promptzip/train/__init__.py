"""Training of the extract model (torch, transformers: the `train` extra)."""
