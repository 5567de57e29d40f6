"""The large map's server side: compact arrays for the browser, selections resolved on the drawn coordinates,
and the background map job (progress, Stop)."""
import threading
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.colors import OTHER, label_colors
from core.figures import QUANT, map_arrays, quantize, rows_in_polygon, selected_rows
from ui import map_jobs


def brute_inside(xy: np.ndarray, polygon) -> set[int]:
    """Even-odd ray casting, one point at a time (the reference)."""
    poly = [(x * QUANT, y * QUANT) for x, y in polygon]
    found = set()
    for i, (px, py) in enumerate(xy.astype(float)):
        inside = False
        for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
            if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
        if inside:
            found.add(i)
    return found


def test_quantize_keeps_the_aspect_and_fills_the_longer_axis():
    coords = np.array([[0.0, 0.0], [10.0, 2.0], [5.0, 1.0]])
    q = quantize(coords).astype(int)
    assert q[:, 0].min() == 0 and q[:, 0].max() == QUANT  # x is the longer side: it spans the whole range
    # y spans a fifth of it, centred
    assert abs((q[1, 1] - q[0, 1]) - QUANT / 5) <= 1 and abs((q[0, 1] + q[1, 1]) / 2 - QUANT / 2) <= 1
    same = quantize(np.zeros((3, 2))).astype(int)  # one place: the centre, not a division by zero
    assert (same == same[0]).all() and abs(same[0] - QUANT / 2).max() <= 1
    assert quantize(np.zeros((0, 2))).shape == (0, 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=12))
def test_rows_in_polygon_matches_point_by_point_ray_casting(seed, polygon):
    xy = np.random.default_rng(seed).integers(0, QUANT + 1, size=(300, 2)).astype(np.uint16)
    assert set(rows_in_polygon(xy, polygon).tolist()) == brute_inside(xy, polygon)


def test_a_lasso_selects_the_rows_inside_and_leaves_hidden_groups_out():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 1, size=(5_000, 2))
    coords[[0, -1]] = [[0, 0], [1, 1]]  # the map spans the unit square exactly
    labels = rng.choice(["cat", "dog", "fox"], size=len(coords))
    arrays = map_arrays(coords, labels.tolist())
    assert arrays.xy.dtype == np.uint16 and arrays.codes.dtype == np.uint8 and arrays.nbytes() == 5 * len(coords)
    assert [arrays.names[c] for c in arrays.codes[:20]] == labels[:20].tolist()
    box = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.5], [0.2, 0.5]]
    inside = {i for i, (x, y) in enumerate(coords) if 0.2 < x < 0.6 and 0.2 < y < 0.5}
    rows = selected_rows(arrays, {"kind": "lasso", "polygon": box, "hidden": []})
    # quantisation moves a point by at most half a unit in 65535: only points that close to the edge may differ
    near_edge = {i for i, (x, y) in enumerate(coords)
                 if min(abs(x - 0.2), abs(x - 0.6), abs(y - 0.2), abs(y - 0.5)) < 1e-4}
    assert set(rows) - near_edge == inside - near_edge and len(rows) > 500
    dog = arrays.names.index("dog")
    without = selected_rows(arrays, {"kind": "box", "polygon": box, "hidden": [dog]})
    assert set(without) == {r for r in rows if labels[r] != "dog"}
    assert selected_rows(arrays, {"kind": "point", "row": 17}) == [17]
    assert selected_rows(arrays, {"kind": "point", "row": 10**9}) == []
    assert selected_rows(arrays, None) == [] and selected_rows(arrays, {"kind": "lasso", "polygon": box[:2]}) == []


def test_groups_beyond_the_palette_share_one_code_and_legend_order_is_the_colours_order():
    values = [f"l{i:02d}" for i in range(30)] * 3 + [None, None]
    colors = label_colors(values)
    arrays = map_arrays(np.random.default_rng(1).normal(size=(len(values), 2)), values, colors, marks=[3, 5])
    assert arrays.names == colors.order(arrays.names) and OTHER in arrays.names and "(none)" in arrays.names
    assert arrays.colors == [colors.color(n) for n in arrays.names]
    assert arrays.names[arrays.codes[-1]] == "(none)" and arrays.marks.tolist() == [3, 5]
    assert len(set(arrays.codes.tolist())) == len(arrays.names) <= 256


def test_a_map_job_reports_progress_and_stops_when_asked(monkeypatch):
    release = threading.Event()
    seen = []

    def slow_map(progress=None, **_):
        for step in range(1000):
            progress(f"step {step}", step / 1000)
            seen.append(step)
            release.wait(0.01)
        return "done"

    monkeypatch.setattr(map_jobs, "compute_map", slow_map)
    jobs = map_jobs.MapJobs()
    job = jobs.get_or_start("k", {})
    deadline = time.time() + 5
    while job.progress[1] == 0 and time.time() < deadline:
        time.sleep(0.01)
    assert job.progress[0].startswith("step") and not job.done()
    assert jobs.get_or_start("k", {}) is job  # a second session joins the running job
    job.cancel()
    assert job.wait(5) and isinstance(job.error, map_jobs.MapCancelled) and job.result is None
    assert len(seen) < 1000
    assert jobs.get_or_start("k", {}, restart=False) is job  # a session that joined hears it was stopped
    assert jobs.get_or_start("k", {}) is not job  # a new Draw map starts it again


def test_a_map_job_hands_its_stop_signal_to_compute_map(monkeypatch):
    got = {}

    def compute_map(progress=None, cancel=None, **_):
        got["cancel"] = cancel
        return "map"

    monkeypatch.setattr(map_jobs, "compute_map", compute_map)
    job = map_jobs.MapJob("k", {})
    assert job.wait(5) and job.result == "map" and not got["cancel"].is_set()
    job.cancel()
    assert got["cancel"].is_set()
