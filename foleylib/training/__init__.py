"""Training: `TrainConfig` (`config`), the loop (`trainer`), run folders and checkpoints (`checkpoint`), the
`foley train` command's options (`command`) and data-parallel launching (`distributed`).

May import: core, data, models.
"""
