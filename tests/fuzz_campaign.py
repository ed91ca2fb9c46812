"""`make fuzz`: a long fuzzing campaign on purpose (not in CI), through the entry points that read files.

    .venv/bin/python tests/fuzz_campaign.py --cases 5000 --seed 1 --out outputs/fuzz [--workers 2] [--timeout 60]

Cases are drawn from --seed (the same seed draws the same cases): byte-level and structure-aware mutations of
MP4, MOV, MKV, WEBM and AVI seeds through ingest, generate, collect and the studio; damaged aligned clip
folders through train and evaluate; damaged run folders through generate and evaluate; some of them through a
`foley` subprocess (exit code, one-line error, no traceback). Each case runs in a worker process killed past
--timeout (a hang). Prints a summary; every failing case is kept under OUT/failures/<case>/ with its recipe
(case.json, ready for tests/fuzz_corpus.py), its input and what went wrong. Exit status 1 when a case failed.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np
from fuzz_mutations import random_file_recipe, random_recipe
from fuzz_targets import (
    CAMPAIGN_MEDIA,
    CLIP_FILES,
    CLIP_TARGETS,
    MEDIA_TARGETS,
    RUN_FILES,
    Seeds,
    make_input,
    run_case,
)

# how often each entry point is drawn (media targets are the cheapest and the most exposed)
MIX = {"ingest": 0.40, "generate": 0.12, "collect": 0.12, "studio": 0.03, "train": 0.12, "evaluate": 0.07,
       "generate-run": 0.08, "evaluate-run": 0.06}
CLI_SHARE = 0.015  # cases run as a `foley` subprocess instead of in-process (a few seconds each: imports)


def draw_cases(n: int, seed: int, seeds: Seeds, mix: dict[str, float] = MIX, media: list[str] = CAMPAIGN_MEDIA,
               cli_share: float = CLI_SHARE) -> list[dict]:
    """n cases, the same for the same seed (and seed files)."""
    rng = np.random.default_rng(seed)
    targets, weights = list(mix), np.array(list(mix.values()))
    data = {name: seeds.media(name).read_bytes() for name in media}
    cases = []
    for i in range(n):
        target = targets[int(rng.choice(len(targets), p=weights / weights.sum()))]
        case = {"id": f"{seed}-{i}", "target": target, "cli": bool(rng.random() < cli_share)}
        if target in MEDIA_TARGETS:
            case["seed"] = media[int(rng.integers(len(media)))]
            case["recipe"] = random_recipe(data[case["seed"]], rng)
            if target == "generate" and rng.random() < 0.5:
                case["args"] = ["--seconds", "0.4"]
        else:
            folder, files = (seeds.clip, CLIP_FILES) if target in CLIP_TARGETS else (seeds.run, RUN_FILES)
            name = files[int(rng.integers(len(files)))]
            case["seed"] = f"{folder.name}/{name}"
            case["recipe"] = {"file": name, "op": "remove"} if rng.random() < 0.03 else \
                random_file_recipe(name, (folder / name).read_bytes(), rng)
        if target == "studio":
            case["cli"] = False
        cases.append(case)
    return cases


def _worker(conn, seed_folder: str, scratch: str, memory_gb: float) -> None:
    """Run the cases sent on `conn` one at a time; in its own process group so that a hang kills ffmpeg too, and
    with its address space limited so that a case asking for too much memory fails here, not the machine."""
    os.setsid()
    limit = int(memory_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(1)
    seeds = Seeds(Path(seed_folder))
    while True:
        case = conn.recv()
        if case is None:
            return
        work = Path(tempfile.mkdtemp(prefix="case-", dir=scratch))
        t0 = time.perf_counter()
        try:
            verdict = run_case(case, seeds, work)
            result = {"outcome": verdict.outcome, "detail": verdict.detail}
        except Exception:  # noqa: BLE001 - a broken case (or harness) is reported, never hidden
            result = {"outcome": "internal", "detail": f"harness: {traceback.format_exc()}"}
        conn.send(result | {"wall_s": time.perf_counter() - t0, "work": str(work)})


class Pool:
    """Worker processes that each run one case at a time; a worker past the time limit is killed and replaced."""

    def __init__(self, workers: int, seed_folder: Path, scratch: Path, memory_gb: float):
        self.ctx = mp.get_context("spawn")
        self.args = (str(seed_folder), str(scratch), memory_gb)
        self.slots = [self._start() for _ in range(workers)]

    def _start(self):
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, *self.args), daemon=True)
        proc.start()
        return {"proc": proc, "conn": parent, "case": None, "since": 0.0}

    def _kill(self, slot: dict) -> None:
        try:
            os.killpg(slot["proc"].pid, signal.SIGKILL)  # the worker's own group: it and its ffmpeg children
        except ProcessLookupError:
            pass
        slot["proc"].join()

    def run(self, cases: list[dict], timeout: float, on_result) -> None:
        """Send every case; on_result(case, result) is called as each finishes (result 'hang' past timeout)."""
        todo = list(reversed(cases))
        while todo or any(s["case"] for s in self.slots):
            for slot in self.slots:
                if slot["case"] is None and todo:
                    slot["case"], slot["since"] = todo.pop(), time.monotonic()
                    slot["conn"].send(slot["case"])
            busy = [s for s in self.slots if s["case"]]
            ready = wait([s["conn"] for s in busy], timeout=1.0)
            for slot in busy:
                case = slot["case"]
                if slot["conn"] in ready:
                    try:
                        result = slot["conn"].recv()
                    except EOFError:  # the worker died (killed for memory, a crash in C)
                        result = {"outcome": "internal", "detail": f"worker died (exit {slot['proc'].exitcode})"}
                        self._replace(slot)
                elif time.monotonic() - slot["since"] > timeout:
                    result = {"outcome": "hang", "detail": f"still running after {timeout:g} s"}
                    self._kill(slot)
                    self._replace(slot)
                else:
                    continue
                slot["case"] = None
                on_result(case, result)

    def _replace(self, slot: dict) -> None:
        if slot["proc"].is_alive():
            self._kill(slot)
        slot.update(self._start())

    def close(self) -> None:
        for slot in self.slots:
            slot["conn"].send(None)
            slot["proc"].join(timeout=10)


def keep_failure(case: dict, result: dict, seeds: Seeds, failures: Path) -> None:
    """OUT/failures/<id>/: case.json (the recipe), the input as built again, and what went wrong."""
    folder = failures / case["id"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "case.json").write_text(json.dumps(case, indent=2) + "\n")
    (folder / "verdict.txt").write_text(f"{result['outcome']}\n{result['detail']}\n")
    with tempfile.TemporaryDirectory() as scratch:
        given = make_input(case, seeds, Path(scratch))
        target = folder / given.name
        (shutil.copytree if given.is_dir() else shutil.copy)(given, target)


def summary(results: list[tuple[dict, dict]], wall: float) -> dict:
    outcomes = Counter(r["outcome"] for _, r in results)
    by_target = {t: dict(Counter(r["outcome"] for c, r in results if c["target"] == t))
                 for t in sorted({c["target"] for c, _ in results})}
    by_seed = {s: dict(Counter(r["outcome"] for c, r in results if c["seed"] == s))
               for s in sorted({c["seed"] for c, _ in results})}
    return {"cases": len(results), "refused cleanly": outcomes["refused"], "worked (ingested, generated, ...)":
            outcomes["ok"], "internal failures": outcomes["internal"], "unclean (partial output, leftovers, "
            "malformed message)": outcomes["unclean"], "hangs": outcomes["hang"],
            "through the CLI subprocess": sum(c["cli"] for c, _ in results), "wall_s": round(wall, 1),
            "by entry point": by_target, "by seed": by_seed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a case may run before it is a hang")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-gb", type=float, default=6.0, help="address space of each worker (default 6 GB)")
    p.add_argument("--replay", nargs="+", type=Path, help="run these case.json files (kept failures) instead")
    p.add_argument("--out", type=Path, default=Path("outputs/fuzz"))
    p.add_argument("--targets", help="comma-separated entry points (default: all of " + ", ".join(MIX) + ")")
    p.add_argument("--media", help="comma-separated media seeds (default: " + ", ".join(CAMPAIGN_MEDIA) + ")")
    args = p.parse_args(argv)
    mix = {t: MIX[t] for t in args.targets.split(",")} if args.targets else MIX
    media = args.media.split(",") if args.media else CAMPAIGN_MEDIA
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = Seeds(args.out / "seeds")
    seeds.run  # noqa: B018 - build every seed before the workers start
    cases = [json.loads(p.read_text()) for p in args.replay] if args.replay else \
        draw_cases(args.cases, args.seed, seeds, mix, media)
    failures, results, t0 = args.out / "failures", [], time.perf_counter()
    log = (args.out / "cases.jsonl").open("w")
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        pool = Pool(args.workers, seeds.folder, Path(scratch), args.memory_gb)

        def on_result(case: dict, result: dict) -> None:
            results.append((case, result))
            log.write(json.dumps({**case, **{k: v for k, v in result.items() if k != "work"}}) + "\n")
            log.flush()
            if "work" in result:
                shutil.rmtree(result["work"], ignore_errors=True)
            if result["outcome"] in ("internal", "unclean", "hang"):
                keep_failure(case, result, seeds, failures)
                print(f"FAILED {case['id']} {result['outcome']}: {json.dumps(case)}\n    "
                      f"{result['detail'].strip().splitlines()[-1] if result['detail'].strip() else ''}",
                      flush=True)
            if len(results) % 250 == 0:
                print(f"{len(results)}/{len(cases)} cases, {time.perf_counter() - t0:.0f} s", flush=True)

        try:
            pool.run(cases, args.timeout, on_result)
        finally:
            pool.close()
    report = summary(results, time.perf_counter() - t0)
    (args.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    failed = report["internal failures"] + report["hangs"] + report["unclean (partial output, leftovers, "
                                                                         "malformed message)"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
