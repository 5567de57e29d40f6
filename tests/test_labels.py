"""Label changes on the real engines: no no-op writes, no blank labels, undo restores exactly or refuses, and a
bulk action is one undo step."""
import numpy as np
import pytest

from core.labels import LabelError, confirm, delete_points, new_batch, relabel, relabel_each, undo
from tests.conftest import unit_rows

LABELS = ["bag", "bag", "shoe", "shoe", "coat"]


@pytest.fixture
def pts(store):
    """Five points with ids 1..5; point 5 is flagged as not reviewed, as an ingest may leave it."""
    store.create_collection("c", {"m": 8})
    ids = [1, 2, 3, 4, 5]
    payloads = [{"label": lab, "file_name": f"img{i}.png"} for i, lab in zip(ids, LABELS)]
    payloads[4]["reviewed"] = False
    store.upsert("c", ids, {"m": unit_rows(5, 8)}, payloads)
    return store, ids


def payload(store, pid):
    return store.retrieve("c", [pid]).payloads[0]


def state(store, pid):
    """What undo must put back: the label and the review marks (history and label_original are the record)."""
    p = payload(store, pid)
    return p.get("label"), bool(p.get("reviewed")), p.get("label_confirmed")


def test_relabel_to_the_same_label_writes_nothing(pts):
    store, ids = pts
    assert relabel(store, "c", [ids[0]], "bag", by="ann") == []
    assert "label_history" not in payload(store, ids[0]) and "reviewed" not in payload(store, ids[0])
    changes = relabel(store, "c", ids[:3], "bag", by="ann")  # only the shoe changes
    assert [c.id for c in changes] == [ids[2]]
    assert [len(payload(store, i).get("label_history") or []) for i in ids[:3]] == [0, 0, 1]
    assert relabel_each(store, "c", {ids[0]: "bag", ids[3]: "shoe"}, by="ann") == []


def test_confirming_twice_writes_once(pts):
    store, ids = pts
    assert len(confirm(store, "c", [ids[0]], by="ann")) == 1
    assert confirm(store, "c", [ids[0]], by="bob") == []
    assert [h["by"] for h in payload(store, ids[0])["label_history"]] == ["ann"]


@pytest.mark.parametrize("blank", ["", " ", "\t\n", None, float("nan"), ["bag"]])
def test_blank_or_odd_labels_are_refused_and_nothing_is_written(pts, blank):
    store, ids = pts
    before = [payload(store, i) for i in ids]
    with pytest.raises(LabelError, match="label"):
        relabel(store, "c", ids, blank, by="ann")
    with pytest.raises(LabelError):
        relabel_each(store, "c", {ids[0]: "shoe", ids[1]: blank}, by="ann")  # all or nothing
    assert [payload(store, i) for i in ids] == before


def test_undo_of_an_older_change_refuses_while_a_later_one_stands(pts):
    store, ids = pts
    first = relabel(store, "c", [ids[0]], "shoe", by="ann")
    second = relabel(store, "c", [ids[0]], "coat", by="bob")
    history = payload(store, ids[0])["label_history"]
    with pytest.raises(LabelError, match=r"img1\.png.*changed again.*'coat' by bob.*undo that change first"):
        undo(store, first, by="ann")
    assert payload(store, ids[0])["label"] == "coat" and payload(store, ids[0])["label_history"] == history
    undo(store, second, by="bob")
    assert payload(store, ids[0])["label"] == "shoe"
    undo(store, first, by="ann")  # now the later change is undone, the older one can be
    assert state(store, ids[0]) == ("bag", False, None)
    assert payload(store, ids[0])["label_original"] == "bag"
    with pytest.raises(LabelError, match="already undone"):
        undo(store, first, by="ann")
    assert payload(store, ids[0])["label"] == "bag"
    # replaying the history gives the current label
    label = "bag"
    for h in payload(store, ids[0])["label_history"]:
        assert h["old"] == label
        label = h["new"]
    assert label == "bag"


def test_undo_restores_the_review_marks_exactly(pts):
    store, ids = pts
    before = state(store, ids[4])
    changes = confirm(store, "c", [ids[4]], by="ann")
    assert state(store, ids[4]) == ("coat", True, "coat")
    undo(store, changes, by="ann")
    assert state(store, ids[4]) == before == ("coat", False, None)
    confirm(store, "c", [ids[2]], by="ann")
    change = relabel(store, "c", [ids[2]], "coat", by="ann")
    undo(store, change, by="ann")  # back to shoe, still confirmed as shoe
    assert state(store, ids[2]) == ("shoe", True, "shoe")


def test_undo_refuses_a_label_changed_outside_the_history(pts):
    store, ids = pts
    change = relabel(store, "c", [ids[1]], "shoe", by="ann")
    store.set_payload("c", [ids[1]], {"label": "hat"})  # e.g. another tool
    with pytest.raises(LabelError, match="now has the label 'hat'"):
        undo(store, change, by="ann")
    assert payload(store, ids[1])["label"] == "hat"


def test_a_bulk_action_is_one_undo_step_and_undoes_all_or_nothing(pts):
    store, ids = pts
    batch = relabel_each(store, "c", {ids[0]: "shoe", ids[2]: "coat", ids[4]: "bag"}, by="ann")
    assert len(batch) == 3 and len({c.batch for c in batch}) == 1 and batch[0].batch
    other = relabel(store, "c", [ids[1]], "coat", by="ann")
    assert other[0].batch != batch[0].batch
    later = relabel(store, "c", [ids[4]], "hat", by="bob")
    with pytest.raises(LabelError, match="img5.png"):
        undo(store, batch, by="ann")
    assert [payload(store, i)["label"] for i in ids] == ["shoe", "coat", "coat", "shoe", "hat"]  # none undone
    undo(store, later, by="bob")
    assert undo(store, batch, by="ann") == 3
    assert [payload(store, i)["label"] for i in ids] == ["bag", "coat", "shoe", "shoe", "coat"]
    # calls sharing a batch id are one step too
    step = new_batch()
    a = relabel(store, "c", [ids[0]], "coat", by="ann", batch=step)
    b = confirm(store, "c", [ids[3]], by="ann", batch=step)
    assert {c.batch for c in a + b} == {step}


def test_undo_of_a_deletion_refuses_to_overwrite_a_point_that_came_back(pts):
    store, ids = pts
    gone = delete_points(store, "c", [ids[0]], by="ann")
    assert gone[0].file_name == "img1.png"
    store.upsert("c", [ids[0]], {"m": unit_rows(1, 8, seed=3)}, [{"label": "new", "file_name": "img1.png"}])
    with pytest.raises(LabelError, match="exists again"):
        undo(store, gone, by="ann")
    assert payload(store, ids[0])["label"] == "new"


def test_undo_of_a_change_to_a_point_deleted_since_refuses(pts):
    store, ids = pts
    change = relabel(store, "c", [ids[0]], "coat", by="ann")
    gone = delete_points(store, "c", [ids[0]], by="ann")
    with pytest.raises(LabelError, match="no longer exists"):
        undo(store, change, by="ann")
    assert store.retrieve("c", [ids[0]]).ids == []
    undo(store, change + gone, by="ann")  # both together: back, then relabel undone
    back = store.retrieve("c", [ids[0]], with_vectors=True)
    assert back.payloads[0]["label"] == "bag" and np.allclose(back.vectors[0], unit_rows(5, 8)[0], atol=1e-5)


def test_change_rows_name_the_file_and_keep_the_id(pts):
    store, ids = pts
    [change] = relabel(store, "c", [ids[0]], "coat", by="ann")
    row = change.as_row()
    assert row["file_name"] == "img1.png" and row["id"] == ids[0] and row["batch"] == change.batch


def test_a_number_label_given_as_text_is_no_change(store):
    store.create_collection("n", {"m": 8})
    store.upsert("n", [1, 2], {"m": unit_rows(2, 8)}, [{"label": 3}, {"label": 4}])
    assert [c.id for c in relabel(store, "n", [1, 2], "3", by="ann")] == [2]  # the UI and audit show 3 as "3"
    assert store.retrieve("n", [1]).payloads[0] == {"label": 3}
