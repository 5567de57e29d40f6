"""The embedded store counts its writes per collection, so a 1M-point read can be reused until something changes."""
import numpy as np

from core import points
from core.points import load_points
from core.store.edge import EdgeStore


def _store(tmp_path, n=6):
    store = EdgeStore(tmp_path / "q")
    store.create_collection("c", {"m": 4})
    x = np.eye(4, dtype=np.float32)[np.arange(n) % 4]
    store.upsert("c", list(range(1, n + 1)), {"m": x}, [{"label": "a", "sha1": f"h{i}"} for i in range(n)])
    return store


def test_every_kind_of_write_moves_the_generation(tmp_path):
    store = _store(tmp_path)
    seen = [store.write_generation("c")]
    store.set_payload("c", [1], {"label": "b"})
    seen.append(store.write_generation("c"))
    store.upsert("c", [99], {"m": np.ones((1, 4), np.float32)}, [{"label": "a"}])
    seen.append(store.write_generation("c"))
    store.delete("c", [99])
    seen.append(store.write_generation("c"))
    assert seen == sorted(set(seen)), seen  # strictly increasing
    other = store.write_generation("d")
    store.set_payload("c", [2], {"label": "b"})
    assert store.write_generation("d") == other  # another collection is not affected
    store.close()


def test_a_relabel_is_seen_by_the_next_read_although_the_count_is_unchanged(tmp_path):
    points.clear_recent()
    store = _store(tmp_path)
    first = load_points(store, "c", payload_keys=["label"])
    assert [p["label"] for p in first.payloads].count("b") == 0
    again = load_points(store, "c", payload_keys=["label"])
    assert again.fingerprint == first.fingerprint
    store.set_payload("c", [3], {"label": "b"})
    after = load_points(store, "c", payload_keys=["label"])
    assert [p["label"] for p, pid in zip(after.payloads, after.ids) if pid == 3] == ["b"]
    store.close()
