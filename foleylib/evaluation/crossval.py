"""Leave-one-clip-out evaluation over groups of clips (`foley crossval`): real-clip numbers that can be trusted.

The two-second tail of a six-second clip holds one or two impacts, so a table of such tails is mostly noise.
Here every clip of a group (at least two clips per group) is held out once: a model trained on the other clips of
its group (`foley train` with the user's options, validated on the held-out clip) generates the whole held-out
clip from its frames, next to itself on shuffled and on zeroed video and to the motion-burst, histogram and
silence baselines (`evaluate.free_running`). All are scored by `metrics.audio_metrics` and by the Frechet audio
distance (YAMNet) per clip and pooled over each group. In mode `finetune` the model pretrained on the others is
fine-tuned on the held-out clip's head (`foley train --init`) and generates its tail instead. With `takes` > 1
every system generates that many takes (seeds seed, seed + 1, ...) and a clip's score is their mean (FAD: the
takes' embeddings pooled), so one unlucky draw does not decide a clip.

OUT/crossval.json holds the per-clip rows and, per system and metric, the mean over clips with a percentile
bootstrap interval (`metrics.bootstrap_mean`) and the model's paired differences from its twins; OUT/crossval.md
shows them as tables. Each fold lives in OUT/folds/<clip>/ (training run, generated audio, embeddings,
fold.json); a fold whose fold.json holds the same settings is reused, so a killed batch continues where it
stopped, and one whose runs were trained the same way but that generates otherwise (takes, sampling) keeps its
runs and only generates and scores again.

A tail of one or two seconds holds few sounds, so one clip's verdict rests on a handful of onsets. With `segments`
K > 1 (mode finetune) every part of the held-out clip is scored: the clip is cut into K equal segments, and for
each one the pretrained model is fine-tuned on the rest of the clip (`foley train --val-span`, the frames before
and after the segment) and generates that segment, primed with the real audio before it; the clip's scores are
the mean over its segments and takes, and its audio files hold the K segments end to end.

One training seed can decide a clip's verdict as much as the video does (a model trained with another seed may
fall on the other side of its twin). With `repeats` R > 1 every fold is trained and scored R times, with seeds
seed .. seed + R - 1 (each in OUT/folds/<clip>/seed<S>/), and a clip's scores are the means over its repeats: the
verdict of R models, not of one. crossval.json then keeps each repeat's scores per clip and each seed's summary.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from foleylib.core.config import AVSpec
from foleylib.core.errors import InputError
from foleylib.core.fsutil import atomic_path, write_json
from foleylib.core.names import safe_name
from foleylib.data.align import ingest_file
from foleylib.data.dataset import AlignedClip, check_compatible, load_clip, split_by_time
from foleylib.data.media import write_audio
from foleylib.evaluation.ablation import twin_nll
from foleylib.evaluation.evaluate import frames_audio, free_running, score_generated, uses_video
from foleylib.evaluation.fad import embedding_distance, yamnet_embeddings
from foleylib.evaluation.metrics import bootstrap_mean, condfoleygen_scores
from foleylib.evaluation.notebook import fmt_cell
from foleylib.generation.generate import torch_threads
from foleylib.training.checkpoint import load_model
from foleylib.training.command import run_train, train_parser

MODES = ("loo", "finetune")
SYSTEMS = ("model", "video_shuffled", "video_zeroed", "motion_bursts", "histogram", "silence")
TWINS = ("video_shuffled", "video_zeroed")
METRICS = {"onset_f1": "higher", "onset_ap": "higher", "onset_acc": "higher", "condfoleygen_ap": "higher",
           "condfoleygen_acc": "higher", "envelope_corr": "higher", "logmel_db": "lower", "mrstft": "lower",
           "fad": "lower", "nll": "lower", "onset_nll": "lower"}  # the tables' columns: which way is better
DEFAULT_TRAIN = {"arch": "wavenet", "preset": "small", "steps": 200, "loss": "ce", "batch_size": 8}


def train_options(extra: str = "", **chosen) -> tuple[str, ...]:
    """`foley train` options: DEFAULT_TRAIN updated by `chosen` (arch, preset, steps, loss, batch_size), then the
    shell-split options in `extra` (e.g. "--video-input rgb+motion --augment flip,gain")."""
    named = DEFAULT_TRAIN | {k: v for k, v in chosen.items() if v is not None}
    return tuple(a for k, v in named.items() for a in (f"--{k.replace('_', '-')}", str(v))) + split_options(
        extra, "--train-args")


def split_options(text: str, flag: str) -> tuple[str, ...]:
    """Options written as one shell string (the value of `flag`), split as a shell would."""
    try:
        return tuple(shlex.split(text))
    except ValueError as err:
        raise InputError(f"{flag}: {err}", text) from None


@dataclass(frozen=True)
class CrossvalConfig:
    """How each fold trains, generates and is scored. `train_args` are `foley train` options (anything it
    takes except --data/--val-data/--out/--init/--seed/--device); fine-tuning runs `finetune_steps` more, with
    `finetune_args` added to them (e.g. --freeze audio: only the video side adapts to the held-out clip)."""

    mode: str = "loo"
    train_args: tuple[str, ...] = field(default_factory=train_options)
    finetune_steps: int = 100
    finetune_args: tuple[str, ...] = ()
    seed: int = 0
    device: str = "auto"
    threads: int = 1  # torch threads in training and generation (the protocol runs one job per core)
    takes: int = 1  # generated takes per system and clip, scores averaged over them
    segments: int = 1  # mode finetune: segments of each held-out clip scored in turn (1: its tail)
    repeats: int = 1  # folds trained and scored per clip (seeds seed, seed + 1, ...), scores averaged over them
    guidance: float = 1.0  # classifier-free guidance weight of the model's and its twins' generation (1: none)
    temperature: float = 1.0  # mu-law sampling temperature of the model and its twins (0: argmax)
    top_p: float = 1.0  # their nucleus sampling mass (1: off)
    resamples: int = 2000  # bootstrap resamples
    confidence: float = 0.95  # bootstrap interval

    def reads_motion(self) -> bool:
        """Whether the folds' models read motion channels (`--video-input rgb+motion` or `motion` in train_args):
        their videos are then ingested with the motion cache, so that no fold computes the motion again."""
        return train_parser().parse_args([*self.train_args, "--data", "x", "--out", "x"]).video_input != "rgb"

    def fold_settings(self, train_clips: list[str]) -> dict:
        """What a finished fold must have been run with to be reused: its training settings and how it generated
        (GENERATION_SETTINGS: takes and the sampling, each recorded only where it is not the default)."""
        return self.training_settings(train_clips) | {
            name: getattr(self, name) for name in GENERATION_SETTINGS if getattr(self, name) != 1}

    def training_settings(self, train_clips: list[str]) -> dict:
        """What a fold's runs must have been trained with to be reused by a fold that generates otherwise."""
        return {"mode": self.mode, "train_args": list(self.train_args), "seed": self.seed,
                "train_clips": sorted(train_clips)} | (
            {"finetune_steps": self.finetune_steps} if self.mode == "finetune" else {}) | (
            {"finetune_args": list(self.finetune_args)} if self.finetune_args else {}) | (
            {"segments": self.segments} if self.segments > 1 else {})


# fold settings that change what is generated, not what is trained (each defaults to 1)
GENERATION_SETTINGS = ("takes", "guidance", "temperature", "top_p")


def check_train_args(train_args: tuple[str, ...], out: Path, flag: str = "--train-args") -> None:
    """Refuse options `foley train` would refuse, or that crossval sets itself, before any fold runs; `flag`
    names where they came from."""
    own = {"--data", "--val-data", "--out", "--init", "--seed", "--device", "--resume", "--nproc", "--val-span"}
    clash = sorted(own & {a.split("=")[0] for a in train_args})
    if clash:
        raise InputError(f"{flag} may not set {', '.join(clash)} (crossval sets it per fold)", out)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            train_parser().parse_args([*train_args, "--data", "x", "--out", "x"])
    except SystemExit:
        last = [ln for ln in stderr.getvalue().splitlines() if ln.strip()][-1:] or ["invalid"]
        raise InputError(f"foley train refuses these options: {last[0].split('error: ')[-1]}", out) from None


def clip_groups(names: list[str], group_by: str) -> dict[str, str]:
    """The group of each clip name by `group_by`: "all" (one group), a .json file ({name: group}) or .csv file
    (rows name,group) keyed by clip or video file names, or a regular expression searched in each name (the group
    is its first capture group, or the whole match). Every group needs two clips at least."""
    if group_by == "all":
        groups = dict.fromkeys(names, "all")
    elif Path(group_by).suffix.lower() in (".json", ".csv"):
        mapping = {safe_name(Path(k).stem): str(v) for k, v in _read_mapping(Path(group_by)).items()}
        groups = {name: mapping.get(name) for name in names}
        for name, group in groups.items():
            if group is None:
                raise InputError(f"no group for clip {name!r} in this mapping", group_by)
    else:
        try:
            pattern = re.compile(group_by)
        except re.error as err:
            raise InputError(f"--group-by is not all, a .json/.csv file or a regular expression: {err}",
                             group_by) from None
        groups = {}
        for name in names:
            found = pattern.search(name)
            if not found:
                raise InputError(f"--group-by {group_by!r} does not match clip {name!r}", name)
            groups[name] = found.group(1) if pattern.groups else found.group(0)
    for group in set(groups.values()):
        members = [n for n, g in groups.items() if g == group]
        if len(members) < 2:
            raise InputError(f"group {group!r} has one clip ({members[0]}); leave-one-clip-out needs two or more",
                             group_by)
    return groups


def _read_mapping(path: Path) -> dict:
    try:
        if path.suffix.lower() == ".json":
            mapping = json.loads(path.read_text())
            if not isinstance(mapping, dict):
                raise ValueError("expected an object {clip: group}")
            return mapping
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r]
        if any(len(r) != 2 for r in rows):
            raise ValueError("expected two columns per row: clip,group")
        return dict(rows)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the group mapping: {err}", path) from None


def prepare_clips(sources: list[Path], out: Path, spec: AVSpec, log: Callable[[str], None],
                  motion_cache: bool = False) -> dict[str, AlignedClip]:
    """The clips by name: aligned clip folders as they are, videos aligned into OUT/data/aligned (with the motion
    cache when `motion_cache`: see ingest_file)."""
    clips = {}
    for source in sources:
        if source.is_dir():
            clip = load_clip(source)
        else:
            result = ingest_file(source, out / "data" / "aligned", spec, motion_cache=motion_cache)
            log(f"{result.status}: {source} -> {result.clip_dir}")
            clip = load_clip(result.clip_dir)
        if clip.name in clips:
            raise InputError(f"two inputs make a clip named {clip.name!r}", source)
        clips[clip.name] = clip
    check_compatible(list(clips.values()))
    return clips


def train_fold(cfg: CrossvalConfig, data: list[Path], out: Path, val: list[Path] | None = None,
               init: Path | None = None, val_span: tuple[float, float] | None = None) -> dict:
    """Train one run with `foley train` (in this process) and return its last metrics record."""
    argv = ["train", *cfg.train_args, "--data", *map(str, data), "--out", str(out), "--seed", str(cfg.seed),
            "--device", cfg.device, "--quiet", "--force"]
    argv += ["--val-data", *map(str, val)] if val else []
    argv += ["--init", str(init), "--steps", str(cfg.finetune_steps), *cfg.finetune_args] if init else []
    argv += ["--val-span", ",".join(map(repr, val_span))] if val_span else []
    args = train_parser().parse_args(argv[1:])
    args.argv = argv
    if run_train(args):
        raise KeyboardInterrupt  # foley train stopped on Ctrl-C (it reported where)
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def run_fold(cfg: CrossvalConfig, clip: AlignedClip, others: list[AlignedClip], group: str, fold_dir: Path) -> dict:
    """Train, generate and score one held-out clip; writes fold_dir/{run, finetune, audio, embeddings.npz,
    fold.json}. The runs of a finished fold trained with the same settings are reused (only generation settings
    changed: trained_runs)."""
    t0 = time.perf_counter()
    run = fold_dir / "run"
    reuse = trained_runs(fold_dir, cfg.training_settings([c.name for c in others]))

    def run_record(out: Path, *args, **kwargs) -> dict:
        """A run's last metrics record: the reused run's, or after training it."""
        if reuse:
            return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        return train_fold(cfg, *args, out, **kwargs)

    record = run_record(run, [c.path for c in others], val=[clip.path])
    if cfg.mode == "loo":  # the whole clip, by the model trained on the others
        pieces = [Piece(run, range(clip.meta["frames"]), np.concatenate([np.asarray(c.audio) for c in others]),
                        record.get("val_loss"))]
    else:  # a part of the clip, by the model fine-tuned on the rest of it
        spans = [None] if cfg.segments == 1 else [(j / cfg.segments, (j + 1) / cfg.segments)
                                                   for j in range(cfg.segments)]
        pieces = []
        for j, span in enumerate(spans):
            tuned = fold_dir / "finetune" / (f"segment{j}" if span else "")
            tuned_record = run_record(tuned, [clip.path], init=run, val_span=span)
            split = json.loads((tuned / "config.json").read_text())["train"]
            trained, held_out = split_by_time(clip, split["val_fraction"], split.get("val_end", 1.0))
            audio = np.concatenate([np.asarray(frames_audio(clip, part, clip.spec)) for part in trained])
            pieces.append(Piece(tuned, held_out, audio, tuned_record.get("val_loss")))
    train_s = time.perf_counter() - t0
    scored = [score_piece(cfg, clip, piece) for piece in pieces]
    spec = clip.spec
    takes = [{name: np.concatenate([s.takes[take][name] for s in scored]) for name in SYSTEMS}
             for take in range(cfg.takes)]  # each take's pieces end to end
    reference = [s.reference for s in scored]
    embeddings = {name: yamnet_embeddings([s.takes[take][name] for s in scored for take in range(cfg.takes)],
                                          spec.sr) for name in SYSTEMS}
    embeddings["reference"] = yamnet_embeddings(reference, spec.sr)
    scores = {name: mean_over_takes([s.scores[name] for s in scored])
              | {"fad": _fad(embeddings[name], embeddings["reference"])} for name in SYSTEMS}
    for name in SYSTEMS:
        write_audio(fold_dir / "audio" / f"{name}.wav", takes[0][name], spec.sr)
    with atomic_path(fold_dir / "embeddings.npz") as tmp, tmp.open("wb") as f:
        np.savez(f, **embeddings)
    fps = float(spec.fps_exact)
    fold = {"clip": clip.name, "group": group, "settings": cfg.fold_settings([c.name for c in others]),
            "start_s": pieces[0].frames.start / fps, "seconds": sum(len(r) for r in reference) / spec.sr,
            "train_s": train_s, "reused_runs": reuse, "val_loss": _mean([p.val_loss for p in pieces]),
            "rtf": scored[0].rtf, "uses_video": uses_video(scores), "scores": scores,
            "wall_s": time.perf_counter() - t0}
    if len(pieces) > 1:
        fold["segments"] = [{"start_s": p.frames.start / fps, "seconds": len(s.reference) / spec.sr,
                             "val_loss": p.val_loss, "scores": s.scores} for p, s in zip(pieces, scored)]
    write_json(fold_dir / "fold.json", fold)
    return fold


@dataclass
class Piece:
    """A part of a held-out clip and the run that generates it: its frames, the audio that run trained on (the
    histogram baseline's prior) and its validation loss on those frames."""

    run: Path
    frames: range
    prior: np.ndarray
    val_loss: float | None


@dataclass
class ScoredPiece:
    """What every system generated for a Piece (one dict per take), the true audio there, the scores (mean over
    takes; the model's teacher-forced twin NLL merged in) and the model's real-time factor."""

    takes: list[dict[str, np.ndarray]]
    reference: np.ndarray
    scores: dict[str, dict]
    rtf: float


def score_piece(cfg: CrossvalConfig, clip: AlignedClip, piece: Piece) -> ScoredPiece:
    """Generate a Piece's frames by the model, its twins and the baselines, `cfg.takes` times, and score them."""
    model, spec = load_model(piece.run, cfg.device)
    part = piece.frames
    generated = [free_running(model, clip, spec, part, len(part), cfg.seed + take, prior=piece.prior,
                              guidance=cfg.guidance, temperature=cfg.temperature, top_p=cfg.top_p)
                 for take in range(cfg.takes)]  # (audio by system, the model's real-time factor) per take
    takes = [{name: audio[name] for name in SYSTEMS} for audio, _ in generated]
    reference = np.asarray(clip.audio[spec.frame_start(part.start):][:len(takes[0]["model"])])
    take_scores = []
    for audio in takes:
        scores, _ = score_generated(audio, clip, spec, part.start)
        for name in SYSTEMS:
            published = condfoleygen_scores(audio[name], reference, spec.sr)
            scores[name] |= {"condfoleygen_acc": published["onset_acc"], "condfoleygen_ap": published["onset_ap"]}
        take_scores.append(scores)
    likelihood = twin_nll(model, clip, spec, part)  # teacher-forced: the same for every take
    scores = {name: mean_over_takes([s[name] for s in take_scores])
              | likelihood.get(name, {"nll": None, "onset_nll": None}) for name in SYSTEMS}
    return ScoredPiece(takes, reference, scores, generated[0][1])


def mean_over_takes(scores: list[dict]) -> dict:
    """Each metric's mean over takes' (or segments') scores, dicts of the same keys, over those where it is
    defined (None where it is defined in none)."""
    return {key: _mean([s[key] for s in scores]) for key in scores[0]}


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _fad(gen: np.ndarray, ref: np.ndarray) -> float | None:
    """FAD of two embedding sets; None where either has fewer than two patches (audio under 1.44 s)."""
    return embedding_distance(gen, ref) if min(len(gen), len(ref)) >= 2 else None


def fold_dir(out: Path, clip: str, seed: int, repeats: int) -> Path:
    """Where a fold lives: OUT/folds/<clip>, or OUT/folds/<clip>/seed<S> when every fold is repeated."""
    return out / "folds" / clip if repeats == 1 else out / "folds" / clip / f"seed{seed}"


def merge_repeats(repeats: list[dict]) -> dict:
    """One clip's folds trained with different seeds as one fold: each score the mean over them, times summed;
    its "repeats" keep each seed's validation loss and scores."""
    first = repeats[0]
    scores = {name: mean_over_takes([r["scores"][name] for r in repeats]) for name in SYSTEMS}
    seeds = [r["settings"]["seed"] for r in repeats]
    return {"clip": first["clip"], "group": first["group"],
            "settings": {k: v for k, v in first["settings"].items() if k != "seed"} | {"seeds": seeds},
            "start_s": first["start_s"], "seconds": first["seconds"],
            "train_s": sum(r["train_s"] for r in repeats), "reused_runs": all(r["reused_runs"] for r in repeats),
            "val_loss": _mean([r["val_loss"] for r in repeats]), "rtf": _mean([r["rtf"] for r in repeats]),
            "uses_video": uses_video(scores), "scores": scores, "wall_s": sum(r["wall_s"] for r in repeats),
            "repeats": [{"seed": seed, "val_loss": r["val_loss"], "scores": r["scores"]}
                        for seed, r in zip(seeds, repeats)]}


def trained_runs(fold_dir: Path, training: dict) -> bool:
    """Whether fold_dir holds a finished fold whose runs were trained with these training settings (its other
    settings may differ)."""
    try:
        settings = json.loads((fold_dir / "fold.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return {k: v for k, v in settings.items() if k not in GENERATION_SETTINGS} == training


def finished_fold(fold_dir: Path, settings: dict) -> dict | bool | None:
    """A fold's fold.json when it was run with these settings; None when there is none; False when it was run
    with other settings."""
    try:
        fold = json.loads((fold_dir / "fold.json").read_text())
    except (OSError, ValueError):
        return None
    return fold if fold.get("settings") == settings and (fold_dir / "embeddings.npz").exists() else False


def summarize(folds: list[dict], cfg: CrossvalConfig) -> dict:
    """Per system and metric the mean over clips with its bootstrap interval; the model's paired per-clip
    differences from each twin (model minus twin); how many clips the model used the video on and on how many
    its onset F1 is above each twin's."""
    boot = {"resamples": cfg.resamples, "confidence": cfg.confidence, "seed": cfg.seed}
    means = {s: {m: bootstrap_mean([f["scores"][s][m] for f in folds], **boot) for m in METRICS} for s in SYSTEMS}
    paired = {twin: {m: bootstrap_mean([_minus(f["scores"]["model"][m], f["scores"][twin][m]) for f in folds],
                                       **boot) for m in METRICS} for twin in TWINS}
    used = [f["uses_video"] for f in folds if f["uses_video"] is not None]
    return {"means": means, "model_minus": paired, "uses_video": {"clips": sum(used), "of": len(used)},
            "above": {twin: count_above(folds, twin) for twin in TWINS}}


def count_above(folds: list[dict], twin: str) -> dict[str, int]:
    """On how many clips (folds, or a fold's segments or repeats: dicts with "scores") the model's onset F1 is above
    (clips) or equal to (ties) its twin's, of those where both are defined (of)."""
    pairs = [(f["scores"]["model"]["onset_f1"], f["scores"][twin]["onset_f1"]) for f in folds]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return {"clips": sum(a > b for a, b in pairs), "ties": sum(a == b for a, b in pairs), "of": len(pairs)}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def group_fad(folds: list[dict], dirs: dict[str, list[Path]]) -> dict[str, dict[str, float | None]]:
    """Per group and system: FAD of the pooled embeddings of all its generated clips (from each of a clip's fold
    folders `dirs`, one per repeat) against the true ones."""
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    for fold in folds:
        for where in dirs[fold["clip"]]:
            with np.load(where / "embeddings.npz") as saved:
                for name in (*SYSTEMS, "reference"):
                    pooled.setdefault(fold["group"], {}).setdefault(name, []).append(saved[name])
    return {group: {name: _fad(np.concatenate(sets[name]), np.concatenate(sets["reference"])) for name in SYSTEMS}
            for group, sets in pooled.items()}


def _interval(b: dict | None, signed: bool = False) -> str:
    if b is None:
        return "-"
    spec = "+.3f" if signed else ".3f"
    return f"{fmt_cell(b['mean'], spec)} [{fmt_cell(b['lo'], spec)}, {fmt_cell(b['hi'], spec)}]"


def markdown(report: dict) -> str:
    """crossval.md: the means with intervals, the paired differences, the group FAD, then per-clip tables."""
    s, folds = report["summary"], report["folds"]
    level = f"{100 * report['config']['confidence']:g}%"
    head = ["# Leave-one-clip-out evaluation", "", report["header"], ""]
    lines = head + [f"## Mean over clips [{level} bootstrap interval]", "",
                    "| system | " + " | ".join(f"{m} ({w})" for m, w in METRICS.items()) + " |",
                    "|---|" + "---|" * len(METRICS)]
    lines += [f"| {name} | " + " | ".join(_interval(s["means"][name][m]) for m in METRICS) + " |" for name in SYSTEMS]
    lines += ["", f"## The model minus its twins, per clip (paired) [{level} bootstrap interval]", "",
              "| difference | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    lines += [f"| model - {twin} | " + " | ".join(_interval(s["model_minus"][twin][m], True) for m in METRICS) + " |"
              for twin in TWINS]
    lines += ["", f"The model uses the video (at least as good as on shuffled video on onset F1 and envelope "
                  f"correlation, better on one) on {s['uses_video']['clips']} of {s['uses_video']['of']} clips. "
                  + _above_sentence(s["above"], "Its onset F1 is")
                  + "".join(_above_sentence(summary["above"], f" Trained with seed {seed} alone, it is")
                            for seed, summary in report.get("per_seed", {}).items()),
              "", "## FAD over each group (pooled YAMNet embeddings of its clips)", "",
              "| group | " + " | ".join(SYSTEMS) + " |", "|---|" + "---|" * len(SYSTEMS)]
    lines += [f"| {g} | " + " | ".join(fmt_cell(v[n]) for n in SYSTEMS) + " |" for g, v in report["group_fad"].items()]
    for metric, better in METRICS.items():
        lines += ["", f"## Per clip: {metric} ({better} is better)", "",
                  "| clip | group | seconds | " + " | ".join(SYSTEMS) + " |", "|---|---|---|" + "---|" * len(SYSTEMS)]
        lines += [f"| {f['clip']} | {f['group']} | {f['seconds']:.2f} | "
                  + " | ".join(fmt_cell(f["scores"][n][metric]) for n in SYSTEMS) + " |" for f in folds]
        lines.append(f"| mean [{level}] | | | " + " | ".join(_interval(s["means"][n][metric]) for n in SYSTEMS) + " |")
    lines += ["", "## Per clip: training and generation", "",
              "| clip | group | training clips | val loss (held-out clip, teacher-forced) | train s | generation RTF |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {f['clip']} | {f['group']} | {len(f['settings']['train_clips'])} | {fmt_cell(f['val_loss'])} | "
              f"{f['train_s']:.0f} | {f['rtf']:.2f} |" for f in folds]
    return "\n".join(lines + _part_lines(folds, "segments") + _part_lines(folds, "repeats")) + "\n"


def _above_sentence(above: dict[str, dict[str, int]], subject: str) -> str:
    """How many clips the model's onset F1 is above each twin's on, as a sentence about `subject`."""
    counts = [f"{twin.replace('video_', '')} twin's on {c['clips']} of {c['of']} clips ({c['ties']} ties)"
              for twin, c in above.items()]
    return f"{subject} above its " + " and its ".join(counts) + "."


def _part_lines(folds: list[dict], part: str) -> list[str]:
    """With segments or repeats (`part`): each clip's onset F1 per segment or seed, the model's against its
    shuffled-video twin's, on how many of them the model is above, and the clip's (their mean): how steady a clip's
    verdict is."""
    if not all(part in f for f in folds):
        return []
    noun = {"segments": "segment", "repeats": "seed"}[part]
    heads = [f"seed {r['seed']}" for r in folds[0][part]] if part == "repeats" else [
        f"segment {j}" for j in range(len(folds[0][part]))]
    lines = ["", f"## Per clip and {noun}: onset_f1 of the model / its shuffled-video twin", "",
             "| clip | " + " | ".join(heads) + f" | {noun}s above | mean |", "|---|" + "---|" * (len(heads) + 2)]
    for f in folds:
        pairs = [(p["scores"]["model"]["onset_f1"], p["scores"]["video_shuffled"]["onset_f1"]) for p in f[part]]
        above = count_above(f[part], "video_shuffled")["clips"]
        mean = f"{fmt_cell(f['scores']['model']['onset_f1'])} / {fmt_cell(f['scores']['video_shuffled']['onset_f1'])}"
        lines.append(f"| {f['clip']} | " + " | ".join(f"{fmt_cell(a)} / {fmt_cell(b)}" for a, b in pairs)
                     + f" | {above} of {len(pairs)} | {mean} |")
    return lines


def run_crossval(sources: list[Path], out: str | Path, group_by: str = "all", cfg: CrossvalConfig = CrossvalConfig(),
                 spec: AVSpec | None = None, force: bool = False, log: Callable[[str], None] = lambda _: None,
                 also_train: list[Path] = ()) -> dict:
    """The whole protocol: check the inputs, align the videos, run (or reuse) every fold, write OUT/crossval.json
    and OUT/crossval.md atomically; returns the report. `also_train`: videos or clips in every fold's training
    data (a pretraining corpus in mode finetune), never held out or scored."""
    out, sources, also_train = Path(out), [Path(s) for s in sources], [Path(s) for s in also_train]
    if out.exists() and not out.is_dir():
        raise InputError("output folder is a file", out)
    if cfg.mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {cfg.mode!r}", out)
    if cfg.segments > 1 and cfg.mode != "finetune":
        raise InputError("segments apply to mode finetune (mode loo generates each clip whole)", out)
    check_train_args(cfg.train_args, out)
    if cfg.finetune_args:
        if cfg.mode != "finetune":
            raise InputError("--finetune-args apply to mode finetune", out)
        check_train_args(cfg.train_args + cfg.finetune_args, out, "--finetune-args")
    for source in sources + also_train:
        if not source.exists():
            raise InputError("no such file or folder", source)
    clip_groups([s.name if s.is_dir() else safe_name(s.stem) for s in sources], group_by)  # before aligning
    motion = cfg.reads_motion()
    clips = prepare_clips(sources, out, spec or AVSpec(), log, motion)
    extra = prepare_clips(also_train, out, spec or AVSpec(), log, motion) if also_train else {}
    both = sorted(set(clips) & set(extra))
    if both:
        raise InputError(f"clip {both[0]!r} is both held out and in --also-train", out)
    check_compatible(list(clips.values()) + list(extra.values()))
    groups = clip_groups(list(clips), group_by)
    members = {g: [n for n in clips if groups[n] == g] for g in dict.fromkeys(groups.values())}
    trained_on = {name: [n for n in members[groups[name]] if n != name] + list(extra) for name in clips}
    seeds = [cfg.seed + r for r in range(cfg.repeats)]
    where = {(name, seed): fold_dir(out, name, seed, cfg.repeats) for name in clips for seed in seeds}
    plan = {(name, seed): replace(cfg, seed=seed).fold_settings(trained_on[name]) for name, seed in where}
    stale = [key for key in where if finished_fold(where[key], plan[key]) is False]
    if stale and not force:
        raise InputError(f"fold {where[stale[0]].relative_to(out / 'folds')} was run with other settings (--force "
                         "redoes such folds)", out / "folds")
    t0 = time.perf_counter()
    by_seed: dict[int, list[dict]] = {seed: [] for seed in seeds}
    with torch_threads(cfg.threads):
        for seed in seeds:  # one whole repeat after the other: a stopped batch has whole repeats done
            for name, clip in clips.items():
                label = name if cfg.repeats == 1 else f"{name} seed {seed}"
                fold = finished_fold(where[name, seed], plan[name, seed])
                if fold:
                    log(f"{label}: reused the finished fold")
                else:
                    others = [clips[n] if n in clips else extra[n] for n in trained_on[name]]
                    fold = run_fold(replace(cfg, seed=seed), clip, others, groups[name], where[name, seed])
                    model, shuffled = fold["scores"]["model"], fold["scores"]["video_shuffled"]
                    trained = "reused its runs" if fold["reused_runs"] else \
                        f"trained on {len(others)} clips in {fold['train_s']:.0f} s"
                    log(f"{label} ({groups[name]}): {trained}, "
                        f"{fold['seconds']:.1f} s generated at {fold['rtf']:.2f}x real time; onset F1 model "
                        f"{fmt_cell(model['onset_f1'])}, shuffled {fmt_cell(shuffled['onset_f1'])} "
                        f"({fold['wall_s']:.0f} s)")
                by_seed[seed].append(fold)
    folds = by_seed[cfg.seed] if cfg.repeats == 1 else [merge_repeats(list(repeats))
                                                          for repeats in zip(*by_seed.values())]
    takes_seeds = (f"{cfg.seed}..{cfg.seed + cfg.takes - 1}" if cfg.repeats == 1 else
                   f"S..S+{cfg.takes - 1} in the repeat of seed S")
    header = (f"{len(folds)} clips in {len(members)} group(s) (`--group-by {group_by}`), mode `{cfg.mode}`: each "
              + ("clip generated whole by a model trained on the other clips of its group"
                 if cfg.mode == "loo" else
                 f"clip's tail generated by a model pretrained on the others and fine-tuned {cfg.finetune_steps} "
                 "steps on its head" if cfg.segments == 1 else
                 f"clip generated whole in {cfg.segments} segments, each by a model pretrained on the others and "
                 f"fine-tuned {cfg.finetune_steps} steps on the rest of the clip")
              + (f", {len(extra)} more clip(s) in every training set (`--also-train`)" if extra else "")
              + f". `foley train {' '.join(cfg.train_args)}`"
              + (f", fine-tuned with `{' '.join(cfg.finetune_args)}` too" if cfg.finetune_args else "")
              + (f", seed {cfg.seed}" if cfg.repeats == 1 else
                 f", every fold trained {cfg.repeats} times (seeds {cfg.seed}..{seeds[-1]}) and a clip's scores the "
                 "means over them")
              + (f", scores averaged over {cfg.takes} takes (seeds {takes_seeds})" if cfg.takes > 1 else "")
              + (f", generated with classifier-free guidance {cfg.guidance:g} (the model and its shuffled twin)"
                 if cfg.guidance != 1 else "")
              + (f", sampled at temperature {cfg.temperature:g}" if cfg.temperature != 1 else "")
              + (f", from the nucleus holding {cfg.top_p:g} of the probability" if cfg.top_p != 1 else "")
              + ". Onset accuracy and AP strict "
              "(onset_acc, onset_ap) and as CondFoleyGen's predict_onset.py (condfoleygen_acc, condfoleygen_ap: "
              f"2 s clips, AP 1 for silence); {cfg.resamples} bootstrap resamples over clips. Folds: "
              f"{sum(f['wall_s'] for f in folds) / 60:.1f} min in all; this command: "
              f"{(time.perf_counter() - t0) / 60:.1f} min.")
    report = {"config": asdict(cfg), "group_by": group_by, "groups": members, "also_train": list(extra),
              "header": header, "folds": folds,
              "summary": summarize(folds, cfg),
              "group_fad": group_fad(folds, {name: [where[name, seed] for seed in seeds] for name in clips})}
    if cfg.repeats > 1:
        report["per_seed"] = {str(seed): summarize(by_seed[seed], cfg) for seed in seeds}
    write_json(out / "crossval.json", report)
    with atomic_path(out / "crossval.md") as tmp:
        tmp.write_text(markdown(report))
    return report
