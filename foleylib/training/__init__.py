"""Training: the loop (`train`), checkpoints and run folders, and data-parallel launching (`distributed`).

May import: core, data, models.
"""
