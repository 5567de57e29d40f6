"""Projections: trustworthy on clustered data, reproducible, and sensible on degenerate input."""
import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from core.knn import knn_graph, recall
from core.projection import PcaParams, TsneParams, UmapParams, params_from, project
from tests.conftest import unit_rows


def clustered(n=600, d=64, clusters=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d)) * 3
    y = rng.integers(0, clusters, n)
    x = centers[y] + rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


@pytest.mark.parametrize("params", [UmapParams(), TsneParams(perplexity=20), PcaParams()])
def test_projection_is_trustworthy(params):
    x, _ = clustered()
    p = project(x, params)
    assert p.coords.shape == (600, 2) and np.isfinite(p.coords).all()
    floor = 0.75 if isinstance(params, PcaParams) else 0.9  # PCA keeps only two linear directions
    assert trustworthiness(x, p.coords, n_neighbors=10, metric="cosine") >= floor


def test_same_seed_same_coordinates_other_seed_differs():
    x, _ = clustered(300)
    a = project(x, UmapParams(seed=1)).coords
    b = project(x, UmapParams(seed=1)).coords
    c = project(x, UmapParams(seed=2)).coords
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_umap_uses_a_given_knn_graph():
    x, _ = clustered(300)
    g = knn_graph(x, 15)
    assert np.array_equal(project(x, UmapParams(), knn=g).coords, project(x, UmapParams()).coords)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_collections_get_a_note_not_an_error(n):
    p = project(unit_rows(n, 8), UmapParams())
    assert p.coords.shape == (n, 2) and p.notes and "too few" in p.notes[0]


def test_parameters_out_of_range_are_clamped_with_a_note():
    x, _ = clustered(40)
    p = project(x, UmapParams(n_neighbors=100))
    assert p.params["n_neighbors"] == 39 and "n_neighbors" in p.notes[0]
    t = project(x, TsneParams(perplexity=50))
    assert t.params["perplexity"] < 13 and "Perplexity" in t.notes[0]


def test_identical_points_do_not_break_the_map():
    x = np.tile(unit_rows(1, 16), (50, 1))
    p = project(x, UmapParams())
    assert p.coords.shape == (50, 2) and np.isfinite(p.coords).all()


def test_params_from_names():
    assert params_from("tsne", perplexity=12.0, n_neighbors=3) == TsneParams(perplexity=12.0)
    with pytest.raises(ValueError, match="Unknown projection"):
        params_from("isomap")


def test_knn_graph_exact_and_approximate_agree():
    x, _ = clustered(3000, d=32)
    exact = knn_graph(x, 10, method="exact")
    approx = knn_graph(x, 10, method="nndescent")
    assert exact.indices.shape == (3000, 10)
    assert not (exact.indices == np.arange(3000)[:, None]).any()  # self excluded
    assert (np.diff(exact.similarities, axis=1) <= 1e-6).all()  # nearest first
    assert recall(approx, exact) > 0.9


def test_knn_graph_with_exact_duplicates_excludes_self_only():
    x = np.repeat(unit_rows(5, 8), 2, axis=0)  # every point has a twin
    g = knn_graph(x, 3, method="exact")
    twins = np.arange(10) ^ 1
    assert (g.indices[:, 0] == twins).all() and np.allclose(g.similarities[:, 0], 1.0, atol=1e-5)


def test_nndescent_similarities_are_cosine_similarities():
    x, _ = clustered(3000, d=32, seed=4)
    approx = knn_graph(x, 10, method="nndescent")
    rows = np.arange(0, 3000, 37)
    direct = np.einsum("rd,rkd->rk", x[rows], x[approx.indices[rows]])  # cosine of the neighbours it names
    np.testing.assert_allclose(approx.similarities[rows], direct, atol=1e-4)


def test_large_map_layout_is_trustworthy(monkeypatch):
    """The layout settings of maps above PARALLEL_ABOVE (parallel, PCA init, euclidean weights), on a small set."""
    import core.projection as projection

    monkeypatch.setattr(projection, "PARALLEL_ABOVE", 0)
    x, _ = clustered(1500, seed=5)
    p = project(x, UmapParams(), knn=knn_graph(x, 15, method="nndescent"))
    assert p.coords.shape == (1500, 2) and np.isfinite(p.coords).all()
    assert trustworthiness(x, p.coords, n_neighbors=10, metric="cosine") >= 0.9


@pytest.mark.parametrize("parallel_above", [20_000, 0])  # the small (seeded) and the large layout settings
def test_umap_from_the_graph_alone_is_trustworthy(parallel_above, monkeypatch):
    import core.projection as projection
    from core.projection import project_graph

    monkeypatch.setattr(projection, "PARALLEL_ABOVE", parallel_above)
    x, _ = clustered(800, seed=6)
    p = project_graph(knn_graph(x, 10, method="exact"), UmapParams())  # no vectors reach the layout
    assert p.coords.shape == (800, 2) and np.isfinite(p.coords).all()
    assert p.params["n_neighbors"] == 11 and "more than the graph's 10" in p.notes[0]
    assert trustworthiness(x, p.coords, n_neighbors=10, metric="cosine") >= 0.9


def test_tsne_of_too_many_points_asks_for_umap_or_a_sample(monkeypatch):
    from core import projection

    monkeypatch.setattr(projection, "TSNE_MAX_POINTS", 50)
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="Use UMAP") as err:
        project(x, TsneParams())
    assert "60 points" in str(err.value) and "50" in str(err.value)
    assert project(x[:50], TsneParams(perplexity=5)).coords.shape == (50, 2)  # at the limit it still runs
