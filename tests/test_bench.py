"""`foley bench --quick`: every key the benchmark promises, with positive finite values (no speed thresholds)."""
import json
import math

import pytest
from test_cli import foley

GENERATION_KEYS = {"rtf_naive", "rtf_cached", "rtf_live", "speedup", "flops_per_sample", "gflops_achieved",
                   "fraction_of_peak", "step_us_per_sample", "step_gflops", "step_fraction_of_peak", "step_bytes",
                   "read_gbps", "roofline_us_per_sample", "step_fraction_of_roofline", "rtf_batched",
                   "rtf_batched_1thread", "batch", "batch_workers", "batch_speedup", "int8", "step_us_by_takes",
                   "takes_step_bound", "step_us_top_p"}
ROOFLINE_KEYS = {"step_bytes", "read_gbps", "roofline_us_per_sample", "step_fraction_of_roofline",
                 "takes_step_bound"}
INT8_KEYS = {"rtf_cached", "rtf_live", "step_us_per_sample", "step_gflops", "step_fraction_of_peak", "rtf_batched",
             "speedup_over_fp32", "step_us_by_takes", "step_us_top_p"} | ROOFLINE_KEYS
CACHED_ONLY = {"rtf_cached", "rtf_live", "speedup", "step_us_per_sample", "step_gflops",
               "step_fraction_of_peak", "step_us_by_takes", "step_us_top_p"} | ROOFLINE_KEYS


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_bench_writes_every_measurement(tmp_path):
    out, plot = tmp_path / "bench.json", tmp_path / "scaling.png"
    proc = foley("bench", "--quick", "--out", out, "--plot", plot)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    machine = report["machine"]
    assert {"cpu", "threads", "torch", "device"} <= set(machine)
    assert _positive(machine["peak_matmul_gflops"]) and _positive(machine["threads"])
    assert set(report["generation"]) == {"wavenet", "transformer", "transformer_sliding", "fusion"}
    for arch, g in report["generation"].items():
        assert set(g) == GENERATION_KEYS
        cached = set() if arch == "fusion" else CACHED_ONLY
        numbers = (GENERATION_KEYS - CACHED_ONLY - {"int8"} | cached) - {"step_us_by_takes"}
        assert all(_positive(g[k]) for k in numbers), (arch, g)
        assert g["batch"] == 4 and 1 <= g["batch_workers"] <= 4  # 4 takes at once, at most a thread per take
        one_stream = g["rtf_naive"] if arch == "fusion" else g["rtf_cached"]
        assert math.isclose(g["batch_speedup"], g["rtf_batched"] / one_stream)
        if arch != "fusion":  # the step alone runs at the rate its FLOPs and time say
            assert math.isclose(g["step_gflops"], g["flops_per_sample"] / g["step_us_per_sample"] / 1e3)
            assert math.isclose(g["step_fraction_of_peak"], g["step_gflops"] / machine["peak_matmul_gflops_1thread"])
            for rates in (g, g["int8"]):  # the roofline: the longer of reading the step's bytes and its arithmetic
                bound = max(rates["step_bytes"] / rates["read_gbps"] / 1e3,
                            g["flops_per_sample"] / machine["peak_matmul_gflops_1thread"] / 1e3)
                assert math.isclose(rates["roofline_us_per_sample"], bound)
                assert math.isclose(rates["step_fraction_of_roofline"], bound / rates["step_us_per_sample"])
            share = -(-g["batch"] // g["batch_workers"])  # the takes of one thread
            for rates in (g, g["int8"]):  # each thread's takes stepped as fast as alone: the most takes can give
                steps = rates["step_us_by_takes"]
                assert set(steps) == {"1", str(share), "4"} and all(_positive(t) for t in steps.values())
                assert math.isclose(rates["takes_step_bound"], 4 * steps["1"] / steps[str(share)])
                assert math.isclose(steps["1"], rates["step_us_per_sample"])
            assert g["int8"]["step_bytes"] < g["step_bytes"] / 2  # a byte per weight instead of four
            int8 = g["int8"]  # the same rates with int8 weights, the products' FLOPs counted as before
            assert set(int8) == INT8_KEYS and all(_positive(v) for k, v in int8.items() if k != "step_us_by_takes")
            assert math.isclose(int8["step_gflops"], g["flops_per_sample"] / int8["step_us_per_sample"] / 1e3)
            assert math.isclose(int8["speedup_over_fp32"], int8["rtf_cached"] / g["rtf_cached"])
    fusion = report["generation"]["fusion"]
    assert all(fusion[k] is None for k in CACHED_ONLY | {"int8"})  # a frame per step: nothing to cache
    assert set(report["training"]) == {"wavenet", "transformer", "transformer_sliding"}
    for t in report["training"].values():
        assert _positive(t["paper"]["predictions_per_s"]) and _positive(t["causal"]["predictions_per_s"])
        assert math.isclose(t["ratio"], t["causal"]["predictions_per_s"] / t["paper"]["predictions_per_s"])
    ingest = report["ingest"]
    corpus = ingest["corpus"]
    assert corpus["files"] == 3 and corpus["seconds"] == 3.0 and corpus["jobs"] >= 1  # the quick plan's corpus
    for rates in (ingest, corpus):  # one file, and the corpus a job per core: each against ffmpeg's own decode
        assert all(_positive(rates[k]) for k in ("realtime_factor", "fast_resize_rtf", "motion_rtf", "ffmpeg_rtf"))
        assert math.isclose(rates["exact_ratio"], rates["ffmpeg_rtf"] / rates["realtime_factor"])
        assert math.isclose(rates["fast_resize_ratio"], rates["ffmpeg_rtf"] / rates["fast_resize_rtf"])
    shared = report["shared_training"]
    assert _positive(shared["alone_steps_per_s"]) and len(shared["together_steps_per_s"]) == 2
    assert all(_positive(rate) for rate in shared["together_steps_per_s"])
    assert shared["ratios"] == pytest.approx([rate / shared["alone_steps_per_s"]
                                              for rate in shared["together_steps_per_s"]])
    fields = [row["receptive_field"] for row in report["context_scaling"]]
    assert fields == sorted(fields) and len(fields) >= 2
    assert all(_positive(row["rtf_naive"]) and _positive(row["rtf_cached"]) for row in report["context_scaling"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "scaling.png"]  # no temp files left


def test_bench_refuses_to_replace_a_report_without_force(tmp_path):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    proc = foley("bench", "--quick", "--out", out)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: output exists (use --force to replace it) ({out})"
    assert out.read_text() == "{}"
