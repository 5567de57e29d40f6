"""Maps of a real store: caching keyed by the points' content, 'showing N of M', filters, CLI."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.cache import ArrayCache
from core.maps import compute_map
from core.points import load_points
from core.projection import PcaParams, UmapParams
from core.store import open_store
from tests.conftest import ROOT, unit_rows


def _fill(store, n=120, name="c"):
    store.create_collection(name, {"m": 16})
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16)) * 3
    y = np.arange(n) % 3
    x = centers[y] + rng.normal(size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = list(range(1, n + 1))
    store.upsert(name, ids, {"m": x}, [{"label": "abc"[c], "sha1": f"h{i}", "file_name": f"{i}.png"}
                                       for i, c in zip(ids, y)])
    return ids


@pytest.fixture
def filled(store):
    return store, _fill(store)


def test_second_map_comes_from_cache_and_survives_restart(filled, tmp_path):
    store, _ = filled
    cache = ArrayCache(tmp_path / "cache")
    first = compute_map(store, "c", UmapParams(), cache=cache)
    assert not first.cached and first.coords.shape == (120, 2)
    again = compute_map(store, "c", UmapParams(), cache=cache)
    assert again.cached and np.array_equal(again.coords, first.coords)
    restarted = compute_map(store, "c", UmapParams(), cache=ArrayCache(tmp_path / "cache"))  # new process
    assert restarted.cached and np.array_equal(restarted.coords, first.coords)
    other = compute_map(store, "c", UmapParams(min_dist=0.5), cache=cache)
    assert not other.cached


def test_relabel_keeps_coordinates_but_shows_new_label(filled, tmp_path):
    store, ids = filled
    cache = ArrayCache(tmp_path / "cache")
    first = compute_map(store, "c", PcaParams(), cache=cache)
    store.set_payload("c", [ids[0]], {"label": "z"})
    after = compute_map(store, "c", PcaParams(), cache=cache)
    assert after.cached and np.array_equal(after.coords, first.coords)  # the vectors did not change, so neither do the coordinates
    assert after.points.payloads[after.points.ids.index(ids[0])]["label"] == "z"
    only_a = compute_map(store, "c", PcaParams(), filter={"label": "a"}, cache=cache)
    assert ids[0] not in only_a.points.ids  # a filter on labels sees the relabel at once


def test_added_and_changed_points_invalidate(filled, tmp_path):
    store, ids = filled
    cache = ArrayCache(tmp_path / "cache")
    compute_map(store, "c", PcaParams(), cache=cache)
    store.upsert("c", [999], {"m": unit_rows(1, 16)}, [{"label": "a", "sha1": "new"}])
    added = compute_map(store, "c", PcaParams(), cache=cache)
    assert not added.cached and len(added.points) == 121
    store.set_payload("c", [ids[5]], {"sha1": "changed"})  # what a re-ingest of a changed file writes
    assert not compute_map(store, "c", PcaParams(), cache=cache).cached


def test_sample_says_n_of_m_and_is_stable(filled):
    store, _ = filled
    a = load_points(store, "c", max_points=50)
    b = load_points(store, "c", max_points=50)
    assert len(a) == 50 and a.total == 120 and a.ids == b.ids and a.fingerprint == b.fingerprint
    assert load_points(store, "c", filter={"label": "zzz"}).total == 0


def test_filter_matching_nothing_gives_an_empty_map(filled):
    store, _ = filled
    result = compute_map(store, "c", UmapParams(), filter={"label": "nope"})
    assert len(result.points) == 0 and result.coords.shape == (0, 2)


def test_cli_project_writes_coordinates(tmp_path):
    path = tmp_path / "q"
    with open_store(path=str(path)) as s:
        _fill(s, n=60)
    out = tmp_path / "coords.csv"
    env = {**os.environ, "ATLAS_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "core", "project", "--collection", "c", "--method", "pca",
                          "--store-path", str(path), "--out", str(out), "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["points"] == 60 and summary["method"] == "pca"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and {"id", "label", "x", "y"} <= set(rows[0])


def test_cache_writers_of_one_key_at_once_leave_a_whole_file(tmp_path):
    import threading

    from core.cache import ArrayCache

    arrays = [{"x": np.full((200, 64), i, np.float32)} for i in range(8)]
    writers = [ArrayCache(tmp_path) for _ in arrays]  # separate caches: as separate processes, no shared memory
    threads = [threading.Thread(target=c.put, args=("knn", "same", a)) for c, a in zip(writers, arrays)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = ArrayCache(tmp_path).get("knn", "same")["x"]  # read from disk by a fresh cache
    assert got.shape == (200, 64) and len(np.unique(got)) == 1
    assert not list(tmp_path.rglob("*.tmp.npz"))  # no temporary file left behind
