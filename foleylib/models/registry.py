"""The architectures by name: `build_model(cfg)` gives the model a ModelConfig describes."""
from __future__ import annotations

from torch import nn

from foleylib.models.config import ARCHS, ModelConfig
from foleylib.models.fusion import DeepFusion
from foleylib.models.transformer import AVTransformer
from foleylib.models.wavenet import WaveNet

MODEL_CLASSES: dict[str, type[nn.Module]] = dict(zip(ARCHS, (DeepFusion, WaveNet, AVTransformer)))


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model for a config; refuses unknown archs and invalid combinations with a ValueError."""
    cfg.check()
    return MODEL_CLASSES[cfg.arch](cfg)
