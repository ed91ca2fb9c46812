"""The `foley train` command: its options and what it runs. The CLI attaches it as a subcommand; `foley crossval`
parses and runs the same options for each fold (so nothing here imports the CLI)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from foleylib.core.argtypes import (
    fraction_span,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    share,
)
from foleylib.core.config import MODEL_PRESETS
from foleylib.core.errors import InputError
from foleylib.core.fsutil import ensure_out_dir
from foleylib.data.motion import VIDEO_INPUTS
from foleylib.models.config import ARCHS, LOSSES, MODES, NORMS, POSITIONS, VARIANTS, ModelConfig
from foleylib.training.config import TrainConfig

HELP = "train a generator on aligned clips (paper Sec. III-D)"


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `foley train`: choices from the registries, defaults from ModelConfig and TrainConfig."""
    m, t = ModelConfig, TrainConfig
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--mode", choices=MODES,
                   help="paper: one prediction per window; causal: every position (default; fusion: paper)")
    p.add_argument("--variant", choices=VARIANTS, default=m.variant, help="transformer audio context")
    p.add_argument("--loss", choices=LOSSES, default=m.loss)
    p.add_argument("--positions", choices=POSITIONS, default=m.positions,
                   help="causal transformer: learned absolute positions in windows (the paper) or alibi "
                        "(relative: the window slides by one, generation never re-encodes)")
    p.add_argument("--data", nargs="+", type=Path, required=True, help="aligned clip folders or folders of them")
    p.add_argument("--val-data", nargs="+", type=Path,
                   help="clips to validate on, never trained on (default: the last 20%% of each --data clip)")
    p.add_argument("--val-span", type=fraction_span, metavar="START,END",
                   help="the part of each --data clip that validates, as fractions of its length (default 0.8,1: "
                        "the last 20%%); the frames before and after it train")
    p.add_argument("--preset", choices=MODEL_PRESETS, default="small")
    p.add_argument("--steps", type=positive_int, default=t.steps, help=f"optimizer steps (default {t.steps})")
    p.add_argument("--batch-size", type=positive_int, default=t.batch_size)
    p.add_argument("--lr", type=positive_float, default=t.lr)
    p.add_argument("--window", type=positive_int, default=t.window, help="causal mode: positions per window")
    p.add_argument("--context-frames", type=positive_int, help="video frames seen (default: the preset's)")
    p.add_argument("--context-samples", type=positive_int, help="audio context in samples (default: the preset's)")
    p.add_argument("--val-every", type=positive_int, default=t.val_every,
                   help=f"validate every K steps and at the end (default {t.val_every})")
    p.add_argument("--checkpoint-every", type=positive_int, default=t.checkpoint_every,
                   help="write OUT/checkpoint.pt every K steps (and at the end, and on Ctrl-C)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint")
    p.add_argument("--init", type=Path, metavar="RUN",
                   help="start from RUN's weights (same --arch/--mode/--positions/--preset/--norm): pretrain, then "
                        "fine-tune")
    p.add_argument("--freeze", choices=["video", "audio"],
                   help="keep the video context embedding (or everything else) as initialized, norm statistics too")
    p.add_argument("--augment", default=t.augment, metavar="LIST",
                   help="training augmentation, comma-separated: crop, flip, jitter, gain (default none); "
                        "per example, the same for all its frames and audio, never shifting one against the other")
    p.add_argument("--onset-weight", type=non_negative_float, default=t.onset_weight, metavar="W",
                   help="weigh the loss 1 + W where a sound starts in the target (default 0: off)")
    p.add_argument("--sync-weight", type=non_negative_float, default=t.sync_weight, metavar="W",
                   help="causal wavenet/transformer: add W times the sync loss, a read-out of each frame's video "
                        "embedding trained to tell where sounds start (default 0: off)")
    p.add_argument("--video-dropout", type=share, default=t.video_dropout, metavar="P",
                   help="train a share P of the examples on black frames, so that generation can use classifier-free "
                        "guidance (--guidance); default 0: off")
    p.add_argument("--norm", choices=NORMS, default=m.norm,
                   help="video encoder normalization: batch (the paper) or group (per example)")
    p.add_argument("--video-input", choices=VIDEO_INPUTS, default=m.video_input,
                   help="what the video encoder sees: RGB frames (the paper), RGB + motion channels (frame "
                        "difference, optical flow, impact cue) or motion only")
    p.add_argument("--video-lookahead", type=non_negative_int, default=m.video_lookahead, metavar="K",
                   help="the video context ends K frames after the one on screen: a file's next frames show where "
                        "a sound starts (rgb input; live generation then runs K frames late); default 0, the paper")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=t.precision,
                   help="bf16: mixed precision (bfloat16 autocast), for GPUs (default fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long GPU runs)")
    p.add_argument("--workers", type=non_negative_int, default=t.workers,
                   help="DataLoader worker processes (pinned memory on CUDA; default 0)")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="data-parallel processes on this machine (torchrun + DDP; --batch-size is the global batch)")
    p.add_argument("--force", action="store_true", help="start over in a run folder that holds a run")
    p.add_argument("--seed", type=int, default=t.seed)
    p.add_argument("--device", default=t.device, help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", type=Path, required=True, help="run folder")


def train_parser() -> argparse.ArgumentParser:
    """`foley train`'s options as a parser of their own (for running the command from other code)."""
    parser = argparse.ArgumentParser(prog="foley train", description=HELP)
    add_train_arguments(parser)
    return parser


def _without_nproc(argv: list[str]) -> list[str]:
    """The arguments after `train`, less --nproc and its value."""
    rest = argv[argv.index("train") + 1:]
    drop = {i for i, a in enumerate(rest) if a == "--nproc" for i in (i, i + 1)}
    return [a for i, a in enumerate(rest) if i not in drop and not a.startswith("--nproc=")]


def run_train(args: argparse.Namespace) -> int:
    import subprocess

    from foleylib.training.distributed import launched, torchrun_command

    if args.nproc > 1 and not launched():
        return subprocess.run(torchrun_command(args.nproc, _without_nproc(args.argv))).returncode
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    from foleylib.core.config import preset
    from foleylib.data.dataset import check_compatible, find_clips
    from foleylib.models.config import model_config
    from foleylib.training.distributed import main_process
    from foleylib.training.trainer import TrainingInterrupted, train

    if args.val_span and args.val_data:
        raise InputError("--val-span holds out part of each --data clip; with --val-data the clips train whole",
                         args.out)
    clips = find_clips(args.data)
    val_clips = find_clips(args.val_data) if args.val_data else None
    context = preset(args.preset)
    spec = check_compatible(clips + (val_clips or [])).with_(
        context_frames=args.context_frames or context.context_frames,
        context_samples=args.context_samples or context.context_samples)
    overrides = ({"loss": args.loss, "variant": args.variant, "norm": args.norm, "video_input": args.video_input,
                  "video_lookahead": args.video_lookahead, "positions": args.positions,
                  "sync_head": args.sync_weight > 0}
                 | ({"mode": args.mode} if args.mode else {}))
    try:
        cfg = model_config(args.arch, args.preset, spec, **overrides)
        cfg.check()
    except ValueError as err:
        raise InputError(str(err), args.out) from None
    tc = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, window=args.window,
                     warmup_steps=min(TrainConfig.warmup_steps, max(1, args.steps // 10)),
                     val_every=args.val_every, checkpoint_every=args.checkpoint_every, seed=args.seed,
                     device=args.device, precision=args.precision, compile=args.compile, workers=args.workers,
                     augment=args.augment, onset_weight=args.onset_weight, freeze=args.freeze or "",
                     sync_weight=args.sync_weight, video_dropout=args.video_dropout,
                     **({"val_fraction": args.val_span[1] - args.val_span[0], "val_end": args.val_span[1]}
                        if args.val_span else {}))
    out = ensure_out_dir(args.out)
    if not (args.resume or args.force) and any((out / name).exists() for name in ("model.pt", "checkpoint.pt")):
        raise InputError("the run folder holds a run already (--resume continues it, --force starts over)", out)
    try:
        final = train(clips, cfg, tc, out, progress=not args.quiet, resume=args.resume, val_clips=val_clips,
                      init=args.init)
    except TrainingInterrupted as stop:
        if main_process():
            print(f"interrupted after step {stop.step}; continue with the same command and --resume "
                  f"({stop.checkpoint})", file=sys.stderr)
        return 130
    if not main_process():
        return 0
    held_out = f", validated on {len(val_clips)} unseen" if val_clips else ""
    print(f"trained {cfg.arch}/{cfg.mode}/{cfg.loss} on {len(clips)} clip(s){held_out}: train loss "
          f"{final['train_loss']:.4f}, "
          f"val loss {final['val_loss']:.4f}, {final['wall_s']:.1f} s -> {args.out}")
    return 0
