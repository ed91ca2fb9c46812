import argparse
import subprocess
import sys
from dataclasses import fields

from foleylib.core.config import MODEL_PRESETS
from foleylib.data.motion import VIDEO_INPUTS
from foleylib.data.synth import KINDS
from foleylib.interfaces.cli import build_parser
from foleylib.models.config import ARCHS, LOSSES, MODES, NORMS, POSITIONS, VARIANTS, ModelConfig
from foleylib.training.config import TrainConfig


def foley(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "foleylib", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_bad_input_is_one_line_exit_2(tmp_path):
    proc = foley("ingest", tmp_path / "missing.mp4", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[0] == f"error: no such file ({tmp_path / 'missing.mp4'})"
    assert "Traceback" not in proc.stderr


def test_bad_arguments_exit_2(tmp_path):
    proc = foley("synth", "clap", "--seconds", "-3", "--out", tmp_path)
    assert proc.returncode == 2 and "must be positive" in proc.stderr
    assert not any(tmp_path.iterdir())
    assert foley("synth", "thunder").returncode == 2
    nucleus = foley("generate", tmp_path / "v.mp4", "--ckpt", tmp_path, "--out", tmp_path / "o.mp4", "--top-p", "2")
    assert nucleus.returncode == 2 and "argument --top-p: must be in (0, 1], got 2" in nucleus.stderr


def test_output_folder_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("a file, not a folder")
    proc = foley("synth", "clap", "--seconds", "1", "--out", target)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: output folder is a file ({target})"
    debug = foley("--debug", "synth", "clap", "--seconds", "1", "--out", target)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_outputs_are_replaced_only_with_force(tmp_path):
    assert foley("synth", "clap", "--seconds", "0.4", "--out", tmp_path).returncode == 0
    video = tmp_path / "clap.mp4"
    before = video.read_bytes()
    proc = foley("synth", "clap", "--seconds", "0.4", "--seed", "3", "--out", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: output exists (use --force to replace it) ({video})"
    assert video.read_bytes() == before
    assert foley("synth", "clap", "--seconds", "0.4", "--seed", "3", "--out", tmp_path, "--force").returncode == 0
    assert video.read_bytes() != before
    for command, name in (("table", "table1.md"), ("demo", "demo.mp4")):
        out = tmp_path / command
        out.mkdir()
        (out / name).write_text("an earlier result")
        proc = foley(command, "--out", out)
        assert proc.returncode == 2 and proc.stderr.strip().endswith(f"({out / name})")
        assert (out / name).read_text() == "an earlier result"


def _options(command: str) -> dict[str, argparse.Action]:
    """The options of one `foley` subcommand by destination."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {a.dest: a for a in sub.choices[command]._actions}


def test_train_defaults_are_the_config_classes_defaults():
    args = build_parser().parse_args(["train", "--arch", "wavenet", "--data", "clip", "--out", "run"])
    per_arch_or_preset = {"arch", "mode", "context_frames", "context_samples", "freeze"}  # None: chosen later
    for config in (TrainConfig, ModelConfig):
        shared = [f for f in fields(config) if hasattr(args, f.name) and f.name not in per_arch_or_preset]
        assert {f.name: getattr(args, f.name) for f in shared} == {f.name: f.default for f in shared}
    assert {"steps", "val_every", "batch_size", "lr", "window", "loss", "variant"} <= set(vars(args))


def test_choices_are_the_registries():
    registries = {"arch": ARCHS, "mode": MODES, "variant": VARIANTS, "loss": LOSSES, "preset": MODEL_PRESETS,
                  "norm": NORMS, "video_input": VIDEO_INPUTS, "positions": POSITIONS}
    train = _options("train")
    assert {dest: tuple(train[dest].choices) for dest in registries} == registries
    for command in ("table", "crossval"):
        options = _options(command)
        assert {d: tuple(options[d].choices) for d in ("preset", "loss")} == {"preset": MODEL_PRESETS, "loss": LOSSES}
    assert tuple(_options("crossval")["arch"].choices) == ARCHS
    assert _options("table")["archs"].default == ",".join(ARCHS)
    assert tuple(_options("synth")["kind"].choices) == KINDS
