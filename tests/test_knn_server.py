"""The kNN graph taken from the store (a Qdrant server's batched queries by point id), against exact search."""
import uuid

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.knn import knn_from_store, knn_graph, recall
from core.store import open_store
from core.store.remote import ClientStore
from tests.conftest import unit_rows


def _clustered(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, d))[rng.integers(0, 8, n)] + 0.4 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fill(store, x: np.ndarray, name: str = "c", vname: str = "m") -> list[str]:
    store.create_collection(name, {vname: x.shape[1]})
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"k{i}")) for i in range(len(x))]
    payloads = [{"label": "even" if i % 2 == 0 else "odd"} for i in range(len(x))]
    for i in range(0, len(x), 500):
        store.upsert(name, ids[i:i + 500], {vname: x[i:i + 500]}, payloads[i:i + 500])
    return ids


def _no_vectors_leave_the_store(store, monkeypatch):
    """Make reading vectors fail, so that a graph built without them proves the matrix stayed in the store."""
    def refuse(*a, **kw):
        raise AssertionError("the vector matrix was read into this process")
    real_retrieve, real_scroll = store.retrieve, store.scroll
    monkeypatch.setattr(store, "vector_matrix", refuse)
    monkeypatch.setattr(store, "retrieve", lambda *a, with_vectors=False, **kw:
                        refuse() if with_vectors else real_retrieve(*a, with_vectors=False, **kw))
    monkeypatch.setattr(store, "scroll", lambda *a, with_vectors=True, **kw:
                        refuse() if with_vectors else real_scroll(*a, with_vectors=False, **kw))


def test_server_graph_equals_exact_knn_without_reading_vectors(monkeypatch):
    x = _clustered(1200)
    with open_store(url=":memory:") as store:
        ids = _fill(store, x)
        _no_vectors_leave_the_store(store, monkeypatch)
        seen = []
        graph = knn_from_store(store, "c", ids, "m", k=10, progress=lambda what, f: seen.append(f), page_size=200)
    exact = knn_graph(x, 10, method="exact")
    assert graph.indices.shape == (1200, 10) and graph.method == "server"
    assert recall(graph, exact) >= 0.99
    assert not (graph.indices == np.arange(1200)[:, None]).any()  # never its own neighbour
    np.testing.assert_allclose(np.sort(graph.similarities, axis=1), np.sort(exact.similarities, axis=1), atol=1e-4)
    assert (np.diff(graph.similarities, axis=1) <= 1e-6).all()  # nearest first
    assert seen == [0, 200 / 1200, 400 / 1200, 600 / 1200, 800 / 1200, 1000 / 1200]  # one step per page


def test_server_graph_stays_inside_the_filtered_set():
    x = _clustered(600, seed=1)
    with open_store(url=":memory:") as store:
        ids = _fill(store, x)
        even = ids[::2]
        graph = knn_from_store(store, "c", even, "m", k=8, filter={"label": "even"})
    exact = knn_graph(x[::2], 8, method="exact")
    assert recall(graph, exact) >= 0.99


def test_a_sample_without_its_filter_is_refused():
    x = _clustered(300, seed=2)
    with open_store(url=":memory:") as store:
        ids = _fill(store, x)
        with pytest.raises(LookupError, match="neighbours inside the point set"):
            knn_from_store(store, "c", ids[:100], "m", k=5)


def test_embedded_store_answers_through_the_default_neighbours(tmp_path):
    x = _clustered(400, seed=3)
    with open_store(path=str(tmp_path / "q")) as store:
        ids = _fill(store, x)
        graph = knn_from_store(store, "c", ids, "m", k=6, page_size=150)
    assert recall(graph, knn_graph(x, 6, method="exact")) >= 0.99


def test_a_store_around_an_existing_local_client(tmp_path):
    client = QdrantClient(path=str(tmp_path / "local"))
    store = ClientStore.from_client(client, location=str(tmp_path / "local"))
    x = _clustered(250, seed=4)
    ids = _fill(store, x, vname="")
    graph = knn_from_store(store, "c", ids, None, k=5)
    assert recall(graph, knn_graph(x, 5, method="exact")) >= 0.99
    store.close()


@pytest.mark.parametrize("engine", ["embedded", "client"])
def test_vector_matrix_follows_the_order_given_and_names_missing_points(engine, tmp_path):
    x = unit_rows(50, 8, seed=5)
    with (open_store(path=str(tmp_path / "q")) if engine == "embedded" else open_store(url=":memory:")) as store:
        ids = _fill(store, x)
        order = [7, 3, 49, 0, 3]
        np.testing.assert_allclose(store.vector_matrix("c", [ids[i] for i in order], "m"), x[order], atol=1e-6)
        store.delete("c", [ids[3]])
        with pytest.raises(LookupError):
            store.vector_matrix("c", [ids[1], ids[3]], "m")


def test_a_server_collection_is_mapped_from_its_graph_without_its_vectors(monkeypatch):
    """compute_map on a server store: the graph comes from the server and the layout runs on it alone."""
    from core.maps import compute_map
    from core.projection import UmapParams

    rng = np.random.default_rng(3)
    centers = np.eye(16, dtype=np.float32)[:2] * 4
    side = rng.integers(0, 2, 400)
    x = centers[side] + 0.3 * rng.normal(size=(400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with open_store(url=":memory:") as store:
        ids = _fill(store, x)
        monkeypatch.setattr(store, "engine", "server")  # local mode answers the same API as a server
        _no_vectors_leave_the_store(store, monkeypatch)
        result = compute_map(store, "c", UmapParams(n_neighbors=10))
    row = {pid: i for i, pid in enumerate(ids)}
    order = [row[pid] for pid in result.points.ids]
    coords, groups = result.coords, side[order]
    assert result.layout == "full" and coords.shape == (400, 2) and np.isfinite(coords).all()
    # the two clusters land apart: each point's nearest 2D neighbour is from its own cluster
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1) + np.eye(400) * 1e9
    assert (groups[d.argmin(1)] == groups).mean() > 0.98
