"""The video context embedding (paper Sec. III-C, Fig. 3) and the blocks the three architectures share.

A stack of 3D residual blocks reads the last n frames; its output [B, c_vid, n, h, w] is projected into the
shape of the audio data: flatten (x, y), a Linear to the audio sequence length n_aud, then a 1x1 convolution
from video channels to audio channels. The video time axis n is folded into the channels before that 1x1
convolution (c_vid * n -> c_aud), so the order of the frames (motion, onsets) reaches the audio side; averaging
it away would leave only what the frames have in common.

Normalization (`ModelConfig.norm`): "batch" is the paper's Fig. 3 (BatchNorm). It behaves differently in
train and eval mode (batch statistics vs running averages), and in train mode it mixes statistics across the
batch, so in causal mode the frames after a position can move its output through the batch mean. "group"
(GroupNorm) normalizes each example on its own: train == eval, and causality holds exactly in train mode too.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from foleylib.data.motion import input_channels

if TYPE_CHECKING:
    from foleylib.models.config import ModelConfig


def make_norm(kind: str, channels: int, dims: int) -> nn.Module:
    """BatchNorm (the paper) or GroupNorm (per example: up to 8 groups) for 1D or 3D feature maps."""
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.BatchNorm3d(channels) if dims == 3 else nn.BatchNorm1d(channels)


def video_to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 frames [B, n, S, S, V] -> float [B, V, n, S, S] in [-1, 1] (black = -1, as the zero padding; motion
    channels: no motion = -1)."""
    x = video.float() / 127.5 - 1.0
    return x.permute(0, 4, 1, 2, 3)  # [B, V, n, S, S]


def halve(size: int, times: int) -> int:
    """Spatial size after `times` stride-2 convolutions (kernel 3, padding 1): ceil(size / 2) each time."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


def downsample(length: int, stride: int, times: int) -> int:
    """Length after `times` stride-`stride` ResBlock1d: ceil(length / stride) each time."""
    for _ in range(times):
        length = -(-length // stride)
    return length


class Conv3d(nn.Conv3d):
    """nn.Conv3d whose inference on the CPU runs through oneDNN. For a small single input (one frame window,
    as generation embeds each new frame) PyTorch picks its generic slow_conv3d, about half as fast here; batches
    already go to oneDNN. Training (gradients) and other devices run as nn.Conv3d; the results agree within 1e-7."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and torch.backends.mkldnn.is_available() and self.padding_mode == "zeros"
                and not isinstance(self.padding, str)):
            return torch.ops.aten.mkldnn_convolution(x, weight, bias, self.padding, self.stride, self.dilation,
                                                     self.groups)
        return super()._conv_forward(x, weight, bias)


class ResBlock(nn.Module):
    """conv-norm-ReLU-conv-norm + skip, then ReLU (Fig. 3); a 1x1 conv on the skip when channels/stride change.

    dims 3: Conv3d over [B, C, n, h, w], stride (1, s, s): time is kept, x and y are downsampled, kernel 3.
    dims 1: Conv1d over [B, C, L], stride s, kernel 2s+1 (3 when s = 1) so that no sample is skipped.
    Output size: ceil(size / s) along each strided axis.
    """

    def __init__(self, dims: int, c_in: int, c_out: int, stride: int = 1, norm: str = "batch"):
        super().__init__()
        conv = Conv3d if dims == 3 else nn.Conv1d
        if dims == 3:
            kernel, pad, strides = 3, 1, (1, stride, stride)
        else:
            kernel, pad, strides = (2 * stride + 1, stride, stride) if stride > 1 else (3, 1, 1)
        self.conv1 = conv(c_in, c_out, kernel, stride=strides, padding=pad, bias=False)
        self.norm1 = make_norm(norm, c_out, dims)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = make_norm(norm, c_out, dims)
        self.skip = None
        if c_in != c_out or stride != 1:
            self.skip = nn.Sequential(conv(c_in, c_out, 1, stride=strides, bias=False), make_norm(norm, c_out, dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + (x if self.skip is None else self.skip(x)))


class ResBlock3d(ResBlock):
    """3D residual block of the video stream (paper Fig. 3): [B, c_in, n, h, w] -> [B, c_out, n, h/s, w/s]."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "batch"):
        super().__init__(3, c_in, c_out, stride, norm)


class ResBlock1d(ResBlock):
    """1D residual block of the deep-fusion audio stream: [B, c_in, L] -> [B, c_out, ceil(L / s)]."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, norm: str = "batch"):
        super().__init__(1, c_in, c_out, stride, norm)


class VideoEncoder(nn.Module):
    """The 3D ResNet: a stem (conv3d stride (1,2,2)-norm-ReLU) then `blocks` ResBlock3d, each halving x and y.

    uint8 frames [B, n, S, S, V] -> features [B, c_vid, n, h, w], h = w = `out_size` = S halved (1 + blocks)
    times. Time is never downsampled (zero padding at the window's ends), so frame order survives. V =
    `in_channels`: 3 for RGB, more with motion channels (`from_config`).
    """

    def __init__(self, size: int, channels: int, blocks: int, norm: str = "batch", in_channels: int = 3):
        super().__init__()
        self.channels = channels
        self.out_size = halve(size, 1 + blocks)
        self.stem = nn.Sequential(
            Conv3d(in_channels, channels, 3, stride=(1, 2, 2), padding=1, bias=False),
            make_norm(norm, channels, 3),
            nn.ReLU(),
        )
        self.blocks = nn.ModuleList(ResBlock3d(channels, channels, stride=2, norm=norm) for _ in range(blocks))

    @classmethod
    def from_config(cls, cfg: ModelConfig, blocks: int | None = None) -> VideoEncoder:
        """The encoder of a model config (frame size, video channels, norm, video input); `blocks` defaults to
        cfg.video_blocks."""
        return cls(cfg.size, cfg.video_channels, cfg.video_blocks if blocks is None else blocks, cfg.norm,
                   input_channels(cfg.video_input))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.stem(video_to_float(video))  # [B, c_vid, n, S/2, S/2]
        for block in self.blocks:
            x = block(x)  # [B, c_vid, n, h, w], h halved
        return x


class VideoToAudio(nn.Module):
    """Project video features into the audio shape (Sec. III-C): (x, y) -> n_aud by a Linear, c_vid -> c_aud by 1x1.

    [B, c_vid, n, h, w] -> [B, c_aud, n_aud]. The time axis n is folded into the channels (c_vid * n) before
    the 1x1 convolution. With n_aud = 1 this is a per-window vector (the causal per-frame embedding).
    """

    def __init__(self, c_vid: int, frames: int, hw: int, n_aud: int, c_aud: int):
        super().__init__()
        self.space = nn.Linear(hw, n_aud)  # (x*y) -> n_aud
        self.channel = nn.Conv1d(c_vid * frames, c_aud, 1)  # (c_vid*n) -> c_aud

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        B, c, n, h, w = v.shape
        x = self.space(v.reshape(B, c * n, h * w))  # [B, c_vid*n, n_aud]
        return self.channel(x)  # [B, c_aud, n_aud]


class AudioToVideo(nn.Module):
    """Project audio features into the video shape (Sec. III-D1): n_aud -> (x*y) by a Linear, c_aud -> c_vid by 1x1.

    [B, c_aud, n_aud] -> [B, c_vid, n, h, w]; the 1x1 convolution makes c_vid * n channels, unfolded into
    (c_vid, n): the mirror image of VideoToAudio's folding.
    """

    def __init__(self, c_aud: int, n_aud: int, c_vid: int, frames: int, hw: int):
        super().__init__()
        self.c_vid, self.frames, self.side = c_vid, frames, math.isqrt(hw)
        self.space = nn.Linear(n_aud, hw)  # n_aud -> (x*y)
        self.channel = nn.Conv1d(c_aud, c_vid * frames, 1)  # c_aud -> (c_vid*n)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        B = a.shape[0]
        x = self.channel(self.space(a))  # [B, c_vid*n, h*w]
        return x.view(B, self.c_vid, self.frames, self.side, self.side)  # [B, c_vid, n, h, w]


class FrameEmbedding(nn.Module):
    """Causal mode: one vector e_p per video frame p, computed from frames p-n+1 .. p ONLY.

    Every n-frame window of the clip (unfold over time, step 1) goes through the VideoEncoder and a
    VideoToAudio with n_aud = 1, c_aud = dim. uint8 [B, F, S, S, V] -> [B, F - n + 1, dim]: row r is the
    embedding of frame r + n - 1 (the first n - 1 frames are context only; WindowDataset puts them in front).
    With cfg.sync_head, `sync` reads each e_p out as one logit: does a sound start while frame p is on screen
    (trained by the sync loss, training.sync; generation never reads it).
    """

    def __init__(self, cfg: ModelConfig, dim: int):
        super().__init__()
        self.frames = cfg.context_frames
        self.encoder = VideoEncoder.from_config(cfg)
        self.proj = VideoToAudio(cfg.video_channels, cfg.context_frames, self.encoder.out_size ** 2, 1, dim)
        self.sync = nn.Linear(dim, 1) if cfg.sync_head else None

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        B, S, V = video.shape[0], video.shape[2], video.shape[4]
        n = self.frames
        windows = video.unfold(1, n, 1)  # [B, F-n+1, S, S, V, n]
        W = windows.shape[1]
        windows = windows.permute(0, 1, 5, 2, 3, 4).reshape(B * W, n, S, S, V)  # [B*(F-n+1), n, S, S, V]
        e = self.proj(self.encoder(windows))  # [B*(F-n+1), dim, 1]
        return e.view(B, W, -1)  # [B, F-n+1, dim]


def frame_rows(frame_index: torch.Tensor, frames: int) -> torch.Tensor:
    """Rows of FrameEmbedding's output for each position: frame_index - (n - 1). [B, L] long.

    frame_index[b, j] indexes the clip's frames (0 .. F-1) and must be >= n - 1 (its context must exist).
    """
    if bool((frame_index < frames - 1).any()):
        raise ValueError(f"frame_index must be >= context_frames - 1 = {frames - 1} "
                         "(the n - 1 context frames come first in `video`, as WindowDataset lays them out)")
    return frame_index - (frames - 1)


def gather_rows(e: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Per-frame features upsampled to the sample rate: e [B, W, d], rows [B, L] -> [B, L, d] (e[b, rows[b, j]])."""
    return torch.gather(e, 1, rows.unsqueeze(-1).expand(-1, -1, e.shape[-1]))  # [B, L, d]
