"""The benchmarks run (quick mode) and write their results; how fast is the benchmarks' business, not the tests'."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def _run(script, *args):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out


def test_store_benchmark_runs(tmp_path):
    out = _run("store.py", "--out", str(tmp_path / "store.json"))
    result = json.loads((tmp_path / "store.json").read_text())
    assert "| embedded | scroll |" in out.stdout
    embedded = [r for r in result["results"] if r["engine"] == "embedded"][0]
    assert embedded["recall_at_10"] > 0.5 and embedded["scroll_s"] > 0


def test_ingest_benchmark_runs(tmp_path):
    from core import models
    from core.models import runtime

    out = _run("ingest.py", "--out", str(tmp_path / "ingest.json"))
    text = (tmp_path / "ingest.json").read_text()
    result = json.loads(text)
    rows = result["results"]
    bf16 = models.cpu_bf16_supported()
    assert result["machine"]["cpu_bf16"] == bf16 and result["machine"]["packages"]["openvino"]
    # the default runtime is the one core.models.load picks with ATLAS_RUNTIME=auto, ATLAS_CPU_BF16=auto
    chosen = runtime.pick_runtime("auto", "cpu")
    default = (chosen, "bf16" if models.use_bf16("effnet-lite0", "auto", "cpu", chosen) else "fp32")
    assert chosen != "torch" and result["config"]["default_runtime"]["runtime"] == chosen
    ceilings = [("ceiling", "torch", "fp32")] + [("ceiling", "torch", "bf16")] * bf16 + [
        ("ceiling", "onnx", "fp32"), ("ceiling", "openvino", "fp32")] + [("ceiling", "openvino", "bf16")] * bf16
    assert [(r["kind"], r["runtime"], r["precision"]) for r in rows] == ceilings + [
        ("tutorial", "torch", "fp32"), ("pipeline", *default), ("pipeline", "torch", "fp32")]
    assert [r["path"][:3] for r in rows] == ["(a)"] * len(ceilings) + ["(b)", "(c)", "(c)"]
    assert [(r["kind"], r["runtime"], r["precision"]) for r in rows if r["default"]] == [
        ("ceiling", *default), ("pipeline", *default)]
    assert all(r["images"] == 64 and r["images_per_second"] > 0 and r["cpu_seconds"] > 0 for r in rows)
    # every runtime embeds the same images as torch fp32 does: the pipelines' stored vectors too
    for r in rows:
        if r["kind"] != "tutorial":
            assert r["cosine_to_torch_fp32_min"] >= (0.999 if r["precision"] == "fp32" else 0.98), r
    goals = result["goals"]
    assert set(goals) == {"runtime_vs_torch_ceiling", "pipeline_vs_ceiling", "pipeline_vs_tutorial",
                          "runtime_vs_torch_bf16_ceiling"}
    measured = {k: g for k, g in goals.items() if g.get("measured", True)}
    assert set(measured) == set(goals) - ({"runtime_vs_torch_bf16_ceiling"} if not bf16 else set())
    for name, g in measured.items():
        assert g["ratio"] > 0 and g["pass"] == (g["ratio"] >= g["goal"])
        [line] = [ln for ln in out.stdout.splitlines() if ln.startswith(f"- {name}: ")]
        assert f"(goal >= {g['goal']}) {'PASS' if g['pass'] else 'FAIL'}" in line
    default_rate = next(r for r in rows if r["default"])["images_per_second"]
    assert abs(goals["runtime_vs_torch_ceiling"]["ratio"] - default_rate / rows[0]["images_per_second"]) < 0.01
    assert goals["runtime_vs_torch_ceiling"]["ratio"] > 1  # the compiled runtime beats eager torch, even under load
    assert f"(c) pipeline, {chosen}" in out.stdout
    assert str(ROOT) not in text and "/usr/" not in text  # no machine-specific paths in a result file


def test_search_benchmark_runs(tmp_path):
    _run("search.py", "--out", str(tmp_path / "search.json"))
    result = json.loads((tmp_path / "search.json").read_text())
    [row] = result["results"]
    assert row["query_p50_ms"] > 0 and 0 < row["recall_at_10"] <= 1 and row["image_p50_ms"] > 0


def test_graph_benchmark_runs(tmp_path):
    out = _run("graph.py", "--out", str(tmp_path / "graph.json"))
    rows = json.loads((tmp_path / "graph.json").read_text())["results"]
    assert [r["graph"] for r in rows] == ["kNN edges", "spanning tree"]
    assert rows[1]["edges"] < rows[0]["edges"] and "| kNN edges |" in out.stdout


def test_audit_benchmark_runs(tmp_path):
    out = _run("audit.py", "--out", str(tmp_path / "audit.json"))
    result = json.loads((tmp_path / "audit.json").read_text())
    assert result["duplicates"]["exact_pairs_found"] == result["duplicates"]["exact_pairs_planted"] > 0
    assert [q["noise"] for q in result["quality"]] == ["uniform 2%", "uniform 5%", "uniform 10%", "uniform 20%",
                                                       "class-cond. 5%", "class-cond. 10%"]
    assert "| uniform 5% | ours (run_audit, balanced) |" in out.stdout
    assert "| uniform 5% | cleanlab find_label_issues, same out-of-fold probabilities |" in out.stdout
    assert all(q["ours"]["estimated_precision"] is not None for q in result["quality"])  # calibrated everywhere
    assert [q["noise"] for q in result["quality"] if "review" in q] == ["uniform 10%", "class-cond. 10%"]
    assert result["small_set"]["n"] == 30 and result["small_set"]["mislabels"] == 2
    assert len(result["tune"]["summary"]) == 2 and result["tune"]["runs"]  # the tuning's smoke run
    assert "| goal | measured | result |" in out.stdout and result["scale"]["no_calibration"]["seconds"] > 0


def test_explore_benchmark_runs(tmp_path):
    _run("explore.py", "--no-browser", "--out", str(tmp_path / "explore.json"))
    result = json.loads((tmp_path / "explore.json").read_text())
    assert result["results"]["map"]["umap_cold_s"] > 0 and result["results"]["figure"]


def test_fault_injection_loses_nothing(tmp_path):
    out = _run("faults.py", "--out", str(tmp_path / "faults.json"))
    result = json.loads((tmp_path / "faults.json").read_text())
    assert [s["operation"] for s in result["summary"]] == ["ingest", "relabel"]
    for s in result["summary"]:
        assert s["runs"] == s["opened"] == 2 and s["calibration_clean"]
        assert (s["points_lost"], s["duplicated"], s["histories_inconsistent"]) == (0, 0, 0), s
    assert any(r["killed"] for r in result["runs"])  # the kills landed while the operations ran
    assert "| ingest | 2 |" in out.stdout and result["machine"]["cpu_flags"] is not None


def test_first_map_benchmark_runs(tmp_path):
    out = _run("first_map.py", "--out", str(tmp_path / "first_map.json"))
    result = json.loads((tmp_path / "first_map.json").read_text())
    rows = {r["method"]: r for r in result["results"]}
    assert set(rows) == {"umap", "tsne"} and all(r["first_s"] > 0 and r["warm_s"] > 0 for r in rows.values())
    assert result["machine"]["cpu_flags"] is not None and "| umap |" in out.stdout
