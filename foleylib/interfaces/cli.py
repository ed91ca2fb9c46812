"""The `foley` command line (also `python -m foleylib`).

Errors in the user's input print one line `error: <reason> (<path>)` and exit 2; an internal failure
prints one line and exits 1; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from foleylib.core.argtypes import non_negative_float, non_negative_int, positive_float, positive_int, probability_mass
from foleylib.core.config import GENERATION_PRECISIONS, MODEL_PRESETS, AVSpec
from foleylib.core.device import configure_threads
from foleylib.core.errors import InputError
from foleylib.core.fsutil import ensure_out_dir
from foleylib.data.synth import KINDS
from foleylib.models.config import ARCHS, LOSSES, ModelConfig
from foleylib.training.command import HELP as TRAIN_HELP
from foleylib.training.command import add_train_arguments, run_train

EXIT_BAD_INPUT, EXIT_INTERNAL = 2, 1


def _print_error(err: InputError) -> None:
    print(f"error: {err}", file=sys.stderr)


def _refuse_existing(paths: list[Path], force: bool) -> None:
    """InputError for the first output that exists already, unless `force`."""
    from foleylib.generation.dub import check_output

    for path in paths:
        check_output(path, [], force)


def _spec_args(p: argparse.ArgumentParser) -> None:
    d = AVSpec()
    p.add_argument("--sr", type=positive_int, default=d.sr, help=f"audio sample rate in Hz (default {d.sr})")
    p.add_argument("--fps", type=positive_float, default=d.fps,
                   help=f"video frame rate after resampling (default {d.fps:g})")
    p.add_argument("--size", type=positive_int, default=d.size,
                   help=f"frames are resized to SIZE x SIZE (default {d.size})")
    p.add_argument("--channels", type=positive_int, default=d.channels,
                   help=f"audio channels (default {d.channels})")


def _spec_from(args: argparse.Namespace) -> AVSpec:
    return AVSpec(sr=args.sr, fps=args.fps, size=args.size, channels=args.channels)


def cmd_synth(args: argparse.Namespace) -> int:
    from foleylib.data.synth import render_scene, render_scenes

    t0 = time.perf_counter()
    out = ensure_out_dir(args.out)
    names = [args.kind] if args.count == 1 else [f"{args.kind}-{k}" for k in range(args.count)]
    _refuse_existing([out / f"{n}{suffix}" for n in names for suffix in (".mp4", ".wav", ".events.json")], args.force)
    if args.count == 1:
        paths = list(render_scene(args.kind, out, seconds=args.seconds, seed=args.seed, fps=args.fps).values())
    else:
        paths = [s["video"] for s in render_scenes(args.kind, out, args.count, args.seconds, args.seed, fps=args.fps)]
    print(f"{args.kind}: {args.count} x {args.seconds:g} s rendered in {time.perf_counter() - t0:.1f} s -> "
          + ", ".join(str(p) for p in paths))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from foleylib.data.collect import collect

    items, errors = collect(args.sources, ensure_out_dir(args.out), on_error=_print_error,
                            on_item=lambda it: print(f"{it.status}: {it.origin} -> {Path(args.out) / it.name}"))
    print(f"{len(items)} collected, {len(errors)} failed; manifest: {Path(args.out) / 'manifest.json'}")
    return EXIT_BAD_INPUT if errors else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from foleylib.data.align import MAX_SECONDS, ingest

    t0 = time.perf_counter()

    def report(r):
        print(f"{r.status}: {r.source} -> {r.clip_dir} ({r.meta['frames']} frames, {r.meta['samples']} samples, "
              f"{r.meta['seconds']:.2f} s)")

    results, errors = ingest(args.videos, ensure_out_dir(args.out), _spec_from(args), force=args.force,
                             on_error=_print_error, on_result=report, max_seconds=args.max_seconds or MAX_SECONDS,
                             jobs=args.jobs, resize="ffmpeg" if args.fast_resize else "cv2",
                             motion_cache=args.motion)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{len(results) - skipped} aligned, {skipped} unchanged, {len(errors)} failed in "
          f"{time.perf_counter() - t0:.1f} s; "
          f"manifest: {Path(args.out) / 'manifest.json'}")
    return EXIT_BAD_INPUT if errors else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from foleylib.generation.dub import dub_video

    summary = dub_video(args.video, args.ckpt, args.out, wav=args.wav, mp3=args.mp3, start=args.start,
                        seconds=args.seconds, method=args.method, seed=args.seed, temperature=args.temperature,
                        top_p=args.top_p, crossfade_ms=args.crossfade, prime_seconds=args.prime,
                        keep_original=args.keep_original, force=args.force, device=args.device,
                        progress=not args.quiet, precision=args.precision, guidance=args.guidance)
    print(f"generated {summary['seconds']:.2f} s of audio ({summary['frames']} frames) in {summary['wall_s']:.1f} s, "
          f"real-time factor {summary['rtf']:.3f} ({summary['method']}) -> {', '.join(summary['outputs'])}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from foleylib.core.fsutil import write_json
    from foleylib.evaluation.evaluate import evaluate_run
    from foleylib.generation.dub import check_output

    check_output(args.out, [args.ckpt], args.force)
    report, _ = evaluate_run(args.ckpt, args.data, seconds=args.seconds, seed=args.seed, device=args.device,
                             progress=not args.quiet, onset_metric=args.onset_metric, guidance=args.guidance,
                             temperature=args.temperature, top_p=args.top_p)
    write_json(args.out, report)
    tf = report["teacher_forced"]
    print(f"{report['arch']}/{report['mode']}/{report['loss']} on {report['clip']}: validation {report['loss']} "
          f"{tf['val_loss']:.4f} (histogram floor {tf['histogram_nll_nats']:.3f} nats); "
          f"{report['generated_seconds']:.2f} s generated, truth: {report['truth']}")
    print(f"{'':15s} {'onset F1':>8s} {'env corr':>8s} {'log-mel dB':>10s}")
    for name, m in report["metrics"].items():
        cells = [m["onset_f1"], m["envelope_corr"], m["logmel_db"]]
        print(f"{name:15s} " + " ".join(f"{'-' if v is None else f'{v:.3f}':>{w}s}" for v, w in zip(cells, (8, 8, 10))))
    print(f"uses the video (vs shuffled video: as good on onset F1 and envelope correlation, better on one): "
          f"{report['uses_video']} "
          f"-> {args.out}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from foleylib.evaluation.table import run_table

    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()] if not args.videos else None
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = sorted(set(archs) - set(ARCHS)) + sorted(set(scenes or []) - set(KINDS))
    if unknown:
        raise InputError(f"unknown architecture or scene: {', '.join(unknown)}", args.out)
    _refuse_existing([Path(args.out) / "table1.md", Path(args.out) / "table1.csv"], args.force)
    t0 = time.perf_counter()
    cells = run_table(ensure_out_dir(args.out), archs, scenes=scenes, videos=args.videos, preset=args.preset,
                      loss=args.loss, steps=args.steps, gen_seconds=args.gen_seconds, scene_seconds=args.seconds,
                      seed=args.seed, log=print)
    failed = sum("error" in c for c in cells.values())
    print(f"{len(cells) - failed} cells done, {failed} failed in {(time.perf_counter() - t0) / 60:.1f} min -> "
          f"{Path(args.out) / 'table1.md'}, {Path(args.out) / 'table1.csv'}")
    return 1 if failed else 0


def cmd_crossval(args: argparse.Namespace) -> int:
    from foleylib.evaluation.crossval import CrossvalConfig, run_crossval, split_options, train_options

    _refuse_existing([Path(args.out) / "crossval.md", Path(args.out) / "crossval.json"], args.force)
    cfg = CrossvalConfig(mode=args.mode, finetune_steps=args.finetune_steps,
                         finetune_args=split_options(args.finetune_args, "--finetune-args"), seed=args.seed,
                         device=args.device, threads=args.threads, resamples=args.resamples, takes=args.takes,
                         segments=args.segments, repeats=args.repeats, guidance=args.guidance,
                         temperature=args.temperature, top_p=args.top_p,
                         train_args=train_options(args.train_args, arch=args.arch, preset=args.preset,
                                                  steps=args.steps, loss=args.loss, batch_size=args.batch_size))
    t0 = time.perf_counter()
    report = run_crossval(args.videos, args.out, args.group_by, cfg, spec=_spec_from(args), force=args.force,
                          log=print, also_train=args.also_train)
    model, above = report["summary"]["means"]["model"]["onset_f1"], report["summary"]["above"]["video_shuffled"]
    print(f"{len(report['folds'])} clips in {(time.perf_counter() - t0) / 60:.1f} min; model onset F1 "
          f"{'-' if model is None else format(model['mean'], '.3f')}, above its shuffled-video twin's on "
          f"{above['clips']} of {above['of']} clips -> {Path(args.out) / 'crossval.md'}, "
          f"{Path(args.out) / 'crossval.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from foleylib.interfaces.demo import run_demo

    _refuse_existing([Path(args.out) / name for name in ("demo.mp4", "demo.wav", "waveform.png", "metrics.json")],
                     args.force)
    outputs = run_demo(ensure_out_dir(args.out), seconds=args.seconds, steps=args.steps, gen_seconds=args.gen_seconds,
                       seed=args.seed, log=print, progress=not args.quiet)
    print("demo outputs: " + ", ".join(str(p) for p in outputs))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from foleylib.core.fsutil import atomic_path, write_json
    from foleylib.evaluation.plots import plot_context_scaling
    from foleylib.interfaces.bench import run_bench

    _refuse_existing([p for p in (args.out, args.plot) if p], args.force)
    report = run_bench(quick=args.quick, seed=args.seed, log=print)
    write_json(args.out, report)
    outputs = [args.out]
    if args.plot:
        with atomic_path(args.plot) as tmp:
            plot_context_scaling(report["context_scaling"]).savefig(tmp, dpi=120)
        outputs.append(args.plot)
    print(f"benchmark done in {report['wall_s'] / 60:.1f} min -> {', '.join(map(str, outputs))}")
    return 0


def _add_synth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic scene with known ground truth")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--seconds", type=positive_float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=positive_float, default=25.0)
    p.add_argument("--count", type=positive_int, default=1,
                   help="render N varied scenes KIND-0 .. KIND-(N-1) (seeds SEED.., own colours) for multi-video "
                        "training")
    p.add_argument("--out", type=Path, default=Path("data/synth"))
    p.add_argument("--force", action="store_true", help="replace existing scene files")
    p.set_defaults(func=cmd_synth)


def _add_collect_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="copy home-made videos / download online videos into a collection")
    p.add_argument("sources", nargs="+", help="video files, folders or URLs")
    p.add_argument("--out", type=Path, default=Path("data/raw"))
    p.set_defaults(func=cmd_collect)


def _add_ingest_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="align videos into the training cache (paper Sec. III-B)")
    p.add_argument("videos", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("data/aligned"))
    p.add_argument("--force", action="store_true", help="re-align even when source and parameters are unchanged")
    p.add_argument("--max-seconds", type=positive_float, help="refuse videos longer than this (default 4 hours)")
    p.add_argument("--jobs", type=non_negative_int, default=1,
                   help="videos aligned at once, each on a thread driving its own ffmpeg (default 1; 0: one per core)")
    p.add_argument("--fast-resize", action="store_true",
                   help="resize frames with ffmpeg's area scaler while decoding instead of cv2's INTER_AREA on "
                        "whole frames (faster; frames differ by a few levels, see README)")
    p.add_argument("--motion", action="store_true",
                   help="also cache the frames' motion in motion.npy, for models with --video-input rgb+motion or "
                        "motion (two optical flows per frame, more work than the decode; without it such models "
                        "compute the same values when they load the clip)")
    _spec_args(p)
    p.set_defaults(func=cmd_ingest)


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=TRAIN_HELP)
    add_train_arguments(p)
    p.set_defaults(func=run_train)


def _run_options(p: argparse.ArgumentParser, force_help: str) -> None:
    """--seed, --device, --force and --quiet of the commands that run a model."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.add_argument("--force", action="store_true", help=force_help)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate audio for a video and mux it back in (paper Sec. III-D, Fig. 4)")
    p.add_argument("video", type=Path, help="any video file ffmpeg reads")
    p.add_argument("--ckpt", type=Path, required=True, help="run folder (or its model.pt) from foley train")
    p.add_argument("--out", type=Path, required=True, help="MP4 to write: the video with the generated audio")
    p.add_argument("--wav", type=Path, help="also write the generated audio as WAV")
    p.add_argument("--mp3", type=Path, help="also write the generated audio as MP3 (as the paper)")
    p.add_argument("--start", type=non_negative_float, default=0.0, help="first second to generate (default 0)")
    p.add_argument("--seconds", type=positive_float, help="how many seconds to generate (default: to the end)")
    p.add_argument("--method", choices=["auto", "naive", "cached"], default="auto",
                   help="naive re-runs the model on its whole context per step (the paper); cached keeps "
                        "per-layer state (causal wavenet/transformer); auto: cached where possible")
    p.add_argument("--precision", choices=GENERATION_PRECISIONS, default="fp32",
                   help="cached generation's weights: fp32 (default; equals naive) or int8 with per-row scales "
                        "(faster; outputs within about 1%% of fp32's)")
    _sampling_options(p, "each sample")
    p.add_argument("--crossfade", type=non_negative_float, default=0.0,
                   help="deep fusion: overlap segments by MS milliseconds with a crossfade")
    p.add_argument("--prime", type=non_negative_float, default=0.0,
                   help="start from the video's own last PRIME seconds of audio instead of silence")
    p.add_argument("--keep-original", action="store_true", help="keep the original audio as a second track")
    _run_options(p, "replace existing output files")
    p.set_defaults(func=cmd_generate)


def _sampling_options(p: argparse.ArgumentParser, what: str) -> None:
    """--temperature, --top-p and --guidance W (classifier-free guidance, FoleyEngine's) of `what`."""
    p.add_argument("--temperature", type=non_negative_float, default=1.0,
                   help="mu-law sampling temperature (0 = argmax; default 1)")
    p.add_argument("--top-p", type=probability_mass, default=1.0, help="mu-law nucleus sampling mass (1 = off)")
    p.add_argument("--guidance", type=non_negative_float, default=1.0, metavar="W",
                   help=f"mu-law models: classifier-free guidance, {what} drawn from u + W (c - u), c the logits on "
                        "the frames and u on black frames (train with --video-dropout P); 1 = off (default)")


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a run on its clip's held-out tail, next to baselines (paper Sec. IV)")
    p.add_argument("--ckpt", type=Path, required=True, help="run folder from foley train")
    p.add_argument("--data", type=Path, help="aligned clip folder (default: the first clip the run trained on)")
    p.add_argument("--out", type=Path, required=True, help="JSON report to write")
    p.add_argument("--seconds", type=positive_float, default=4.0, help="seconds of the tail to generate (default 4)")
    p.add_argument("--onset-metric", choices=["strict", "condfoleygen"], default="strict",
                   help="onset accuracy and AP: strict (default) or exactly as CondFoleyGen's predict_onset.py")
    _sampling_options(p, "the model's and its twins' samples")
    _run_options(p, "replace an existing report")
    p.set_defaults(func=cmd_evaluate)


def _add_table_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("table", help="Table I as a papermill batch: train and evaluate per (video, architecture)")
    p.add_argument("--scenes", default="car,clap,water", help="synthetic scenes (default car,clap,water)")
    p.add_argument("--videos", nargs="+", type=Path, help="your own videos instead of the synthetic scenes")
    p.add_argument("--archs", default=",".join(ARCHS), help="architectures (default: all three)")
    p.add_argument("--preset", choices=MODEL_PRESETS, default="small")
    p.add_argument("--loss", choices=LOSSES, default=ModelConfig.loss)
    p.add_argument("--steps", type=positive_int, default=200, help="training steps per cell (default 200)")
    p.add_argument("--gen-seconds", type=positive_float, default=2.0,
                   help="seconds of each held-out tail generated (default 2)")
    p.add_argument("--seconds", type=positive_float, default=30.0, help="length of each synthetic scene (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--force", action="store_true", help="replace the tables of an earlier batch in OUT")
    p.set_defaults(func=cmd_table)


def _add_crossval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossval", help="leave-one-clip-out evaluation over groups of clips, next to twins and "
                                        "baselines, with bootstrap intervals over clips")
    p.add_argument("videos", nargs="+", type=Path, help="videos (aligned into OUT/data/aligned) or aligned clips")
    p.add_argument("--group-by", default="all", metavar="HOW",
                   help="all (one group, the default), a .json ({clip: group}) or .csv (clip,group rows) file, or a "
                        "regular expression searched in each clip name (group: its first capture group or the match)")
    p.add_argument("--mode", choices=["loo", "finetune"], default="loo",
                   help="loo: train on the other clips of the group, generate the held-out clip whole (default); "
                        "finetune: then fine-tune on the held-out clip's head and generate its tail")
    p.add_argument("--arch", choices=ARCHS, help="default wavenet")
    p.add_argument("--preset", choices=MODEL_PRESETS, help="default small")
    p.add_argument("--steps", type=positive_int, help="training steps per fold (default 200)")
    p.add_argument("--loss", choices=LOSSES, help="default ce")
    p.add_argument("--batch-size", type=positive_int, help="default 8")
    p.add_argument("--train-args", default="", metavar="OPTIONS",
                   help="more foley train options, e.g. --train-args='--video-input rgb+motion --augment flip'")
    p.add_argument("--finetune-steps", type=positive_int, default=100, help="finetune mode (default 100)")
    p.add_argument("--finetune-args", default="", metavar="OPTIONS",
                   help="finetune mode: foley train options for the fine-tuning only, after --train-args, e.g. "
                        "--finetune-args='--freeze audio'")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--also-train", nargs="+", type=Path, default=[], metavar="VIDEO_OR_CLIP",
                   help="videos or aligned clips in every fold's training data (a pretraining corpus), never held "
                        "out or scored")
    p.add_argument("--takes", type=positive_int, default=1,
                   help="takes each system generates per clip (seeds SEED, SEED+1, ...); scores are their mean")
    p.add_argument("--segments", type=positive_int, default=1, metavar="K",
                   help="finetune mode: score the whole held-out clip in K equal segments, each generated after "
                        "fine-tuning on the rest of the clip (default 1: its tail)")
    p.add_argument("--repeats", type=positive_int, default=1, metavar="R",
                   help="train and score every fold R times (seeds SEED .. SEED+R-1, in OUT/folds/<clip>/seed<S>); "
                        "a clip's scores are the means over them (default 1)")
    _sampling_options(p, "the model's and its twins' samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.add_argument("--out", type=Path, default=Path("results/crossval"))
    p.add_argument("--force", action="store_true",
                   help="replace the tables of an earlier run in OUT and redo folds run with other settings")
    _spec_args(p)
    p.set_defaults(func=cmd_crossval)


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on an embedded synthetic scene (no download)")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    p.add_argument("--force", action="store_true", help="replace the outputs of an earlier demo")
    p.add_argument("--seconds", type=positive_float, default=40.0, help="length of the clap scene (default 40)")
    p.add_argument("--steps", type=positive_int, default=300, help="training steps (default 300)")
    p.add_argument("--gen-seconds", type=positive_float, default=6.0,
                   help="seconds of the held-out tail to generate (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def _add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure generation, training and ingest speed on this machine (JSON)")
    p.add_argument("--out", type=Path, required=True, help="JSON report to write")
    p.add_argument("--plot", type=Path, help="also plot real-time factor against receptive field (PNG)")
    p.add_argument("--quick", action="store_true", help="tiny models and short clips: checks it runs (~1 min)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_bench)


SUBCOMMANDS = (_add_synth_parser, _add_collect_parser, _add_ingest_parser, _add_train_parser, _add_generate_parser,
               _add_evaluate_parser, _add_table_parser, _add_crossval_parser, _add_demo_parser, _add_bench_parser)


def build_parser() -> argparse.ArgumentParser:
    """The `foley` parser: one subcommand per `_add_*_parser`, in the order `foley --help` lists them."""
    parser = argparse.ArgumentParser(prog="foley", description="Learn to generate audio for silent video.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    if "torch" not in sys.modules:  # a fresh process, not code that set torch up already and calls main()
        configure_threads()
    try:
        return args.func(args)
    except InputError as err:
        if args.debug:
            raise
        _print_error(err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        if args.debug:
            raise
        print(f"error: internal failure: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
