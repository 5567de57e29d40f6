"""A real browser against a real `streamlit run`: headless Chromium (Debian's) driven by Playwright."""
import csv
import os
from collections import Counter

import pytest

from core import models
from core.demo import build_demo
from core.ingest import ingest
from core.store import open_store
from tests.conftest import streamlit_app

from scripts.check_pages import CHROMIUM, check, launch


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    assert os.path.exists(CHROMIUM), "Chromium is needed: apt-get install chromium (scripts/test.sh does it)"
    tmp = tmp_path_factory.mktemp("browser")
    demo = build_demo(tmp / "demo", per_class=8)
    with open_store(path=str(tmp / "qdrant")) as store:
        ingest(store, demo.folder, "demo", models.load(models.choose("effnet-lite0")), cache_dir=tmp / "cache")
    with streamlit_app(ATLAS_STORE_PATH=str(tmp / "qdrant"), ATLAS_CACHE_DIR=str(tmp / "cache")) as url:
        yield url, demo, tmp


@pytest.fixture(scope="module")
def page(demo_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 1250})
        yield pg
        browser.close()


def test_collections_page_shows_demo_label_counts(demo_server, page):
    url, demo, _ = demo_server
    with open(demo.ground_truth, newline="") as f:
        expected = Counter(row["given_label"] for row in csv.DictReader(f))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("Samples per label").wait_for(timeout=120_000)
    for label, count in expected.items():
        page.get_by_text(f"{label} — {count} points", exact=True).wait_for(timeout=30_000)
    assert page.get_by_text("Connected: embedded Qdrant").count() == 1
    # thumbnails are real images served by Streamlit, not placeholders
    page.wait_for_function("document.querySelectorAll('img').length >= 20", timeout=30_000)
    # screenshots go to the test's own folder: the README's come from scripts/demo.sh --smoke on the full demo
    shot = demo_server[2] / "collections.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000


def test_every_page_loads_without_an_exception(demo_server, page):
    # the quick start's smoke check (scripts/demo.sh --smoke), here on the test's small demo
    url, _, tmp = demo_server
    assert check(url, draw_map=True, screenshots=tmp / "pages", page=page) == []
    assert len(list((tmp / "pages").glob("*.png"))) == 6


def test_explore_map_draws_every_point_and_lasso_opens_gallery(demo_server, page):
    url, demo, _ = demo_server
    page.goto(f"{url}/explore", wait_until="domcontentloaded")
    page.get_by_role("button", name="Draw map").wait_for(timeout=120_000)
    page.get_by_text("PCA", exact=True).click()
    page.get_by_role("button", name="Draw map").click()
    page.get_by_text(f"Showing {demo.images} of {demo.images} points").wait_for(timeout=120_000)
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('.js-plotly-plot')._fullData !== undefined", timeout=60_000)
    drawn = page.evaluate("document.querySelector('.js-plotly-plot')._fullData"
                          ".filter(t => t.visible !== false).reduce((n, t) => n + t.x.length, 0)")
    assert drawn == demo.images
    # lasso (the map's default drag mode) around the whole plotting area
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x0, y0, x1, y1 = box["x"] + 2, box["y"] + 2, box["x"] + box["width"] - 2, box["y"] + box["height"] - 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in [(x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.get_by_text(f"Selection: {demo.images} points").wait_for(timeout=60_000)
    page.get_by_text("Export selection (CSV)").wait_for(timeout=30_000)
    page.screenshot(path=str(demo_server[2] / "explore.png"))


def _trace_counts(page) -> dict:
    page.wait_for_function("document.querySelector('.js-plotly-plot') && "
                           "document.querySelector('.js-plotly-plot')._fullData !== undefined", timeout=60_000)
    return page.evaluate("Object.fromEntries(document.querySelector('.js-plotly-plot')._fullData"
                         ".map(t => [t.name, t.x.length]))")


def _draw_pca_map(page, url, demo):
    page.goto(f"{url}/explore", wait_until="domcontentloaded")
    page.get_by_role("button", name="Draw map").wait_for(timeout=120_000)
    page.get_by_text("PCA", exact=True).click()
    page.get_by_role("button", name="Draw map").click()
    page.get_by_text(f"Showing {demo.images} of {demo.images} points").wait_for(timeout=120_000)
    return _trace_counts(page)


def test_accepting_a_suggestion_changes_the_label_on_the_map(demo_server, page):
    url, demo, _ = demo_server
    before = _draw_pca_map(page, url, demo)
    page.goto(f"{url}/audit", wait_until="domcontentloaded")
    page.get_by_role("button", name="Run audit").wait_for(timeout=120_000)
    page.get_by_text("Fixed threshold", exact=True).click()  # its slider appears only then
    threshold = page.get_by_role("slider").nth(1)  # k, threshold: 80 images give soft probabilities
    threshold.wait_for(timeout=60_000)
    threshold.focus()
    for _ in range(25):  # 0.05 -> 0.30 in steps of 0.01
        threshold.press("ArrowRight")
    page.get_by_role("button", name="Run audit").click()
    accept = page.get_by_role("button", name="Accept '").first
    accept.wait_for(timeout=180_000)
    new_label = accept.inner_text().split("'")[1]
    accept.click()
    page.get_by_text("Fixed in this session: 1").wait_for(timeout=60_000)
    after = _draw_pca_map(page, url, demo)
    assert after[new_label] == before[new_label] + 1
    assert sum(after.values()) == sum(before.values()) == demo.images


def test_undo_on_the_changes_tab_stays_on_that_tab(demo_server, page):
    # a message appearing above the tabs (here "Undid 1 change.") used to send the user back to the first tab
    url, _, _ = demo_server
    page.goto(f"{url}/audit", wait_until="domcontentloaded")
    page.get_by_role("button", name="Run audit").wait_for(timeout=120_000)
    page.get_by_text("Fixed threshold", exact=True).click()
    threshold = page.get_by_role("slider").nth(1)
    threshold.wait_for(timeout=60_000)
    threshold.focus()
    for _ in range(25):
        threshold.press("ArrowRight")
    page.get_by_role("button", name="Run audit").click()
    accept = page.get_by_role("button", name="Accept '").first
    accept.wait_for(timeout=180_000)
    accept.click()
    page.get_by_text("Fixed in this session: 1").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Changes").click()
    page.get_by_role("button", name="Undo the last step").click()
    page.get_by_text("Undid 1 change").wait_for(timeout=60_000)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
    assert page.get_by_role("tab", selected=True).inner_text().strip() == "Changes"


def test_search_by_uploaded_image_shows_a_gallery(demo_server, page):
    url, demo, _ = demo_server
    query = next(demo.folder.glob("*/*.png"))
    page.goto(f"{url}/search", wait_until="domcontentloaded")
    page.locator("input[type=file]").first.wait_for(state="attached", timeout=120_000)
    page.locator("input[type=file]").first.set_input_files(str(query))
    page.get_by_role("button", name="Search by image").click()
    page.get_by_text("Qdrant query").wait_for(timeout=120_000)
    page.wait_for_function("Array.from(document.querySelectorAll('[data-testid=stImage] img'))"
                           ".filter(i => i.complete && i.naturalWidth > 0).length >= 12", timeout=60_000)
    assert page.get_by_text("1.000", exact=False).count() >= 1  # the uploaded file itself is in the collection
    page.screenshot(path=str(demo_server[2] / "search.png"))


def test_graph_page_draws_the_knn_graph(demo_server, page):
    url, demo, _ = demo_server
    page.goto(f"{url}/graph", wait_until="domcontentloaded")
    page.get_by_role("button", name="Draw graph").click()
    page.get_by_text(f"{demo.images} nodes").wait_for(timeout=120_000)
    counts = _trace_counts(page)
    nodes = sum(v for name, v in counts.items() if "edges" not in name)  # edge layers: "... edges (...)"
    assert nodes == demo.images and counts.get("same-label edges", 0) > 0
    assert any(name.startswith("cross-label edges") for name in counts)  # the demo has planted mislabels
    page.screenshot(path=str(demo_server[2] / "graph.png"))


def test_audit_says_how_far_to_trust_its_flags(demo_server, page):
    url, _, _ = demo_server
    page.goto(f"{url}/audit", wait_until="domcontentloaded")
    page.get_by_role("button", name="Run audit").wait_for(timeout=120_000)
    page.get_by_text("Recall-first", exact=True).click()
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
    page.get_by_role("button", name="Run audit").click()
    page.get_by_text("planted flips").first.wait_for(timeout=180_000)  # the calibrated statement
    page.get_by_text("How this is estimated").click()
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)  # expected precision and recall by threshold
    page.screenshot(path=str(demo_server[2] / "audit-calibrated.png"))
