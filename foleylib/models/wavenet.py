"""The WaveNet-based generator (paper Sec. III-D2, Fig. 6; van den Oord et al. 2016).

A causal input convolution, a stack of residual layers with dilated causal convolutions and gated activations
(tanh * sigmoid), residual and skip 1x1 convolutions, then a dense head: tanh for continuous output, or 256
mu-law logits per channel.

paper mode: the audio context [B, C, n_aud] plus the video context embedding (VideoToAudio with c_aud = C) is
    the input; the last output element is the next sample. Only the last `receptive_field` samples can reach
    that element, so the input is cropped to n_in = min(n_aud, receptive_field) (the same result, less work).
causal mode: audio_in [B, C, L]; the per-frame video embedding e_p (FrameEmbedding) is gathered per position
    with frame_index and enters every residual layer as local conditioning (a Linear to 2 * residual channels
    added before the gate). Output j depends on audio_in[j - receptive_field + 1 .. j] and frames <= frame_index[j].

Incremental form (causal mode, queued generation in foleylib.generation.fastgen): `step_weights()` exports, by
name, the weights one sample's step reads and those of a frame's conditioning of every layer
(`WaveNetStepWeights`). Layer i's dilated conv (kernel k, dilation `dilations[i]`) reads the last
(k - 1) * dilation + 1 inputs of its layer, the input conv the last k samples.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from foleylib.models.video import FrameEmbedding, VideoEncoder, VideoToAudio, frame_rows, gather_rows

if TYPE_CHECKING:
    from foleylib.models.config import ModelConfig


class WaveNetStepWeights(NamedTuple):
    """The causal WaveNet as one sample's step reads it (WaveNet.step_weights): the model's tensors, convolution
    taps laid out oldest lag first; foleylib.generation.fastgen makes them float32 arrays."""

    input_w: torch.Tensor  # [r, k*C] input conv
    input_b: torch.Tensor  # [r]
    dilated_w: torch.Tensor  # [L, 2r, k*r] every layer's dilated conv: filter half, then gate half
    dilated_b: torch.Tensor  # [L, 2r]
    res_w: torch.Tensor  # [L, r, r] residual 1x1 convs; zeros for the last layer, which has none
    res_b: torch.Tensor  # [L, r]
    skip_w: torch.Tensor  # [s, L*r] the skip 1x1 convs side by side: one product sums every layer's skip
    skip_b: torch.Tensor  # [s] their biases, summed
    head_w1: torch.Tensor  # [s, s] the dense head: ReLU, head_w1, ReLU, head_w2
    head_b1: torch.Tensor  # [s]
    head_w2: torch.Tensor  # [C * classes, s]
    head_b2: torch.Tensor  # [C * classes]
    cond_w: torch.Tensor  # [L, 2r, cond] every layer's conditioning: a frame's embedding e adds cond_w @ e + cond_b
    cond_b: torch.Tensor  # [L, 2r] to the layer's dilated conv while the frame is on screen


class ResidualLayer(nn.Module):
    """Dilated causal conv -> (+ conditioning) -> tanh * sigmoid -> skip 1x1 and residual 1x1.

    x [B, r, L] -> (x + res(z) [B, r, L] or None for the last layer, skip(z) [B, s, L or tail]).
    """

    def __init__(self, cfg: ModelConfig, dilation: int, last: bool, conditioned: bool):
        super().__init__()
        r, s, k = cfg.residual_channels, cfg.skip_channels, cfg.kernel_size
        self.dilation, self.pad = dilation, (k - 1) * dilation
        self.dilated = nn.Conv1d(r, 2 * r, k, dilation=dilation)  # filter and gate halves
        self.cond = nn.Linear(cfg.cond_channels, 2 * r) if conditioned else None  # e_p -> filter/gate bias
        self.skip = nn.Conv1d(r, s, 1)
        self.res = None if last else nn.Conv1d(r, r, 1)  # the last layer's residual output would go unused

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                tail: int | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = self.dilated(F.pad(x, (self.pad, 0)))  # [B, 2r, L], left padding only: causal
        if cond is not None:
            h = h + cond  # [B, 2r, L]
        filt, gate = h.chunk(2, dim=1)  # [B, r, L] each
        z = torch.tanh(filt) * torch.sigmoid(gate)  # [B, r, L]
        skip = self.skip(z if tail is None else z[..., -tail:])  # [B, s, L or tail]
        return (None if self.res is None else x + self.res(z)), skip


class WaveNet(nn.Module):
    """WaveNet with a video context embedding. See the module docstring for the two modes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, r, s, k = cfg.channels, cfg.residual_channels, cfg.skip_channels, cfg.kernel_size
        self.classes = 256 if cfg.output == "mulaw" else 1
        self.dilations = [2 ** i for i in range(cfg.dilation_cycle)] * cfg.stacks
        # input conv (k - 1 samples back) + every dilated conv ((k - 1) * d back) + the current sample
        self.receptive_field = 1 + (k - 1) + (k - 1) * sum(self.dilations)
        self.input_conv = nn.Conv1d(C, r, k)  # causal: left-padded by k - 1
        causal = cfg.mode == "causal"
        self.layers = nn.ModuleList(ResidualLayer(cfg, d, last=i == len(self.dilations) - 1, conditioned=causal)
                                    for i, d in enumerate(self.dilations))
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(s, s), nn.ReLU(), nn.Linear(s, C * self.classes))  # dense
        if causal:
            self.frames = FrameEmbedding(cfg, cfg.cond_channels)
        else:
            self.n_in = min(cfg.context_samples, self.receptive_field)
            self.video = VideoEncoder.from_config(cfg)
            self.video_proj = VideoToAudio(cfg.video_channels, cfg.context_frames, self.video.out_size ** 2,
                                           n_aud=self.n_in, c_aud=C)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cfg.mode == "paper":
            return self.forward_paper(batch["audio"], batch["video"])
        return self.forward_causal(batch["audio_in"], batch["video"], batch["frame_index"])

    def forward_paper(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """audio [B, n_aud, C], video [B, n, S, S, V] uint8 -> next sample [B, C] or logits [B, C, 256]."""
        if audio.shape[1] != self.cfg.context_samples:
            raise ValueError(f"audio context has {audio.shape[1]} samples, the model expects "
                             f"{self.cfg.context_samples}")
        x = audio[:, -self.n_in:].transpose(1, 2)  # [B, C, n_in]
        x = x + self.video_proj(self.video(video))  # [B, C, n_in]: audio + video context embedding
        skips = self.stack(x, tail=1)  # [B, s, 1]: only the last element is the prediction
        return self.decode(self.head(skips.transpose(1, 2)))[:, 0]  # [B, 1, s] -> [B, C] or [B, C, 256]

    def forward_causal(self, audio_in: torch.Tensor, video: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        """audio_in [B, L, C], video [B, F, S, S, V], frame_index [B, L] -> [B, L, C] or [B, L, C, 256]."""
        rows = frame_rows(frame_index, self.cfg.context_frames)  # [B, L]
        e = self.frames(video)  # [B, F-n+1, cond]
        skips = self.stack(audio_in.transpose(1, 2), e, rows)  # [B, s, L]
        return self.decode(self.head(skips.transpose(1, 2)))  # [B, L, s] -> [B, L, C(, 256)]

    def stack(self, x: torch.Tensor, e: torch.Tensor | None = None, rows: torch.Tensor | None = None,
              tail: int | None = None) -> torch.Tensor:
        """x [B, C, L] -> summed skips [B, s, L or tail]; e [B, W, cond] with rows [B, L]: local conditioning."""
        x = self.input_conv(F.pad(x, (self.cfg.kernel_size - 1, 0)))  # [B, r, L]
        skips = 0
        for layer in self.layers:
            cond = None
            if e is not None:
                cond = gather_rows(layer.cond(e), rows).transpose(1, 2)  # [B, W, 2r] -> [B, L, 2r] -> [B, 2r, L]
            x, skip = layer(x, cond, tail)
            skips = skips + skip
        return skips

    @torch.no_grad()
    def step_weights(self) -> WaveNetStepWeights:
        """Causal mode: the weights one sample's step reads, by name (see WaveNetStepWeights)."""
        r, layers = self.cfg.residual_channels, self.layers
        no_res = self.input_conv.weight.new_zeros(r, r), self.input_conv.bias.new_zeros(r)  # the last layer's

        def taps(conv: nn.Conv1d) -> torch.Tensor:  # [out, in, k] -> [out, k*in], oldest lag first
            return conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1)

        _, hidden, _, out = self.head  # ReLU, Linear(s, s), ReLU, Linear(s, C * classes)
        return WaveNetStepWeights(
            taps(self.input_conv), self.input_conv.bias,
            torch.stack([taps(la.dilated) for la in layers]), torch.stack([la.dilated.bias for la in layers]),
            torch.stack([no_res[0] if la.res is None else la.res.weight[..., 0] for la in layers]),
            torch.stack([no_res[1] if la.res is None else la.res.bias for la in layers]),
            torch.cat([la.skip.weight[..., 0] for la in layers], dim=1), sum(la.skip.bias for la in layers),
            hidden.weight, hidden.bias, out.weight, out.bias,
            torch.stack([la.cond.weight for la in layers]), torch.stack([la.cond.bias for la in layers]))

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Head output [B, L, C * classes] -> [B, L, C] tanh or [B, L, C, 256] logits."""
        if self.classes == 1:
            return torch.tanh(y)  # [B, L, C]
        return y.unflatten(-1, (self.cfg.channels, self.classes))  # [B, L, C, 256]
