"""Latent-cascade compression: text -> a few vectors a decoder LM reads (see model.py)."""
