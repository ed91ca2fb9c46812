"""Data: from video files to aligned, model-ready clips. Media I/O through ffmpeg (`media`), collection of
downloaded or home-made videos (`collect`), the alignment and clipping rules (`align`), the synthetic scenes
(`synth`), aligned clips and their datasets and batches (`dataset`), motion input (`motion`) and augmentation
(`augment`).

May import: core.
"""
