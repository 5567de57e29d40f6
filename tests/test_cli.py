"""The command line, run as a user runs it: a subprocess with the real offline model."""
import json
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.fakes import write_image


def _run(*args, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_ingest_then_collections(tmp_path):
    folder = tmp_path / "fruit"
    for label, color in {"apple": (200, 20, 20), "banana": (230, 220, 40)}.items():
        for i in range(3):
            write_image(folder / label / f"{i}.jpg", color, fmt="JPEG")
    for i in range(2):  # a folder named "unlabeled" holds images without a label, as the app counts them
        write_image(folder / "unlabeled" / f"u{i}.jpg", (40, 40 + 90 * i, 200), fmt="JPEG")
    (folder / "apple" / "bad.jpg").write_bytes(b"nope")
    store = str(tmp_path / "qdrant")
    env = {"ATLAS_REPORT_DIR": str(tmp_path / "reports"), "ATLAS_CACHE_DIR": str(tmp_path / "cache")}
    out = _run("ingest", str(folder), "--collection", "fruits", "--model", "auto", "--store-path", store, "--json",
               env_extra=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["added"], report["skipped"], report["model"]) == (8, 1, "effnet-lite0")
    assert "auto chose effnet-lite0" in report["model_reason"]
    assert report["skipped_files"][0]["path"] == "apple/bad.jpg"
    listing = _run("collections", "--store-path", store, "--json")
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert row["name"] == "fruits" and row["points"] == 8 and row["model"] == "effnet-lite0"
    # the model's vector first, the audit's pixel view after it, whatever order the store lists them in
    assert [(v["name"], v["size"]) for v in row["vectors"]] == [("effnet-lite0", 1280), ("pixels", 432)]
    assert row["labels"] == {"apple": 3, "banana": 3} and row["unlabeled"] == 2
    text = _run("collections", "--store-path", store)
    assert "labels apple 3, banana 3; unlabeled 2" in text.stdout, text.stdout
    # a file moved to another label folder: the summary says it moved (its point and history go with it)
    (folder / "apple" / "0.jpg").rename(folder / "banana" / "moved.jpg")
    again = _run("ingest", str(folder), "--collection", "fruits", "--model", "effnet-lite0", "--store-path", store,
                 "--quiet", env_extra=env)
    assert again.returncode == 0, again.stderr
    assert "0 added" in again.stdout and "1 moved (history kept)" in again.stdout


def test_failures_exit_nonzero_with_a_message(tmp_path):
    out = _run("ingest", str(tmp_path / "nope"), "--collection", "x", "--store-path", str(tmp_path / "q"))
    assert out.returncode == 1 and "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = _run("collections", "--qdrant-url", "http://127.0.0.1:9")
    assert out.returncode == 1 and "http://127.0.0.1:9" in out.stderr and "Traceback" not in out.stderr


def test_audit_and_relabel_commands(tmp_path):
    import numpy as np

    from core.store import open_store

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    y = np.repeat(np.arange(3), 15)
    x = centers[y] + 0.2 * rng.normal(size=(45, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [f"c{v}" for v in y]
    labels[0] = "c2"  # planted
    with open_store(path=str(tmp_path / "q")) as s:
        s.create_collection("c", {"m": 16})
        s.upsert("c", list(range(1, 46)), {"m": x}, [{"label": lab} for lab in labels])
    common = ["--store-path", str(tmp_path / "q"), "--json"]
    env = {"ATLAS_CACHE_DIR": str(tmp_path / "cache")}
    out = _run("audit", "--collection", "c", "--threshold", "0.3", "--out", str(tmp_path / "s.csv"), *common,
               env_extra=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["checks"]["label"]["flagged"] >= 1
    assert "1," in (tmp_path / "s.csv").read_text()  # the planted point (id 1) is among the suspects
    # a point query leaves out its own point (it would come back first with score 1)
    found = _run("search", "--collection", "c", "--point", "5", "--k", "3", *common, env_extra=env)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 3 and 5 not in [h["id"] for h in hits]
    assert {h["label"] for h in hits} == {"c0"}  # point 5 is a c0 in a tight cluster of c0s
    bad = _run("relabel", "--collection", "c", "--point", "1", "--label", "c7", *common, env_extra=env)
    assert bad.returncode == 1 and "--new-label" in bad.stderr
    ok = _run("relabel", "--collection", "c", "--point", "1", "--label", "c0", *common, env_extra=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["old_label"] == "c2"
    again = _run("relabel", "--collection", "c", "--point", "1", "--label", "c0", *common, env_extra=env)
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] is True  # no no-op in the history
    missing = _run("relabel", "--collection", "c", "--point", "999", "--label", "c0", *common, env_extra=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_audit_operating_points_and_the_calibrated_statement(tmp_path, monkeypatch):
    from tests.conftest import make_colors_env
    from tests.test_app_audit import AMBIGUOUS

    store = make_colors_env(tmp_path, monkeypatch, AMBIGUOUS)  # two blatant mislabels, six in-between images
    common = ["--collection", "colors", "--store-path", str(store), "--checks", "label,duplicate"]
    flagged = {}
    for point in ("precision", "recall", "0.6"):
        out = _run("audit", *common, "--operating-point", point, "--json")
        assert out.returncode == 0, out.stderr
        label = json.loads(out.stdout)["checks"]["label"]
        assert label["calibration"]["operating_point"] == point and label["flagged"] == label["calibration"]["flagged"]
        flagged[point] = label["flagged"]
    assert 2 <= flagged["precision"] <= flagged["0.6"] <= flagged["recall"]
    assert flagged["precision"] < flagged["recall"]
    out = _run("audit", *common, "--operating-point", "recall")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"  label: {flagged['recall']} flagged"))
    assert lines[at + 1].strip().startswith(f"Of the {flagged['recall']} flagged, about")
    assert "operating point recall" in lines[at + 2]
    # a fixed threshold is uncalibrated and says so; a fixed cosine replaces the adaptive duplicate rule
    out = _run("audit", *common, "--threshold", "0.3", "--duplicate-similarity", "0.95", "--json")
    checks = json.loads(out.stdout)["checks"]
    assert "calibration" not in checks["label"] and checks["label"]["threshold"] == 0.3
    assert checks["duplicate"]["rule"] == "fixed" and checks["duplicate"]["similarity"] == 0.95
    out = _run("audit", *common, "--json")
    assert json.loads(out.stdout)["checks"]["duplicate"]["rule"] == "adaptive"


def test_manifest_ingest_export_and_a_label_studio_review(tmp_path):
    import pandas as pd

    from core.ingest import point_id
    from core.store import open_store

    for label, color in {"apple": (200, 20, 20), "banana": (230, 220, 40)}.items():
        for i in range(4):
            write_image(tmp_path / "data" / "imgs" / label / f"{i}.jpg", tuple(min(255, c + 9 * i) for c in color),
                        fmt="JPEG")
    rows = [(f"imgs/{lab}/{i}.jpg", lab, "shop") for lab in ("apple", "banana") for i in range(4)]
    rows += [("imgs/apple/gone.jpg", "apple", "x"), ("imgs/apple/0.jpg", "apple", "shop")]  # a bad path, a duplicate
    # the image folder of a manifest is the one that holds it and its images: here data/ (exports go elsewhere)
    pd.DataFrame(rows, columns=["file", "class", "source"]).to_csv(tmp_path / "data" / "list.csv", index=False)
    store = str(tmp_path / "q")
    env = {"ATLAS_CACHE_DIR": str(tmp_path / "cache"), "ATLAS_REPORT_DIR": str(tmp_path / "reports")}
    common = ["--collection", "m", "--store-path", store]
    out = _run("ingest", str(tmp_path / "data" / "list.csv"), *common, "--model", "effnet-lite0", "--json",
               env_extra=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["added"], report["skipped"], report["kind"]) == (8, 2, "manifest")
    assert sorted(s["reason"][:6] for s in report["skipped_files"]) == ["row 10", "row 11"]
    moved = point_id("imgs/apple/1.jpg")
    assert _run("relabel", *common, "--point", moved, "--label", "banana", env_extra=env).returncode == 0

    out = _run("export", *common, "--out", str(tmp_path / "fixed.csv"), "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["exported"] == 8
    table = pd.read_csv(tmp_path / "fixed.csv", dtype=str).set_index("id")
    assert (table.loc[moved, "label"], table.loc[moved, "label_original"]) == ("banana", "apple")
    assert set(table["source"]) == {"shop"}
    tree = ["export", *common, "--format", "imagefolder", "--out", str(tmp_path / "tree")]
    assert _run(*tree, env_extra=env).returncode == 0
    assert len(list((tmp_path / "tree" / "banana").iterdir())) == 5
    again = _run(*tree, env_extra=env)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr

    (tmp_path / "ids.txt").write_text(f"{moved}\n{point_id('imgs/banana/0.jpg')}\n")
    out = _run("export", *common, "--out", str(tmp_path / "tasks.json"), "--ids", str(tmp_path / "ids.txt"),
               env_extra=env)
    assert out.returncode == 0, out.stderr
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert sorted(t["data"]["atlas_id"] for t in tasks) == sorted([moved, point_id("imgs/banana/0.jpg")])
    reviewed = [{"id": 1, "atlas_id": moved, "choice": "apple", "annotator": "ann@lab"}]  # Label Studio's JSON-MIN
    (tmp_path / "reviewed.json").write_text(json.dumps(reviewed))
    out = _run("import-labelstudio", str(tmp_path / "reviewed.json"), *common, "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["relabelled"] == 1

    out = _run("audit", *common, "--checks", "label", "--threshold", "0.3", "--write-scores", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["scores_written"] == 8
    with open_store(path=store) as s:
        payload = s.retrieve("m", [moved]).payloads[0]
    assert payload["label"] == "apple" and payload["label_history"][-1]["by"] == "ann@lab"
    assert isinstance(payload["label_score"], float) and "fixed threshold" in payload["audit_how"]
