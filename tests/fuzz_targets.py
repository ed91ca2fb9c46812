"""The fuzzing's seed files, entry points and verdicts, shared by tests/test_fuzz.py and `make fuzz`.

A case is a JSON-able dict: {"target": "ingest", "seed": "tiny.mkv", "recipe": {...}, "args": [...], "cli": False}.
Media targets (ingest, generate, collect, studio) get a mutated seed video; clip targets (train, evaluate) a
mutated copy of an aligned clip folder; run targets (generate-run, evaluate-run) a mutated copy of a run folder.
`run_case` builds the input, runs the entry point (in-process through `foley --debug`, or as a `foley`
subprocess when "cli" is set) and returns a verdict:

  ok        it worked and its outputs are whole
  refused   one-line `error: <reason> (<path>)` (exit 2) and no output left behind
  internal  any other exception, exit code or a traceback (a defect)
  unclean   it worked or refused, but left a partial output, a temporary file or a malformed message (a defect)
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from conftest import make_video
from fuzz_mutations import mutate_file

from foleylib.data import media
from foleylib.data.media import ffmpeg_exe

TINY = {"seconds": 1.0, "size": "64x48", "sr": 16000}  # cheap seeds: a case costs tenths of a second
MEDIA_SEEDS = {  # name -> make_video arguments; the suffix picks the container, "-faststart" puts moov first
    "good.mp4": {},  # the conftest good_video: 2 s, 25 fps, 160x120, 44.1 kHz stereo
    "tiny.mp4": TINY, "tiny-faststart.mp4": TINY, "tiny.mov": TINY, "tiny.mkv": TINY, "tiny.webm": TINY,
    "tiny.avi": TINY,
}
CAMPAIGN_MEDIA = [name for name in MEDIA_SEEDS if name.startswith("tiny")]
MEDIA_TARGETS = ("ingest", "generate", "collect", "studio")
CLIP_TARGETS = ("train", "evaluate")  # a damaged aligned clip folder
RUN_TARGETS = ("generate-run", "evaluate-run")  # a damaged run folder
CLIP_FILES, RUN_FILES = ("frames.npy", "audio.npy", "meta.json"), ("model.pt", "config.json")
TINY_SPEC = ["--sr", "8000", "--size", "32"]  # ingest arguments that match the tiny preset (8 kHz, 25 fps, 32x32)


def build_media_seed(name: str, folder: Path) -> Path:
    path = folder / name
    if not path.exists():
        plain = folder / name.replace("-faststart", "")
        make_video(plain, **MEDIA_SEEDS[plain.name])
        if "-faststart" in name:
            subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-i", str(plain), "-c", "copy", "-movflags",
                            "+faststart", "-fflags", "+bitexact", str(path)], check=True)
    return path


class Seeds:
    """The seed files in one folder, built on first use: media files, an aligned clip and a trained run."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def media(self, name: str) -> Path:
        return build_media_seed(name, self.folder)

    @property
    def clip(self) -> Path:
        """tiny.mp4 aligned at the tiny preset's rates (25 frames, 8000 samples)."""
        clip = self.folder / "aligned" / "tiny"
        if not clip.exists():
            _foley(["ingest", str(self.media("tiny.mp4")), "--out", str(clip.parent), *TINY_SPEC])
        return clip

    @property
    def run(self) -> Path:
        """A tiny WaveNet trained for one step on the clip: model.pt, config.json, checkpoint.pt."""
        run = self.folder / "runs" / "wavenet"
        if not (run / "model.pt").exists():
            _foley(["train", "--arch", "wavenet", "--preset", "tiny", "--data", str(self.clip), "--steps", "1",
                    "--window", "256", "--batch-size", "2", "--quiet", "--out", str(run)])
        return run


def _foley(args: list[str]) -> None:
    from foleylib.interfaces.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--debug", *args]) == 0, args


@dataclass
class Verdict:
    outcome: str  # ok, refused, internal, unclean
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("internal", "unclean")


def make_input(case: dict, seeds: Seeds, work: Path) -> Path:
    """Write the case's mutated input under `work` (a file for media targets, a folder otherwise)."""
    recipe = case["recipe"]
    if case["target"] in MEDIA_TARGETS:
        path = work / "input" / f"mutated{Path(case['seed']).suffix}"
        path.parent.mkdir(parents=True)
        path.write_bytes(mutate_file(seeds.media(case["seed"]).read_bytes(), recipe))
        return path
    source = seeds.clip if case["target"] in CLIP_TARGETS else seeds.run
    folder = work / "input" / source.name
    shutil.copytree(source, folder)
    damaged = folder / recipe["file"]
    if recipe["op"] == "remove":
        damaged.unlink()
    else:
        damaged.write_bytes(mutate_file(damaged.read_bytes(), recipe))
    return folder


def command(case: dict, given: Path, seeds: Seeds, work: Path) -> list[str]:
    """The `foley` arguments that feed `given` to the case's entry point, writing under work/out."""
    out, target = work / "out", case["target"]
    run = given if target in RUN_TARGETS else seeds.run
    if target == "ingest":
        return ["ingest", str(given), "--out", str(out), "--sr", "8000", "--size", "16", *case.get("args", [])]
    if target == "collect":
        return ["collect", str(given), "--out", str(out)]
    if target == "train":
        return ["train", "--arch", "wavenet", "--preset", "tiny", "--data", str(given), "--steps", "1", "--window",
                "256", "--batch-size", "2", "--quiet", "--out", str(out)]
    if target in ("evaluate", "evaluate-run"):
        clip = given if target == "evaluate" else seeds.clip
        return ["evaluate", "--ckpt", str(run), "--data", str(clip), "--out", str(out / "report.json"),
                "--seconds", "0.2", "--quiet"]
    video = given if target == "generate" else seeds.media("tiny.mp4")
    return ["generate", str(video), "--ckpt", str(run), "--out", str(out / "dubbed.mp4"), "--wav",
            str(out / "dubbed.wav"), "--quiet", *case.get("args", [])]


def _outputs_whole(target: str, out: Path) -> str:
    """'' when the outputs of a command that worked are whole, else what is wrong."""
    from foleylib.core.errors import InputError
    from foleylib.data.dataset import load_clip

    try:
        if target == "ingest":
            clips = [p for p in out.iterdir() if p.is_dir()]
            if len(clips) != 1:
                return f"{len(clips)} clip folders"
            clip = load_clip(clips[0])
            promised = clip.meta["probe"]["duration"]
            allowed = max(media.SHORT_STREAM_S, media.SHORT_STREAM_FRACTION * promised) + 1 / clip.meta["fps"]
            if clip.seconds < promised - allowed:
                return f"a partial clip: {clip.seconds:.2f} s of the {promised:.2f} s probed"
        elif target == "collect":
            if len([p for p in out.iterdir() if p.name != "manifest.json"]) != 1:
                return "no collected file"
        elif target == "train":
            if not (out / "model.pt").exists():
                return "no model.pt"
        elif target.startswith("evaluate"):
            json.loads((out / "report.json").read_text())
        elif target.startswith("generate"):
            info = media.probe(out / "dubbed.mp4")
            if not (info.has_video and info.has_audio and media.probe(out / "dubbed.wav").has_audio):
                return "the outputs lack a stream"
    except (OSError, ValueError, KeyError, InputError) as err:
        return f"outputs not whole: {type(err).__name__}: {err}"
    return ""


def _outputs_absent(target: str, out: Path) -> str:
    """'' when a refused command left no output, else what it left (a collection's or ingest's manifest and an
    empty run folder are not outputs)."""
    if not out.exists():
        return ""
    left = [p.name for p in out.iterdir() if p.name != "manifest.json" or target not in ("ingest", "collect")]
    return f"left {', '.join(sorted(left))}" if left else ""


def _leftovers(work: Path) -> list[str]:
    return sorted(str(p.relative_to(work)) for p in work.rglob("*")
                  if p.name.startswith(".") or ".tmp" in p.name)


def _message_ok(stderr: str, expected_lines: int = 1) -> str:
    """'' when stderr is exactly `expected_lines` lines of `error: <reason> (<path>)`, else what is wrong."""
    lines = stderr.strip().splitlines()
    if "Traceback" in stderr or len(lines) != expected_lines:
        return f"{len(lines)} lines on stderr: {stderr.strip()[:300]!r}"
    if not all(ln.startswith("error: ") and ln.endswith(")") and "internal failure" not in ln for ln in lines):
        return f"not a one-line error: {stderr.strip()[:300]!r}"
    return ""


def _run_in_process(args: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    """(exit code, stdout, stderr, exception) of `foley --debug ARGS` run here (--debug lets errors through)."""
    from foleylib.interfaces.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return main(["--debug", *args]), out.getvalue(), err.getvalue(), None
        except BaseException as exc:  # noqa: BLE001 - every escape is a verdict
            return None, out.getvalue(), err.getvalue(), exc


def _studio(given: Path, seeds: Seeds) -> Verdict:
    """The studio's Generate button on the video; its message line is the verdict."""
    from foleylib.interfaces.widgets import Studio

    studio = Studio(given.parent, seeds.run.parent, video=str(given), run=str(seeds.run), start=0.0, seconds=0.4)
    try:
        studio.generate_button.click()
    except Exception:  # noqa: BLE001
        return Verdict("internal", traceback.format_exc())
    message = studio.message.value
    if not message:
        return Verdict("ok") if studio.result and studio.result["seconds"] > 0 else Verdict("unclean", "no result")
    text = message.split(">", 1)[1].rsplit("<", 1)[0]
    return Verdict("refused", text) if text.startswith("error: ") and text.endswith(f"({given})") else \
        Verdict("unclean", f"odd message {message!r}")


def _judge(target: str, out: Path, code: int | None, stderr: str, exc: BaseException | None) -> Verdict:
    from foleylib.core.errors import InputError

    if isinstance(exc, InputError):
        bad = "" if "\n" not in str(exc) else f"a message of several lines: {str(exc)!r}"
        return Verdict("unclean", bad) if bad else \
            Verdict("unclean", _outputs_absent(target, out)) if _outputs_absent(target, out) else \
            Verdict("refused", str(exc))
    if exc is not None:
        return Verdict("internal", "".join(traceback.format_exception(exc)))
    if code == 0:
        bad = _outputs_whole(target, out) or ("a traceback on stderr" if "Traceback" in stderr else "")
        return Verdict("unclean", bad) if bad else Verdict("ok")
    if code == 2:
        bad = _message_ok(stderr) or _outputs_absent(target, out)
        return Verdict("unclean", bad) if bad else Verdict("refused", stderr.strip())
    return Verdict("internal", f"exit {code}: {stderr.strip()[-2000:]}")


def run_case(case: dict, seeds: Seeds, work: Path, timeout: float = 120.0) -> Verdict:
    """Build the case's input under `work` (an empty folder), run it, judge it."""
    given = make_input(case, seeds, work)
    if case["target"] == "studio":
        verdict = _studio(given, seeds)
    else:
        args, out = command(case, given, seeds, work), work / "out"
        if case.get("cli"):
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            res = subprocess.run([sys.executable, "-m", "foleylib", *args], capture_output=True, text=True,
                                 timeout=timeout, env=env, errors="replace")
            code, stderr, exc = res.returncode, res.stderr, None
        else:
            code, _, stderr, exc = _run_in_process(args)
        verdict = _judge(case["target"], out, code, stderr, exc)
    left = _leftovers(work)
    if left and not verdict.failed:
        return Verdict("unclean", f"left temporary files: {', '.join(left)}")
    return verdict
