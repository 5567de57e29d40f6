"""Maps of large collections: reused point sets, the landmark layout, placement from neighbours, cancelling, and
incremental updates when points are added or removed."""
import threading
import time

import numpy as np
import pytest

from core import landmarks, maps, points
from core.cache import ArrayCache, key_of
from core.knn import knn_graph
from core.landmarks import MapCancelled, propagate, search_rows
from core.maps import SHARED_K, compute_map
from core.points import load_points
from core.projection import UmapParams
from core.store import open_store
from core.store.edge import EdgeStore


def blobs(n, d=16, centers=4, seed=0, spread=0.15):
    """Unit vectors in well-separated clusters, and each row's cluster."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d))
    y = rng.integers(0, centers, n)
    x = c[y] + spread * rng.normal(size=(n, d)) * np.linalg.norm(c, axis=1).mean() / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def fill(store, x, y, first=0, name="c"):
    if not store.collection_exists(name):
        store.create_collection(name, {"m": x.shape[1]})
    ids = list(range(first + 1, first + len(x) + 1))
    store.upsert(name, ids, {"m": x}, [{"label": f"c{c}", "sha1": f"h{i}", "file_name": f"{i}.png"}
                                       for i, c in zip(ids, y)])
    return ids


class CountingStore(EdgeStore):
    """The embedded store with the write generation that core.points asks engines for (Store.write_generation),
    and a count of scrolls, so a test can see whether points were read again."""

    def __init__(self, root):
        super().__init__(root)
        self.generation, self.scrolls = 0, 0

    def write_generation(self, name):
        return self.generation

    def scroll(self, *a, **kw):
        self.scrolls += 1
        return super().scroll(*a, **kw)

    def upsert(self, *a, **kw):
        self.generation += 1
        return super().upsert(*a, **kw)

    def set_payload(self, *a, **kw):
        self.generation += 1
        return super().set_payload(*a, **kw)


@pytest.fixture(autouse=True)
def fresh_recent():
    points.clear_recent()
    yield
    points.clear_recent()


def test_points_are_reused_until_the_store_says_it_was_written(tmp_path):
    store = CountingStore(tmp_path / "q")
    x, y = blobs(200)
    ids = fill(store, x, y)
    first = load_points(store, "c")
    before = store.scrolls
    again = load_points(store, "c")
    assert store.scrolls == before and again.fingerprint == first.fingerprint  # no second read
    again.ids.reverse()  # a page trimming or reordering its copy does not change the next caller's
    assert load_points(store, "c").ids == first.ids
    store.set_payload("c", [ids[0]], {"label": "z"})  # same count, new generation: read again
    relabelled = load_points(store, "c")
    assert store.scrolls == before + 1 and relabelled.payloads[relabelled.ids.index(ids[0])]["label"] == "z"
    assert load_points(store, "c", filter={"label": "c1"}).total == int((y == 1).sum())  # another key: own read
    store.close()


def test_points_are_not_reused_without_a_write_generation(tmp_path):
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(50)
    fill(store, x, y)
    assert not hasattr(store, "write_generation") or points.write_stamp(store, "c", None) is not None
    a = load_points(store, "c")
    store.upsert("c", [1], {"m": x[:1]}, [{"label": "c9", "sha1": "changed"}])
    assert load_points(store, "c").fingerprint != a.fingerprint  # a write is seen however the store is built
    store.close()


def test_payload_keys_read_only_those_fields_and_the_content_hash(tmp_path):
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(40)
    fill(store, x, y)
    full = load_points(store, "c")
    slim = load_points(store, "c", payload_keys=["label"])
    assert set(slim.payloads[0]) == {"label", "sha1"} and slim.fingerprint == full.fingerprint
    store.close()


def test_propagation_places_points_among_their_neighbours():
    x, y = blobs(3000, centers=3, seed=1)
    graph = knn_graph(x, 15, method="exact")
    centre = np.array([[0, 0], [100, 0], [0, 100]], np.float32)
    rng = np.random.default_rng(0)
    placed = np.zeros(len(x), bool)
    placed[rng.choice(len(x), 150, replace=False)] = True  # 5% landmarks: most points need several rounds
    coords = np.zeros((len(x), 2), np.float32)
    coords[placed] = centre[y[placed]] + rng.normal(size=(placed.sum(), 2))
    out, lost = propagate(coords, placed, graph.indices, graph.similarities)
    assert lost == 0 and np.array_equal(out[placed], coords[placed])  # landmarks stay where they were
    nearest = np.argmin(((out[:, None, :] - centre[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() > 0.99  # every other point lands in its own cluster's region


def test_points_no_neighbour_reaches_sit_at_the_centre():
    idx = np.array([[1], [0], [3], [2]])
    sims = np.ones((4, 1), np.float32)
    coords = np.array([[0, 0], [0, 0], [5, 5], [0, 0]], np.float32)
    out, lost = propagate(coords, np.array([False, False, True, False]), idx, sims)
    assert lost == 2 and np.allclose(out[3], [5, 5]) and np.isfinite(out).all()


def test_search_finds_the_true_neighbours_of_new_rows():
    x, _ = blobs(4000, seed=2)
    exact = knn_graph(x, 10, method="exact")
    old = np.ones(len(x), bool)
    new = np.arange(3900, 4000)
    old[new] = False
    old_graph = knn_graph(x[:3900], 10, method="exact")
    indices = np.full((len(x), 10), -1)
    indices[:3900] = old_graph.indices
    found, sims = search_rows(x, new, indices, old, 10, seed=0)
    assert old[found].all()  # searched among the old rows only
    truth = [set(r[old[r]][:5]) for r in exact.indices[new]]  # the exact neighbours that are old rows
    recall = np.mean([len(t & set(f)) / max(1, len(t)) for t, f in zip(truth, found)])
    assert recall > 0.9
    assert np.allclose(sims[:, 0], (x[new] * x[found[:, 0]]).sum(1), atol=1e-5)


def test_cancel_stops_the_map_and_caches_nothing(tmp_path):
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(3000)
    fill(store, x, y)
    cache = ArrayCache(tmp_path / "cache")
    stop = threading.Event()
    seen = []

    def progress(what, fraction):
        seen.append(what)
        if what.startswith("kNN graph"):
            stop.set()  # as a Stop button pressed while the graph is computed

    with pytest.raises(MapCancelled):
        compute_map(store, "c", UmapParams(), cache=cache, progress=progress, cancel=stop)
    assert not any("layout" in w for w in seen)  # it stopped before the layout
    assert compute_map(store, "c", UmapParams(), cache=cache, cached_only=True) is None
    store.close()


def test_cancel_stops_umap_inside_its_epochs():
    x, _ = blobs(3000)
    graph = knn_graph(x, 15, method="exact")
    epochs = []

    def say(what, fraction):
        epochs.append(what)

    calls = iter(range(10**6))
    started = time.perf_counter()
    with pytest.raises(MapCancelled):
        landmarks.umap_layout(x, graph, 15, 0.1, 0, say, lambda: next(calls) >= 1, what="t")
    assert time.perf_counter() - started < 20


def test_landmark_layout_places_every_point_near_its_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "LANDMARK_ABOVE", 1000)
    monkeypatch.setattr(landmarks, "LANDMARKS", 600)
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(3000, centers=4, seed=3)
    fill(store, x, y)
    said = []
    result = compute_map(store, "c", UmapParams(), cache=ArrayCache(tmp_path / "cache"),
                         progress=lambda w, f: said.append((w, f)))
    assert result.layout == "landmarks" and result.coords.shape == (3000, 2) and np.isfinite(result.coords).all()
    assert any("landmarks" in w for w, _ in said) and [f for _, f in said] == sorted(f for _, f in said)
    row = {pid: i for i, pid in enumerate(result.points.ids)}
    cls = y[[pid - 1 for pid in result.points.ids]]
    centres = np.array([np.median(result.coords[cls == c], axis=0) for c in range(4)])
    nearest = np.argmin(((result.coords[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == cls).mean() > 0.95 and len(row) == 3000
    store.close()


def test_adding_a_few_points_updates_the_map_instead_of_recomputing(tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "INCREMENTAL_ABOVE", 500)
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(2000, centers=4, seed=4)
    fill(store, x[:1980], y[:1980])
    cache = ArrayCache(tmp_path / "cache")
    first = compute_map(store, "c", UmapParams(), cache=cache)
    assert first.layout == "full"
    fill(store, x[1980:], y[1980:], first=1980)  # 20 new points (1%)
    store.delete("c", [1, 2, 3])
    called = []
    monkeypatch.setattr(maps, "project", lambda *a, **k: called.append(1))  # a full layout would fail the test
    second = compute_map(store, "c", UmapParams(), cache=cache)
    assert not called and second.layout == "incremental" and (second.added, second.removed) == (20, 3)
    assert second.notes[0].startswith("Placed 20 new point(s)")
    old_xy = {pid: xy for pid, xy in zip(first.points.ids, first.coords)}
    row = {pid: i for i, pid in enumerate(second.points.ids)}
    kept = [pid for pid in second.points.ids if pid in old_xy]
    assert np.array_equal(second.coords[[row[p] for p in kept]], np.array([old_xy[p] for p in kept]))
    # each new point lands next to the old points nearest to it in the vectors
    graph = cache.get("knn", key_of("knn", second.points.fingerprint, SHARED_K))
    assert graph is not None and graph["indices"].shape == (1997, SHARED_K)
    span = np.ptp(second.coords, axis=0).max()
    for pid in range(1981, 2001):
        r = row[pid]
        near = np.argsort(-(x[[p - 1 for p in second.points.ids]] @ x[pid - 1]))[1:6]
        assert set(graph["indices"][r][:5]) & set(near)  # the patched graph found true neighbours
        assert np.linalg.norm(second.coords[r] - second.coords[near].mean(0)) < 0.1 * span
    assert compute_map(store, "c", UmapParams(), cache=cache).cached  # and the update is cached
    store.close()


def test_too_many_new_points_lay_the_map_out_again(tmp_path, monkeypatch):
    monkeypatch.setattr(maps, "INCREMENTAL_ABOVE", 500)
    store = open_store(path=str(tmp_path / "q"))
    x, y = blobs(1200, seed=5)
    fill(store, x[:1000], y[:1000])
    cache = ArrayCache(tmp_path / "cache")
    compute_map(store, "c", UmapParams(), cache=cache)
    fill(store, x[1000:], y[1000:], first=1000)  # 20% more
    again = compute_map(store, "c", UmapParams(), cache=cache)
    assert again.layout == "full" and again.added == 0
    store.close()


def test_million_benchmark_quick_mode_writes_its_goals(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "million.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "million.py"), "--quick", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout[-2000:] + run.stderr[-2000:]  # 1: a goal missed, still a result
    result = json.loads(out.read_text())
    names = [g["goal"] for g in result["goals"]]
    assert any(n.startswith("cold map of 10,000 points") for n in names) and "peak RSS of the cold map" in names
    assert any(n.startswith("trustworthiness") for n in names) and any(n.startswith("+1% points") for n in names)
    r = result["results"]
    assert r["layout"] == "landmarks" and r["incremental_layout"] == "incremental" and r["incremental_added"] == 100
    assert result["machine"]["cpu_flags"] is not None and str(tmp_path) not in out.read_text()
    assert "| cold map of 10,000 points" in run.stdout
