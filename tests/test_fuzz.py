"""Damaged input, the same cases on every run: the regression corpus (tests/fuzz_corpus.py: every input that ever
made fuzzing fail, rebuilt from generated seeds), a fixed seeded draw of `make fuzz`'s cases, and the policy for a
file that decodes only partly. Each input works or is refused with one line; nothing else (no crash, no
traceback, no partial output)."""
import json

import pytest
from conftest import make_video
from fuzz_campaign import draw_cases
from fuzz_corpus import CORPUS
from fuzz_mutations import find_node, mutate, parse_nodes
from fuzz_targets import Seeds, run_case

from foleylib.interfaces.cli import main


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Seeds:
    return Seeds(tmp_path_factory.mktemp("fuzz_seeds"))


def test_seed_files_are_the_same_bytes_on_every_build(tmp_path):
    """Recipes name byte offsets: the generated seeds must not vary (no dates, ids, thread-dependent encoding)."""
    for name in ("tiny.mp4", "tiny.mkv", "tiny.webm"):
        first, second = Seeds(tmp_path / "a").media(name), Seeds(tmp_path / "b").media(name)
        assert first.read_bytes() == second.read_bytes(), name


def test_recipes_name_boxes_of_every_container(seeds):
    """The structure parsers find the index of each container, so structure-aware recipes can aim at it."""
    index = {"tiny.mp4": "moov/trak/mdia/minf/stbl/stco", "tiny.mov": "moov/trak#1/mdia/minf/stbl/stsz",
             "tiny.mkv": "Segment/Cues", "tiny.webm": "Segment/Tracks/TrackEntry#1", "tiny.avi": "RIFF.AVI/idx1"}
    for name, path in index.items():
        data = seeds.media(name).read_bytes()
        node = find_node(parse_nodes(data), path)
        assert 0 < node.start < node.end <= len(data), name
        dropped = mutate(data, {"op": "drop", "node": path})
        assert len(dropped) == len(data) - (node.end - node.start)


@pytest.mark.parametrize("entry,target", [(e, t) for e in CORPUS for t in e["targets"]],
                         ids=[f"{e['id']}-{t}" for e in CORPUS for t in e["targets"]])
def test_regression_corpus(entry, target, seeds, tmp_path):
    case = {"target": target, "seed": entry["seed"], "recipe": entry["recipe"], "args": entry.get("args", []),
            "cli": entry.get("cli", False)}
    verdict = run_case(case, seeds, tmp_path)
    expect = entry["expect"][target] if isinstance(entry["expect"], dict) else entry["expect"]
    assert verdict.outcome == expect, verdict.detail
    if expect == "refused":
        assert entry["reason"] in verdict.detail


def test_first_known_failure_through_the_command_line(seeds, tmp_path):
    """The issue's own case as the user ran it: `foley ingest` exits 2 with one line, no internal failure."""
    entry = CORPUS[0]
    verdict = run_case({"target": "ingest", "seed": entry["seed"], "recipe": entry["recipe"], "cli": True}, seeds,
                       tmp_path)
    assert verdict.outcome == "refused" and verdict.detail.startswith("error: video stream of unknown codec")


@pytest.mark.slow
def test_seeded_draw_of_campaign_cases(seeds, tmp_path):
    """40 of the campaign's cases (seed 0, every entry point but the studio, in-process): the same cases on every
    run, each ok or refused cleanly; both verdicts occur, so the draw is not vacuous."""
    mix = {"ingest": 0.4, "generate": 0.15, "collect": 0.1, "train": 0.15, "evaluate": 0.05, "generate-run": 0.1,
           "evaluate-run": 0.05}
    cases = draw_cases(40, 0, seeds, mix, cli_share=0.0)
    assert json.dumps(cases) == json.dumps(draw_cases(40, 0, seeds, mix, cli_share=0.0))
    verdicts = []
    for case in cases:
        work = tmp_path / case["id"]
        work.mkdir()
        verdicts.append(run_case(case, seeds, work))
    failed = [(json.dumps(c), v.outcome, v.detail.strip().splitlines()[-1]) for c, v in zip(cases, verdicts)
              if v.failed]
    assert failed == []
    assert {v.outcome for v in verdicts} == {"ok", "refused"}


@pytest.fixture(scope="module")
def cut_mkv(tmp_path_factory):
    """good.mkv (2 s, its duration in the header) cut to its first half and to 95% of its bytes."""
    folder = tmp_path_factory.mktemp("cut")
    data = make_video(folder / "good.mkv").read_bytes()
    half, most = folder / "half.mkv", folder / "most.mkv"
    half.write_bytes(mutate(data, {"op": "cut", "at": 0.5}))
    most.write_bytes(mutate(data, {"op": "cut", "at": 0.95}))
    return half, most


def test_a_file_that_decodes_only_partly_is_refused(cut_mkv, runs, tmp_path, capsys):
    """Half a file decodes to 0.7 s of the 2 s its header promises: ingest and generate refuse it, leave nothing;
    generate of a part that decodes works."""
    half, _ = cut_mkv
    code = main(["ingest", str(half), "--out", str(tmp_path / "aligned"), "--sr", "8000", "--size", "16"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: the video decodes to 0.") and "of the 2.00 s the file promises" in err
    assert not [p for p in (tmp_path / "aligned").iterdir() if p.name != "manifest.json"]
    out = tmp_path / "out"
    code = main(["generate", str(half), "--ckpt", str(runs / "wavenet"), "--out", str(out / "all.mp4"), "--quiet"])
    assert code == 2 and "the file promises (cut or damaged)" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    code = main(["generate", str(half), "--ckpt", str(runs / "wavenet"), "--out", str(out / "part.mp4"), "--seconds",
                 "0.4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["part.mp4"]


def test_a_file_short_of_its_promise_by_less_than_the_allowance_is_ingested(cut_mkv, tmp_path, capsys):
    """95% of the bytes decode to 47 of 50 frames, within max(0.5 s, 1%) of the promise: ingested, and meta.json
    records what was decoded."""
    _, most = cut_mkv
    assert main(["ingest", str(most), "--out", str(tmp_path), "--sr", "8000", "--size", "16"]) == 0
    meta = json.loads((tmp_path / "most" / "meta.json").read_text())
    assert 45 <= meta["clipped"]["frames_decoded"] < 50 and meta["probe"]["duration"] == 2.0
    assert meta["frames"] <= meta["clipped"]["frames_decoded"]
