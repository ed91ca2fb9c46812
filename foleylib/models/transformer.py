"""The audio + video transformer (paper Sec. III-D3, Fig. 7).

Audio context tokens + the video context embedding (projected to the token sequence) + a learned positional
embedding -> nn.TransformerEncoder (ReLU feed-forward, pre-norm) -> a linear decoder -> the next sample: tanh
(continuous) or 256 mu-law logits per channel (softmax them to sample a class).

paper mode, two audio-context variants:
  strided: strided Conv1d layers (kernel = stride, ReLU between) turn the whole context into
           T = ceil(n_aud / prod(strides)) tokens; the context is zero-padded in front to T * prod(strides)
           (the most recent samples always fill the last token). The decoder reads the last token.
  raw:     the last `raw_context` samples, one token each (a Linear C -> d_model): fewer parameters, short context.
  The window attends to itself in full (it is all past); the video embedding is VideoToAudio with
  n_aud = tokens, c_aud = d_model.
causal mode (raw only): one token per sample of the window, the per-frame video embedding e_p gathered per
  position and added, a causal mask, an output at every position. Attention windows hold M = max_context
  tokens with learned absolute positions 0 .. M-1. Longer sequences are cut into windows starting every
  hop = M // 2 positions: window 0 outputs positions 0 .. M-1, window k >= 1 outputs its last hop positions.
  So position j attends to the tokens since its window's start (M - hop .. M of them once j >= M). This is
  exactly what a KV-cache generator does that, when its cache of M is full, drops the oldest hop entries and
  re-encodes the rest at positions 0 .. M - hop - 1. `window_start` is that rule, the one place it is written.
  positions "alibi" (Press et al. 2022, ALiBi) instead: no positional embedding; head h adds -slope_h * distance
  to its attention scores, and every position attends to the M tokens ending at it (a sliding window). Nothing
  depends on where a window starts, so one pass over a sequence scores every position once (queries in blocks
  of M against keys of their block and the one before), and a generator's cache simply rolls: no re-encode.
  Position j sees tokens back to j - n_layers * (M - 1) (the receptive field), each layer reaching M - 1 further.

Incremental form (causal mode): `step_weights()` exports, by name, the weights one token's step reads
(`TransformerStepWeights`); foleylib.generation.fastgen runs them with a KV cache that slides by `window_start`
(absolute positions) or rolls (alibi).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from foleylib.models.video import FrameEmbedding, VideoEncoder, VideoToAudio, frame_rows, gather_rows

if TYPE_CHECKING:
    from foleylib.models.config import ModelConfig


def window_start(position: int, origin: int, max_context: int, hop: int) -> int:
    """First position of the causal window that outputs `position`: windows of max_context positions start every
    hop positions from origin; the first outputs all its positions, each later one its last hop. Plain integer
    arithmetic, so that fastgen compiles this very function into its KV-cache loop."""
    late = position - origin - max_context + 1  # positions past the first window
    return origin + hop * max(0, -(-late // hop))


def alibi_slopes(heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes [heads]: the geometric sequence 2^(-8 (h + 1) / heads), h = 0 .. heads - 1."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) for h in range(heads)])


def sliding_bias(slopes: torch.Tensor, span: int) -> torch.Tensor:
    """Attention bias [heads, span, 2 span] of a block of `span` queries against the keys of the block before it
    and its own: query i (position span + i of the pair) sees keys j with distance span + i - j in 0 .. span - 1,
    with bias -slope * distance; others get -inf."""
    distance = span + torch.arange(span)[:, None] - torch.arange(2 * span)[None]  # [span, 2 span]
    bias = -slopes[:, None, None] * distance.clamp(min=0)
    return bias.masked_fill((distance < 0) | (distance >= span), float("-inf"))


class TransformerStepWeights(NamedTuple):
    """The causal transformer as one token's step reads it (AVTransformer.step_weights): the model's tensors,
    per-layer ones stacked on a first axis of n_layers; foleylib.generation.fastgen makes them float32 arrays."""

    embed_w: torch.Tensor  # [d, C] an audio sample -> its token
    embed_b: torch.Tensor  # [d]
    pos: torch.Tensor  # [M, d] learned positions (zeros for alibi)
    slopes: torch.Tensor  # [heads] alibi's slopes (zeros for absolute positions)
    norm1_w: torch.Tensor  # [n_layers, d] LayerNorm before attention
    norm1_b: torch.Tensor  # [n_layers, d]
    qkv_w: torch.Tensor  # [n_layers, 3d, d] query, key and value projections
    qkv_b: torch.Tensor  # [n_layers, 3d]
    attn_out_w: torch.Tensor  # [n_layers, d, d] attention output projection
    attn_out_b: torch.Tensor  # [n_layers, d]
    norm2_w: torch.Tensor  # [n_layers, d] LayerNorm before the feed-forward
    norm2_b: torch.Tensor  # [n_layers, d]
    ff1_w: torch.Tensor  # [n_layers, d_ff, d] feed-forward (ReLU between)
    ff1_b: torch.Tensor  # [n_layers, d_ff]
    ff2_w: torch.Tensor  # [n_layers, d, d_ff]
    ff2_b: torch.Tensor  # [n_layers, d]
    norm_w: torch.Tensor  # [d] the encoder's final LayerNorm
    norm_b: torch.Tensor  # [d]
    decoder_w: torch.Tensor  # [C * classes, d]
    decoder_b: torch.Tensor  # [C * classes]
    eps: float  # every LayerNorm's epsilon


class AVTransformer(nn.Module):
    """Audio + video transformer. Attributes: max_context (positions attended), receptive_field (samples), and in
    causal mode hop (windows' slide; absolute positions) and sliding (alibi: the window slides with each position)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C, d = cfg.channels, cfg.d_model
        self.classes = 256 if cfg.output == "mulaw" else 1
        if cfg.mode == "paper" and cfg.variant == "strided":
            self.patch = math.prod(cfg.strides)  # samples per token
            self.max_context = -(-cfg.context_samples // self.patch)  # T = ceil(n_aud / prod(strides))
            self.receptive_field = cfg.context_samples
            convs: list[nn.Module] = []
            for i, s in enumerate(cfg.strides):
                convs += [nn.Conv1d(C if i == 0 else d, d, s, stride=s), nn.ReLU()]
            self.embed_audio = nn.Sequential(*convs[:-1])  # no ReLU after the last conv: tokens are embeddings
        else:
            self.max_context = self.receptive_field = cfg.raw_context
            self.embed_audio = nn.Linear(C, d)  # one token per sample
        self.sliding = cfg.positions == "alibi"
        if self.sliding:
            self.receptive_field = cfg.n_layers * (self.max_context - 1) + 1
            self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)
        else:
            self.pos = nn.Parameter(torch.randn(self.max_context, d) * 0.02)  # learned positional embedding
        if cfg.mode == "paper":
            self.video = VideoEncoder.from_config(cfg)
            self.video_proj = VideoToAudio(cfg.video_channels, cfg.context_frames, self.video.out_size ** 2,
                                           n_aud=self.max_context, c_aud=d)
        else:
            self.hop = max(1, self.max_context // 2)
            self.frames = FrameEmbedding(cfg, d)
        layer = nn.TransformerEncoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout, activation="relu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.decoder = nn.Linear(d, C * self.classes)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cfg.mode == "paper":
            return self.forward_paper(batch["audio"], batch["video"])
        return self.forward_causal(batch["audio_in"], batch["video"], batch["frame_index"])

    def audio_tokens(self, audio: torch.Tensor) -> torch.Tensor:
        """Paper mode: audio context [B, n_aud, C] -> tokens [B, max_context, d]."""
        n_aud, T = audio.shape[1], self.max_context
        if self.cfg.variant == "strided":
            x = F.pad(audio.transpose(1, 2), (T * self.patch - n_aud, 0))  # [B, C, T * patch], zeros in front
            return self.embed_audio(x).transpose(1, 2)  # [B, d, T] -> [B, T, d]
        x = F.pad(audio[:, -T:], (0, 0, max(0, T - n_aud), 0))  # [B, R, C]: the last R samples
        return self.embed_audio(x)  # [B, R, d]

    def forward_paper(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """audio [B, n_aud, C], video [B, n, S, S, V] uint8 -> next sample [B, C] or logits [B, C, 256]."""
        if audio.shape[1] != self.cfg.context_samples:
            raise ValueError(f"audio context has {audio.shape[1]} samples, the model expects "
                             f"{self.cfg.context_samples}")
        x = self.audio_tokens(audio)  # [B, T, d]
        x = x + self.video_proj(self.video(video)).transpose(1, 2) + self.pos  # [B, d, T] -> [B, T, d]
        h = self.encoder(x)  # [B, T, d]
        return self.decode(self.decoder(h[:, -1]))  # [B, C] or [B, C, 256]

    def forward_causal(self, audio_in: torch.Tensor, video: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        """audio_in [B, L, C], video [B, F, S, S, V], frame_index [B, L] -> [B, L, C] or [B, L, C, 256]."""
        B, L, _ = audio_in.shape
        M, hop = self.max_context, self.hop
        rows = frame_rows(frame_index, self.cfg.context_frames)  # [B, L]
        x = self.embed_audio(audio_in) + gather_rows(self.frames(video), rows)  # [B, L, d]
        if self.sliding:
            return self.decode(self.decoder(self.encode_sliding(x)))
        if L <= M:
            return self.decode(self.decoder(self.encode_causal(x)))  # one window
        extra = window_start(L - 1, 0, M, hop) // hop  # windows after the first: the index of the last one
        x = F.pad(x, (0, 0, 0, M + extra * hop - L))  # [B, M + extra*hop, d]; the padding is in the future
        windows = x.unfold(1, M, hop).transpose(2, 3)  # [B, 1 + extra, M, d]
        h = self.encode_causal(windows.reshape(B * (1 + extra), M, -1))  # [B * (1 + extra), M, d]
        h = h.view(B, 1 + extra, M, -1)
        h = torch.cat([h[:, 0], h[:, 1:, M - hop:].reshape(B, extra * hop, -1)], dim=1)[:, :L]  # [B, L, d]
        return self.decode(self.decoder(h))

    def encode_causal(self, x: torch.Tensor) -> torch.Tensor:
        """Token windows [N, M', d] (M' <= max_context) -> [N, M', d], positions 0 .. M'-1, causal mask."""
        n = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=x.device, dtype=x.dtype)  # [M', M']
        return self.encoder(x + self.pos[:n], mask=mask, is_causal=True)

    def encode_sliding(self, x: torch.Tensor) -> torch.Tensor:
        """alibi: tokens [B, L, d] -> [B, L, d], each position attending to the M tokens ending at it. The layers
        of self.encoder, run as nn.TransformerEncoderLayer (pre-norm) runs them but with sliding_bias blocks."""
        for layer in self.encoder.layers:
            x = x + layer.dropout1(self.sliding_attention(layer.self_attn, layer.norm1(x)))
            x = x + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(x))))))
        return self.encoder.norm(x)

    def sliding_attention(self, attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
        """attn over x [B, L, d] in blocks of M queries, each against its own keys and the previous block's."""
        B, L, d = x.shape
        M, H = self.max_context, attn.num_heads
        blocks = -(-L // M)
        q, k, v = F.linear(F.pad(x, (0, 0, 0, blocks * M - L)), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)

        def heads(t: torch.Tensor) -> torch.Tensor:  # [B, blocks * M, d] -> [B, H, blocks * M, d / H]
            return t.unflatten(-1, (H, d // H)).transpose(1, 2)

        q = heads(q).unflatten(2, (blocks, M))  # [B, H, blocks, M, dh]
        k, v = (heads(F.pad(t, (0, 0, M, 0))).unfold(2, 2 * M, M).transpose(-1, -2) for t in (k, v))  # [B,H,b,2M,dh]
        bias = sliding_bias(self.slopes, M).to(q.dtype)[:, None].repeat(1, blocks, 1, 1)  # [H, blocks, M, 2M]
        bias[:, 0, :, :M] = float("-inf")  # before position 0 there is nothing to attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=attn.dropout if self.training else 0.0)  # [B, H, blocks, M, dh]
        return attn.out_proj(y.flatten(2, 3).transpose(1, 2).flatten(2)[:, :L])

    @torch.no_grad()
    def step_weights(self) -> TransformerStepWeights:
        """Causal mode: the weights one token's step reads, by name (see TransformerStepWeights)."""
        layers = list(self.encoder.layers)

        def stacked(get: Callable[[nn.TransformerEncoderLayer], torch.Tensor]) -> torch.Tensor:
            return torch.stack([get(layer) for layer in layers])

        return TransformerStepWeights(
            self.embed_audio.weight, self.embed_audio.bias,
            torch.zeros(self.max_context, self.cfg.d_model) if self.sliding else self.pos,
            self.slopes if self.sliding else torch.zeros(self.cfg.n_heads),
            stacked(lambda la: la.norm1.weight), stacked(lambda la: la.norm1.bias),
            stacked(lambda la: la.self_attn.in_proj_weight), stacked(lambda la: la.self_attn.in_proj_bias),
            stacked(lambda la: la.self_attn.out_proj.weight), stacked(lambda la: la.self_attn.out_proj.bias),
            stacked(lambda la: la.norm2.weight), stacked(lambda la: la.norm2.bias),
            stacked(lambda la: la.linear1.weight), stacked(lambda la: la.linear1.bias),
            stacked(lambda la: la.linear2.weight), stacked(lambda la: la.linear2.bias),
            self.encoder.norm.weight, self.encoder.norm.bias, self.decoder.weight, self.decoder.bias,
            eps=float(layers[0].norm1.eps))

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Decoder output [..., C * classes] -> [..., C] tanh or [..., C, 256] logits."""
        if self.classes == 1:
            return torch.tanh(y)
        return y.unflatten(-1, (self.cfg.channels, self.classes))  # [..., C, 256]
