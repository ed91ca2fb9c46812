"""Evaluation: audio metrics (`metrics`, `spectral`, `fad`), scoring a run against its baselines (`evaluate`), the
experiments built on it (`table` for Table I, `crossval`, `ablation`), figures (`plots`) and notebook helpers
(`notebook`).

May import: core, data, models, training, generation.
"""
