"""The three generators of the paper behind one contract: `ModelConfig`, `model_config()`, `build_model()`.

Every model holds its config in `model.cfg` and maps a collated batch to a prediction, `forward(batch)`:
  paper  (wavenet, transformer; SampleDataset): audio [B, n_aud, C], video [B, n, S, S, V] uint8
         -> the next sample: [B, C] (tanh) or logits [B, C, 256] (mu-law)
  paper  (fusion; FrameDataset): same inputs -> the next frame's samples: [B, spf, C] or [B, spf, C, 256]
  causal (wavenet, transformer; WindowDataset): audio_in [B, L, C], video [B, F, S, S, V], frame_index [B, L]
         -> position j's prediction of target[j]: [B, L, C] or [B, L, C, 256]
V = 3 (RGB) or more channels with motion: `motion.input_channels(cfg.video_input)`.
Models do no I/O and pick no device: they run where their parameters are.
"""
from __future__ import annotations

from torch import nn

from foleylib.models.config import ARCHS, LOSSES, MODES, PRESETS, VARIANTS, VIDEO_INPUTS, ModelConfig, model_config
from foleylib.models.fusion import DeepFusion
from foleylib.models.transformer import AVTransformer
from foleylib.models.wavenet import WaveNet


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model for a config; refuses unknown archs and invalid combinations with a ValueError."""
    cfg.check()
    return {"fusion": DeepFusion, "wavenet": WaveNet, "transformer": AVTransformer}[cfg.arch](cfg)


__all__ = ["ModelConfig", "model_config", "build_model", "DeepFusion", "WaveNet", "AVTransformer",
           "ARCHS", "MODES", "VARIANTS", "LOSSES", "PRESETS", "VIDEO_INPUTS"]
