"""The deep-fusion CNN (paper Sec. III-D1, Fig. 5): the only generator that predicts a whole frame at once.

An audio stream (ResBlock1d over the audio context) and a video stream (ResBlock3d over the last n frames) run
in parallel. After sub-block i each stream gets the other projected into its shape, times a learned scalar:
    a_i <- a_i + w_v2a[i] * VideoToAudio(v_i)      v_i <- v_i + w_a2v[i] * AudioToVideo(a_i)
(both computed from the streams before either addition). After the last sub-block only the video -> audio
addition is made: the video stream ends there, an audio -> video projection would go unused.
The head maps the audio stream to the next frame's samples: a Linear along time (n_last -> samples_per_frame),
then a dense layer per sample over the channels (ReLU between) to C (tanh) or C x 256 (mu-law logits).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from foleylib.models.video import (
    AudioToVideo,
    ResBlock1d,
    VideoEncoder,
    VideoToAudio,
    downsample,
    halve,
    make_norm,
    video_to_float,
)

if TYPE_CHECKING:
    from foleylib.models.config import ModelConfig


class DeepFusion(nn.Module):
    """audio [B, n_aud, C] + video [B, n, S, S, V] -> next frame [B, spf, C] (tanh) or [B, spf, C, 256] (logits)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, ca, cv, n, blocks = cfg.channels, cfg.fusion_channels, cfg.video_channels, cfg.context_frames, \
            cfg.fusion_blocks
        self.classes = 256 if cfg.output == "mulaw" else 1
        self.receptive_field = cfg.context_samples
        # stream sizes after sub-block i: audio length ceil(n_aud / stride^(i+1)), video side S halved (i+2) times
        self.lengths = [downsample(cfg.context_samples, cfg.fusion_stride, i + 1) for i in range(blocks)]
        self.sides = [halve(cfg.size, i + 2) for i in range(blocks)]
        self.audio_stem = nn.Sequential(nn.Conv1d(C, ca, 3, padding=1, bias=False), make_norm(cfg.norm, ca, 1),
                                        nn.ReLU())
        self.audio_blocks = nn.ModuleList(ResBlock1d(ca, ca, cfg.fusion_stride, cfg.norm) for _ in range(blocks))
        self.video = VideoEncoder.from_config(cfg, blocks)  # its stem and blocks form the video stream
        self.v2a = nn.ModuleList(VideoToAudio(cv, n, h * h, L, ca)
                                 for L, h in zip(self.lengths, self.sides, strict=True))
        self.a2v = nn.ModuleList(AudioToVideo(ca, L, cv, n, h * h)
                                 for L, h in zip(self.lengths[:-1], self.sides[:-1], strict=True))
        self.w_v2a = nn.Parameter(torch.full((blocks,), 0.1))  # learned fusion weights: start nearly independent
        self.w_a2v = nn.Parameter(torch.full((blocks - 1,), 0.1))
        self.to_time = nn.Linear(self.lengths[-1], cfg.samples_per_frame)  # n_last -> spf, per channel
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(ca, ca), nn.ReLU(), nn.Linear(ca, C * self.classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        audio, video = batch["audio"], batch["video"]
        if audio.shape[1] != self.cfg.context_samples:
            raise ValueError(f"audio context has {audio.shape[1]} samples, the model expects "
                             f"{self.cfg.context_samples}")
        a = self.audio_stem(audio.transpose(1, 2))  # [B, ca, n_aud]
        v = self.video.stem(video_to_float(video))  # [B, cv, n, S/2, S/2]
        for i, (audio_block, video_block) in enumerate(zip(self.audio_blocks, self.video.blocks, strict=True)):
            a, v = audio_block(a), video_block(v)  # [B, ca, lengths[i]], [B, cv, n, sides[i], sides[i]]
            a_from_v = self.w_v2a[i] * self.v2a[i](v)  # [B, ca, lengths[i]]
            if i < len(self.a2v):
                v = v + self.w_a2v[i] * self.a2v[i](a)  # [B, cv, n, sides[i], sides[i]]
            a = a + a_from_v
        y = self.head(self.to_time(a).transpose(1, 2))  # [B, ca, n_last] -> [B, ca, spf] -> [B, spf, C * classes]
        if self.classes == 1:
            return torch.tanh(y)  # [B, spf, C]
        return y.unflatten(-1, (self.cfg.channels, self.classes))  # [B, spf, C, 256]
