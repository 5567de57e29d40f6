"""The embedded store's numpy copy of each vector column: kept up to date by writes, saved on close, never stale."""
import numpy as np

from core.store import open_store
from tests.conftest import unit_rows


def _spy_engine_reads(store, monkeypatch) -> list:
    """Record every vector read that goes through the engine's binding (the slow path the copy replaces)."""
    calls = []
    real = store._scroll_engine

    def spy(name, using, *a, **kw):
        if using is not None:
            calls.append(name)
        return real(name, using, *a, **kw)
    monkeypatch.setattr(store, "_scroll_engine", spy)
    return calls


def test_a_new_process_reads_vectors_from_the_saved_copy_not_the_engine(tmp_path, monkeypatch):
    x = unit_rows(300, 8, seed=1)
    ids = list(range(300))
    with open_store(path=str(tmp_path)) as store:
        store.create_collection("c", {"m": 8, "aux": 3})
        for i in range(0, 300, 100):  # pages, as an ingest writes
            store.upsert("c", ids[i:i + 100], {"m": x[i:i + 100], "aux": x[i:i + 100, :3]}, [{}] * 100)
        assert not list((tmp_path / "c").glob("atlas-vectors-*.npz"))  # nothing on disk while unsaved
    assert len(list((tmp_path / "c").glob("atlas-vectors-*.npz"))) == 2  # saved on close, one per vector
    with open_store(path=str(tmp_path)) as store:
        engine_reads = _spy_engine_reads(store, monkeypatch)
        pts = store.scroll("c", vector="m", payload_keys=[])
        np.testing.assert_allclose(pts.vectors[np.argsort(pts.ids)], x, atol=1e-6)
        np.testing.assert_allclose(store.vector_matrix("c", [5, 2], "aux"), x[[5, 2], :3], atol=1e-6)
        assert engine_reads == []


def test_writes_keep_the_copy_equal_to_the_engine(tmp_path, monkeypatch):
    x = unit_rows(40, 8, seed=2)
    with open_store(path=str(tmp_path)) as store:
        store.create_collection("c", {"m": 8, "n": 8})
        store.upsert("c", list(range(30)), {"m": x[:30], "n": x[:30]}, [{}] * 30)
        store.scroll("c", vector="m")  # copies in memory
        engine_reads = _spy_engine_reads(store, monkeypatch)
        store.upsert("c", [3, 30, 31, 3], {"m": x[[10, 30, 31, 33]]}, [{}] * 4)  # 3 twice: the last wins
        assert engine_reads == []
        np.testing.assert_allclose(store.vector_matrix("c", [3, 30, 31, 0], "m"), x[[33, 30, 31, 0]], atol=1e-6)
        # point 3 was replaced without vector "n": it has left that vector's space, as in the engine
        assert 3 not in store.scroll("c", vector="n", payload_keys=[]).ids
        assert 3 not in store.scroll("c", vector="n", payload_keys=["x"]).ids
    with open_store(path=str(tmp_path)) as store:  # what was saved is what the engine holds
        saved = store.scroll("c", vector="m", payload_keys=[])
        store._drop_vector_copies("c")
        engine = store.scroll("c", vector="m", payload_keys=[])
        assert sorted(saved.ids) == sorted(engine.ids) == list(range(32))
        order_s, order_e = np.argsort(saved.ids), np.argsort(engine.ids)
        np.testing.assert_allclose(saved.vectors[order_s], engine.vectors[order_e], atol=1e-6)


def test_a_matrix_handed_out_does_not_change_under_a_later_write(tmp_path):
    x = unit_rows(10, 4, seed=3)
    with open_store(path=str(tmp_path)) as store:
        store.create_collection("c", {"m": 4})
        store.upsert("c", list(range(10)), {"m": x}, [{}] * 10)
        before = store.scroll("c", vector="m", payload_keys=[]).vectors
        store.upsert("c", [0], {"m": x[[9]]}, [{}])
        np.testing.assert_allclose(before[0], x[0])
