"""Store congruence: every engine behaves the same through the adapter."""
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

from core.store import CollectionNotFound, StoreError, open_store
from tests.conftest import ROOT, unit_rows


def _fill(store, name="c", n=30, d=8, vname="m"):
    store.create_collection(name, {vname: d})
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"p{i}")) for i in range(n)]
    vecs = unit_rows(n, d)
    payloads = [{"label": ["a", "b", "c"][i % 3], "i": i} for i in range(n)]
    store.upsert(name, ids, {vname: vecs}, payloads)
    return ids, vecs, payloads


def test_create_list_and_info(store):
    _fill(store, "fruits", n=12, d=8, vname="clip-vit-b-32")
    infos = {c.name: c for c in store.list_collections()}
    assert set(infos) == {"fruits"}
    info = infos["fruits"]
    assert info.points == 12
    assert [(v.name, v.size) for v in info.vectors] == [("clip-vit-b-32", 8)]
    assert store.collection_exists("fruits") and not store.collection_exists("nope")


def test_create_twice_refuses(store):
    store.create_collection("c", {"m": 4})
    with pytest.raises(StoreError, match="already exists"):
        store.create_collection("c", {"m": 4})


def test_scroll_returns_everything_in_id_order_of_vectors(store):
    ids, vecs, payloads = _fill(store, n=1234)
    pts = store.scroll("c", page_size=100)
    assert len(pts) == 1234 and pts.vectors.shape == (1234, 8) and pts.vectors.dtype == np.float32
    by_id = dict(zip(ids, range(len(ids))))
    for pid, row, payload in zip(pts.ids, pts.vectors, pts.payloads):
        j = by_id[pid]
        np.testing.assert_allclose(row, vecs[j], atol=1e-5)
        assert payload == payloads[j]


def test_scroll_with_filter_and_payload_keys(store):
    _fill(store, n=30)
    pts = store.scroll("c", with_vectors=False, filter={"label": "a"}, payload_keys=["label"])
    assert len(pts) == 10 and pts.vectors is None
    assert all(p == {"label": "a"} for p in pts.payloads)


def test_query_self_first_and_filter(store):
    ids, vecs, _ = _fill(store, n=60)
    hits = store.query("c", vecs[7], k=5)
    assert hits[0].id == ids[7] and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
    filtered = store.query("c", vecs[7], k=50, filter={"label": ["a", "c"]})  # point 7 has label "b"
    assert len(filtered) == 40 and all(h.payload["label"] in ("a", "c") for h in filtered)
    assert ids[7] not in [h.id for h in filtered]
    assert store.query("c", vecs[7], k=5, filter={"label": "zzz"}) == []


def test_query_exact_threshold_and_ef(store):
    ids, vecs, _ = _fill(store, n=60)
    exact = store.query("c", vecs[3], k=10, exact=True)
    approx = store.query("c", vecs[3], k=10, hnsw_ef=128)
    assert [h.id for h in exact] == [h.id for h in approx]
    assert all(h.score >= 0.2 for h in store.query("c", vecs[3], k=60, score_threshold=0.2))


def test_set_payload_count_by_and_delete(store):
    ids, _, _ = _fill(store, n=30)
    assert store.count_by("c", "label") == {"a": 10, "b": 10, "c": 10}
    store.set_payload("c", ids[:2], {"label": "z", "reviewed": True})
    got = store.retrieve("c", ids[:2])
    assert all(p["label"] == "z" and p["reviewed"] and "i" in p for p in got.payloads)  # other keys kept
    assert store.count("c", filter={"label": "z"}) == 2
    store.delete("c", ids[:5])
    assert store.count("c") == 25
    assert store.retrieve("c", ids[:6]).ids == [ids[5]]  # missing ids are left out


def test_retrieve_keeps_requested_order_with_vectors(store):
    ids, vecs, _ = _fill(store, n=20)
    order = [ids[5], ids[1], ids[9]]
    got = store.retrieve("c", order, with_vectors=True)
    assert got.ids == order
    np.testing.assert_allclose(got.vectors, vecs[[5, 1, 9]], atol=1e-5)


def test_unnamed_vector_collection(store):
    store.create_collection("plain", {"": 4})
    vecs = unit_rows(5, 4)
    store.upsert("plain", [1, 2, 3, 4, 5], {"": vecs}, [{"x": i} for i in range(5)])
    info = store.collection_info("plain")
    assert [(v.name, v.size) for v in info.vectors] == [("", 4)]
    pts = store.scroll("plain")
    assert sorted(pts.ids) == [1, 2, 3, 4, 5] and pts.vectors.shape == (5, 4)
    assert store.query("plain", vecs[2], k=1)[0].id == 3


def test_several_named_vectors(store):
    store.create_collection("multi", {"a": 4, "b": 6})
    store.upsert("multi", [1, 2], {"a": unit_rows(2, 4), "b": unit_rows(2, 6, seed=1)}, [{}, {}])
    assert store.scroll("multi", vector="b").vectors.shape == (2, 6)
    assert store.scroll("multi", vector="a").vectors.shape == (2, 4)
    with pytest.raises(StoreError, match="no vector named 'zz'"):
        store.scroll("multi", vector="zz")


def test_missing_collection_is_named(store):
    with pytest.raises(CollectionNotFound, match="nope"):
        store.collection_info("nope")


def test_wrong_dimension_is_refused_and_nothing_written(store):
    store.create_collection("c", {"m": 4})
    with pytest.raises(Exception):
        store.upsert("c", [1], {"m": unit_rows(1, 3)}, [{}])
    assert store.count("c") == 0


def test_threads_share_one_store(store):
    store.create_collection("c", {"m": 8})
    errors = []

    def work(t):
        try:
            for b in range(5):
                ids = [t * 1000 + b * 10 + i for i in range(10)]
                store.upsert("c", ids, {"m": unit_rows(10, 8, seed=t * 100 + b)}, [{"t": t}] * 10)
                store.query("c", unit_rows(1, 8)[0], k=3)
                store.count("c")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert store.count("c") == 200


def test_embedded_reopen_keeps_data(tmp_path):
    s = open_store(path=str(tmp_path))
    _fill(s, n=40)
    s.close()
    s2 = open_store(path=str(tmp_path))
    assert s2.count("c") == 40 and s2.collection_info("c").vectors[0].size == 8
    s2.close()


def test_second_process_gets_clear_message(tmp_path):
    s = open_store(path=str(tmp_path))
    code = ("import sys; sys.path.insert(0, sys.argv[1]);\n"
            "from core.store import open_store, StoreLocked\n"
            "try:\n    open_store(path=sys.argv[2])\nexcept StoreLocked as e:\n    print(e); sys.exit(3)\n")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), str(tmp_path)], capture_output=True, text=True)
    s.close()
    assert out.returncode == 3, out.stderr
    assert str(tmp_path.resolve()) in out.stdout and "QDRANT_URL" in out.stdout


def test_unreachable_server_names_url():
    with pytest.raises(StoreError, match="127.0.0.1:9"):
        open_store(url="http://127.0.0.1:9")


def test_bad_collection_name_is_explained(tmp_path):
    s = open_store(path=str(tmp_path))
    with pytest.raises(StoreError, match="Invalid collection name"):
        s.create_collection("../etc", {"m": 4})
    s.close()


def test_scroll_limit(store):
    _fill(store, n=50)
    assert len(store.scroll("c", limit=7, page_size=3)) == 7
    assert len(store.scroll("c", limit=7, filter={"label": "a"}, with_vectors=False)) == 7


def test_scroll_sees_every_write(store, tmp_path):
    """Vectors read back after upserts, overwrites and deletes are the current ones (no stale copy)."""
    ids, vecs, _ = _fill(store, n=40)
    first = store.scroll("c")
    assert len(first) == 40
    new = unit_rows(3, 8, seed=9)
    store.upsert("c", [ids[0], ids[1], "00000000-0000-0000-0000-000000000001"], {"m": new}, [{"label": "z"}] * 3)
    store.delete("c", [ids[2]])
    after = store.scroll("c")
    got = dict(zip(after.ids, after.vectors))
    assert len(after) == 40 and ids[2] not in got
    np.testing.assert_allclose(got[ids[0]], new[0], atol=1e-5)
    np.testing.assert_allclose(got["00000000-0000-0000-0000-000000000001"], new[2], atol=1e-5)
    np.testing.assert_allclose(got[ids[5]], vecs[5], atol=1e-5)
    filtered = store.scroll("c", filter={"label": "z"})
    assert sorted(filtered.ids) == sorted([ids[0], ids[1], "00000000-0000-0000-0000-000000000001"])


def test_embedded_vectors_survive_reopen_and_mixed_ids(tmp_path):
    s = open_store(path=str(tmp_path))
    s.create_collection("c", {"m": 4})
    vecs = unit_rows(4, 4)
    s.upsert("c", [7, "6f1c9a52-8a5e-4d4b-9a53-5d0c2f0e7a11", 9, 10], {"m": vecs}, [{}] * 4)
    s.optimize("c")
    s.close()
    s = open_store(path=str(tmp_path))
    pts = s.scroll("c")
    got = dict(zip(pts.ids, pts.vectors))
    assert set(got) == {7, "6f1c9a52-8a5e-4d4b-9a53-5d0c2f0e7a11", 9, 10}
    np.testing.assert_allclose(got[9], vecs[2], atol=1e-5)
    s.close()


def test_recommend_moves_towards_positives_and_away_from_negatives(store):
    store.create_collection("r", {"m": 4})
    vecs = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [0, 0.9, 0.1, 0], [0, 0, 1, 0]], np.float32)
    store.upsert("r", [1, 2, 3, 4, 5], {"m": vecs}, [{"label": "x"}] * 5)
    hits = store.recommend("r", [vecs[0]], [vecs[2]], k=2)
    assert [h.id for h in hits] == [1, 2]
    toward_b = store.recommend("r", [vecs[2]], k=2)
    assert [h.id for h in toward_b] == [3, 4]


def test_an_empty_folder_name_is_refused_not_taken_as_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for blank in ("", "  "):
        with pytest.raises(StoreError, match="No embedded Qdrant folder given"):
            open_store(path=blank)
    assert list(tmp_path.iterdir()) == []  # no lock file, no collection folder


def test_filters_on_true_false_fields_match_on_both_engines(tmp_path):
    rows = unit_rows(6, 4)
    for store in (open_store(path=str(tmp_path / "edge")), open_store(url=":memory:")):
        with store:
            store.create_collection("c", {"v": 4})
            store.upsert("c", [1, 2, 3, 4, 5, 6], {"v": rows},
                         [{"reviewed": True, "label": "a"}, {"reviewed": False, "label": "a"},
                          {"reviewed": True, "label": "b"}, {"reviewed": 1, "label": "a"}, {"label": "a"},
                          {"reviewed": "true", "label": "a"}])
            # a stored 1 or "true" is not the boolean true
            assert store.count("c", {"reviewed": True}) == 2, store.engine
            assert store.count("c", {"reviewed": False}) == 1
            assert store.count("c", {"reviewed": [True, False]}) == 3
            assert sorted(store.scroll("c", with_vectors=False, filter={"reviewed": True, "label": "a"}).ids) == [1]
            hits = store.query("c", rows[2], k=6, filter={"reviewed": True})
            assert sorted(h.id for h in hits) == [1, 3]
