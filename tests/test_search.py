"""Search: self-queries, filters, text plumbing through real OpenCLIP code, and bad queries."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from core import models
from core.models.clip import OpenClipEmbedder
from core.search import (SearchError, image_query_vector, model_for, parse_point_id, point_vector, recommend,
                         search, text_query_vector)
from core.store import open_store
from tests.conftest import unit_rows


@pytest.fixture
def filled(store):
    vecs = unit_rows(200, 16, seed=3)
    store.create_collection("c", {"m": 16})
    store.upsert("c", list(range(1, 201)), {"m": vecs}, [{"label": "ab"[i % 2], "file_name": f"{i}.png"}
                                                         for i in range(200)])
    return store, vecs


def test_self_query_returns_the_point_first(filled):
    store, vecs = filled
    for pid in (1, 57, 200):
        res = search(store, "c", point_vector(store, "c", pid), k=5)
        assert res.hits[0].id == pid and res.hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert res.milliseconds >= 0 and len(res.hits) == 5


def test_label_filter_only_returns_that_label(filled):
    store, vecs = filled
    res = search(store, "c", vecs[0], k=50, filter={"label": "b"})
    assert len(res.hits) == 50 and {h.payload["label"] for h in res.hits} == {"b"}
    assert search(store, "c", vecs[0], k=5, filter={"label": "zzz"}).hits == []


def test_exact_and_default_agree_and_min_score_cuts(filled):
    store, vecs = filled
    a = [h.id for h in search(store, "c", vecs[3], k=10).hits]
    b = [h.id for h in search(store, "c", vecs[3], k=10, exact=True, hnsw_ef=256).hits]
    assert a == b
    assert all(h.score >= 0.3 for h in search(store, "c", vecs[3], k=200, min_score=0.3).hits)


def test_missing_point_is_named(filled):
    store, _ = filled
    with pytest.raises(SearchError, match="No point with id 9999"):
        point_vector(store, "c", 9999)
    assert parse_point_id("42") == 42
    assert parse_point_id(" 6F1C9A528A5E4B1A9C3D000000000001 ") == "6f1c9a52-8a5e-4b1a-9c3d-000000000001"
    with pytest.raises(SearchError, match="not a point id.*UUID"):
        parse_point_id("6f1c9a52-8a5e")  # a cut-off UUID is a typo, not an id


def test_recommend_leaves_examples_out(filled):
    store, vecs = filled
    res = recommend(store, "c", positive_ids=[1, 2], negative_ids=[3], k=5)
    assert len(res.hits) == 5 and not {1, 2, 3} & {h.id for h in res.hits}
    with pytest.raises(SearchError, match="positive example"):
        recommend(store, "c", negative_ids=[3])


def test_text_search_plumbing_with_real_openclip_code():
    torch.manual_seed(0)
    clip = OpenClipEmbedder("ViT-B-32", pretrained=None)  # random weights: plumbing, not quality
    v = text_query_vector(clip, "a red apple on a table")
    assert v.shape == (512,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)
    s = open_store(url=":memory:")
    s.create_collection("clip", {"clip-vit-b-32": 512})
    s.upsert("clip", [1, 2], {"clip-vit-b-32": np.stack([v, -v])}, [{"label": "x"}, {"label": "y"}])
    assert search(s, "clip", v, k=1).hits[0].id == 1
    with pytest.raises(SearchError, match="empty"):
        text_query_vector(clip, "   ")


def test_image_only_model_refuses_text_and_names_clip():
    effnet = models.load(models.choose("effnet-lite0"), "cpu")
    with pytest.raises(SearchError, match="clip-vit-b-32"):
        text_query_vector(effnet, "a shoe")


def _png(size=(40, 30), color=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_bad_uploads_get_clear_messages():
    effnet = models.load(models.choose("effnet-lite0"), "cpu")
    assert image_query_vector(effnet, _png(), 10**6, 10**7).shape == (1280,)
    with pytest.raises(SearchError, match="cannot be used as an image: not an image"):
        image_query_vector(effnet, b"%PDF-1.4 not an image", 10**6, 10**7)
    with pytest.raises(SearchError, match="corrupt or truncated"):
        image_query_vector(effnet, _png()[:60], 10**6, 10**7)
    with pytest.raises(SearchError, match="limit is"):
        image_query_vector(effnet, _png(), 100, 10**7)
    with pytest.raises(SearchError, match="decompression bomb"):
        image_query_vector(effnet, _png((3000, 3000)), 10**7, 1_000_000)


def test_unknown_vectors_and_missing_weights_are_explained(monkeypatch):
    with pytest.raises(SearchError, match="not made by a model this tool knows"):
        model_for("my-own-embedding")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SearchError, match="ATLAS_CLIP_WEIGHTS"):
        model_for("clip-vit-b-32")


def test_cli_search_by_point(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    with open_store(path=str(tmp_path / "q")) as s:
        s.create_collection("c", {"m": 8})
        s.upsert("c", [1, 2, 3], {"m": unit_rows(3, 8)}, [{"label": "a"}, {"label": "b"}, {"label": "a"}])
    run = subprocess.run([sys.executable, "-m", "core", "search", "--collection", "c", "--point", "2", "--k", "2",
                          "--store-path", str(tmp_path / "q"), "--json"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr
    hits = json.loads(run.stdout)["hits"]
    assert sorted(h["id"] for h in hits) == [1, 3]  # the query point itself is left out


def test_point_query_can_leave_the_point_out(filled):
    store, vecs = filled
    for pid in (1, 57, 200):
        with_it = search(store, "c", point_vector(store, "c", pid), k=5)
        res = search(store, "c", point_vector(store, "c", pid), k=5, exclude=[str(pid)])
        assert pid not in [h.id for h in res.hits] and len(res.hits) == 5
        assert [h.id for h in res.hits] == [h.id for h in with_it.hits[1:]] + [res.hits[-1].id]
