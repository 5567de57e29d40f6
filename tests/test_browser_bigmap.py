"""The WebGL map component in a real browser against a real `streamlit run`: a map above CANVAS_FROM points is
drawn whole by the component, and a lasso selects exactly the points inside it (the exported CSV's ids)."""
import csv
import os
from collections import Counter

import pytest

from bench.map_browser import (COLLECTION, build_store, cache_map, drag_rect, lasso_box, map_frame,
                               map_in_view)
from core.figures import CANVAS_FROM, quantize, rows_in_polygon
from scripts.check_pages import CHROMIUM, launch, wait_idle
from tests.conftest import streamlit_app

N = CANVAS_FROM + 5_000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    assert os.path.exists(CHROMIUM), "Chromium is needed: apt-get install chromium (scripts/test.sh does it)"
    tmp = tmp_path_factory.mktemp("bigmap")
    build_store(tmp / "store", N)
    coords, _, ids = cache_map(tmp / "store", tmp / "cache", N)
    with streamlit_app(ATLAS_STORE_PATH=str(tmp / "store"), ATLAS_CACHE_DIR=str(tmp / "cache")) as url:
        yield url, coords, ids, tmp


def download_selection(page, path) -> None:
    """Press "Export selection (CSV)" once the page is idle; a click that lands while a rerun replaces the button
    is lost, so the user presses it once more."""
    for attempt in range(2):
        wait_idle(page, 60)
        try:
            with page.expect_download(timeout=45_000) as dl:
                page.get_by_role("button", name="Export selection (CSV)").click()
            dl.value.save_as(path)
            return
        except Exception:
            if attempt:
                raise


def test_lasso_selects_exactly_the_points_inside(big_server):
    from playwright.sync_api import sync_playwright

    url, coords, ids, tmp = big_server
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1200}, accept_downloads=True)
        page.goto(f"{url}/explore?collection={COLLECTION}&method=PCA&color=label&map=1")
        frame = map_frame(page, 180)
        frame.wait_for_function("document.body.dataset.drawn", timeout=180_000)
        assert frame.evaluate("window.atlasMap.state.n") == N
        assert frame.evaluate("window.atlasMap.state.visible") == N  # every point in view and drawn
        assert page.locator(".js-plotly-plot").count() == 0

        # resting the pointer on a point shows that point's file (and image) beside the map, looked up on demand
        origin = map_in_view(page)
        x, y = frame.evaluate("(() => { const S = window.atlasMap.state; "
                              "return window.atlasMap.toScreen(S.xy[0] / 65535, S.xy[1] / 65535); })()")
        page.mouse.move(origin["x"] + x + 25, origin["y"] + y + 25)
        page.mouse.move(origin["x"] + x, origin["y"] + y)
        page.get_by_text(f"img{int(ids[0]) - 1:07d}.png").wait_for(timeout=30_000)  # build_store's file names

        # a lasso around a quarter of the points (several clusters), as a user drags it
        q = quantize(coords)
        box, _ = lasso_box(coords, N // 4)
        origin = map_in_view(page)
        corners = [tuple(frame.evaluate("([x, y]) => window.atlasMap.toScreen(x, y)", c)) for c in box]
        drag_rect(page, [(origin["x"] + x, origin["y"] + y) for x, y in corners])
        # the points inside the polygon the mouse drew (its corners back in map units, as the component sends them)
        polygon = [frame.evaluate("([x, y]) => window.atlasMap.toData(x, y)", [x, y]) for x, y in corners]
        expected = {str(ids[r]) for r in rows_in_polygon(q, polygon)}
        assert N // 5 < len(expected) < N // 3
        page.get_by_text(f"Selection: {len(expected):,} points").wait_for(timeout=60_000)

        path = tmp / "selection.csv"
        download_selection(page, path)
        with open(path, newline="") as f:
            first = list(csv.DictReader(f))
        assert {row["id"] for row in first} == expected

        # hiding a label in the legend leaves its points out of the next selection
        name = Counter(row["label"] for row in first).most_common(1)[0][0]
        frame.locator("#legend div").get_by_text(name, exact=True).click()
        origin = map_in_view(page)  # the download scrolled the page
        drag_rect(page, [(origin["x"] + x, origin["y"] + y) for x, y in corners])
        page.wait_for_function(
            f"[...document.querySelectorAll('h3')].some(h => h.textContent.startsWith('Selection:') "
            f"&& h.textContent !== 'Selection: {len(expected):,} points')", timeout=60_000)
        download_selection(page, path)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and {r["id"] for r in rows} == {r["id"] for r in first if r["label"] != name}
        browser.close()


def test_many_points_draw_as_density_and_a_lasso_still_selects_the_points_inside():
    # outside Streamlit (bench/map_compare.py): 200k points in view are rasterised as a density image
    from bench.map_compare import compare

    out = compare(200_000, kinds=("canvas",))
    assert out["canvas_drawn_as"] == "density"
    # the lasso is dragged around a data rectangle: mouse pixels move its edges by a fraction of a pixel
    assert abs(out["canvas_lasso_points"] - out["points_in_box"]) <= 0.005 * out["points_in_box"]
    assert out["canvas_lasso_sent_bytes"] < 2_000  # a polygon goes back, not the points
