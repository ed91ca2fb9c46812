"""The three generators of the paper behind one contract: `ModelConfig` and `model_config()` (config.py),
`build_model()` (registry.py).

Every model holds its config in `model.cfg` and maps a collated batch to a prediction, `forward(batch)`:
  paper  (wavenet, transformer; SampleDataset): audio [B, n_aud, C], video [B, n, S, S, V] uint8
         -> the next sample: [B, C] (tanh) or logits [B, C, 256] (mu-law)
  paper  (fusion; FrameDataset): same inputs -> the next frame's samples: [B, spf, C] or [B, spf, C, 256]
  causal (wavenet, transformer; WindowDataset): audio_in [B, L, C], video [B, F, S, S, V], frame_index [B, L]
         -> position j's prediction of target[j]: [B, L, C] or [B, L, C, 256]
V = 3 (RGB) or more channels with motion: `motion.input_channels(cfg.video_input)`.
Models do no I/O and pick no device: they run where their parameters are.

Modules: config (the shape and its choices; no torch, so the CLI's parser loads fast), registry (architecture ->
class, `build_model`), video (the video context embedding), wavenet, transformer, fusion, losses.
May import: core, data.
"""
