"""The sync loss (`foley train --sync-weight W`): the video branch learns where sounds start, directly.

With a few real clips the audio model's cross-entropy barely reaches the video context embedding: a burst is
unpredictable sample by sample with or without the picture. The sync loss adds a per-frame task that only the
picture can solve. A linear read-out of each frame's embedding e_p (FrameEmbedding.sync) is trained with binary
cross-entropy to tell, at every scored position, whether a sound starts there (batches.sound_starts, the rule the
onset weights use), from the frame on screen at that position. The embedding the audio model is conditioned on
is the one this task shapes; the read-out itself is never used to generate.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from foleylib.data.batches import score_mask, sound_starts
from foleylib.models.video import frame_rows, gather_rows


@contextmanager
def frame_embeddings(net: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Inside the block, every output of net.frames (the FrameEmbedding: [B, W, d] per forward) is appended to
    the list it yields, so the sync loss reads the embeddings the forward pass computed."""
    seen: list[torch.Tensor] = []
    handle = net.frames.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def sync_loss(net: torch.nn.Module, e: torch.Tensor, batch: dict, sr: int) -> torch.Tensor:
    """Binary cross-entropy of the read-out of e [B, W, d] (net.frames' output for `batch`) at every scored
    position's frame against whether a sound starts there."""
    rows = frame_rows(batch["frame_index"], net.cfg.context_frames)  # [B, L]
    logits = gather_rows(net.frames.sync(e), rows)[..., 0]  # [B, L]
    starts = sound_starts(batch["target"], sr).to(logits.dtype)
    mask = score_mask(batch, logits.shape[1], logits.device)
    return F.binary_cross_entropy_with_logits(logits[mask], starts[mask])
