"""Diffusion algorithms as pure functions over a mask predictor: sampling and likelihood."""
