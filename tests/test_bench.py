"""`foley bench --quick`: every key the benchmark promises, with positive finite values (no speed thresholds)."""
import json
import math

from test_cli import foley

GENERATION_KEYS = {"rtf_naive", "rtf_cached", "speedup", "flops_per_sample", "gflops_achieved", "fraction_of_peak",
                   "rtf_batched", "batch"}


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
    assert set(report["generation"]) == {"wavenet", "transformer", "fusion"}
    for arch, g in report["generation"].items():
        assert set(g) == GENERATION_KEYS
        cached = [] if arch == "fusion" else ["rtf_cached", "speedup"]
        assert all(_positive(g[k]) for k in GENERATION_KEYS - {"rtf_cached", "speedup"} | set(cached)), (arch, g)
    assert report["generation"]["fusion"]["rtf_cached"] is None  # a frame per step: nothing to cache
    for arch in ("wavenet", "transformer"):
        t = report["training"][arch]
        assert _positive(t["paper"]["predictions_per_s"]) and _positive(t["causal"]["predictions_per_s"])
        assert math.isclose(t["ratio"], t["causal"]["predictions_per_s"] / t["paper"]["predictions_per_s"])
    assert all(_positive(report["ingest"][k]) for k in ("realtime_factor", "ffmpeg_rtf", "ratio"))
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
