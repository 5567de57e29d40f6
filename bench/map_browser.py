"""Issue 15 in the browser: a million points on the Explore page, in headless Chromium against the real app.

Builds (or reuses, --store) a synthetic 512-d clustered collection in the embedded Edge store, puts its map into
the app's cache (PCA through compute_map: the layout's quality is not what this measures), starts the app, then
measures: the cached map's reopen until drawn (first open of a fresh app process, then a second open), a zoom
redraw, a lasso over about a tenth of the points until the selection's count and first gallery image show, and
the bytes the browser received for each.

    .venv/bin/python bench/map_browser.py                 # 1,000,000 points -> bench/results/map_browser.json
    .venv/bin/python bench/map_browser.py --quick         # 50,000 points, < 2 min -> map_browser-quick.json
    .venv/bin/python bench/map_browser.py --compare       # step 1: Plotly Scattergl vs the WebGL component
    --store DIR reuses (or builds once into) a store folder; --points N another size.

Goals (issue 15): reopen drawn <= 5 s, zoom redraw <= 0.5 s, lasso -> count and first images <= 3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.app_server import start_app as serve  # noqa: E402
from bench.machine import machine_info  # noqa: E402

COLLECTION, VECTOR, DIM = "million", "synthetic", 512
GOALS = {"reopen_drawn_s": 5.0, "zoom_redraw_s": 0.5, "lasso_to_images_s": 3.0}
TIMEOUT_MS = 600_000
PCA_REQUEST = {"n_neighbors": 15, "min_dist": 0.1, "perplexity": 30.0}  # what the Explore page passes


def clustered_chunks(n: int, batch: int, seed: int = 0, clusters: int = 10, intrinsic: int = 32,
                     spread: float = 0.35, noise: float = 0.02):
    """bench.synthetic.clustered_vectors' distribution in batches (one set of centres; 2 GB never held at once):
    yields (first row, unit float32 vectors, cluster per row)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, DIM)).astype(np.float32)
    basis = np.linalg.qr(rng.normal(size=(DIM, intrinsic)))[0].astype(np.float32).T
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        labels = rng.integers(0, clusters, size=m)
        local = rng.normal(size=(m, intrinsic)).astype(np.float32) * spread * np.sqrt(DIM / intrinsic)
        x = centers[labels] + local @ basis + rng.normal(size=(m, DIM)).astype(np.float32) * noise * np.sqrt(DIM)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield lo, x.astype(np.float32), labels


def build_store(path: Path, n: int, seed: int = 0) -> float:
    """The synthetic collection (n points, 10 labelled clusters) in a new embedded store; returns seconds."""
    from core.store import open_store

    started = time.perf_counter()
    batch = 50_000
    with open_store(path=str(path)) as store:
        store.create_collection(COLLECTION, {VECTOR: DIM})
        for lo, x, clusters in clustered_chunks(n, batch, seed):
            hi = lo + len(x)
            payloads = [{"label": f"cluster-{int(c)}", "file_name": f"img{lo + i:07d}.png"}
                        for i, c in enumerate(clusters)]
            store.upsert(COLLECTION, list(range(lo + 1, hi + 1)), {VECTOR: x}, payloads)
    return time.perf_counter() - started


def cache_map(store_path: Path, cache_dir: Path, n: int) -> tuple[np.ndarray, float, list]:
    """The map as the page will ask for it (PCA of every point), computed into the app's cache;
    (coords, seconds, point ids in the map's row order)."""
    from core.cache import ArrayCache
    from core.maps import compute_map
    from core.projection import params_from
    from core.store import open_store

    with open_store(path=str(store_path)) as store:
        result = compute_map(store, COLLECTION, params_from("pca", **PCA_REQUEST), vector=VECTOR, max_points=n,
                             cache=ArrayCache(cache_dir / "results"))
    return result.coords, result.seconds, list(result.points.ids)


def lasso_box(coords: np.ndarray, target: int) -> tuple[list[list[float]], int]:
    """A rectangle in the map's [0, 1] units around the densest region holding about `target` points."""
    from core.figures import QUANT, quantize, rows_in_polygon

    q = quantize(coords)
    hist, xe, ye = np.histogram2d(q[:, 0], q[:, 1], bins=32, range=[[0, QUANT], [0, QUANT]])
    i, j = np.unravel_index(np.argmax(hist), hist.shape)
    cx, cy = (xe[i] + xe[i + 1]) / 2 / QUANT, (ye[j] + ye[j + 1]) / 2 / QUANT
    lo, hi = 0.0, 0.5
    for _ in range(18):  # the half-width whose box holds `target` points
        h = (lo + hi) / 2
        box = [[cx - h, cy + h], [cx + h, cy + h], [cx + h, cy - h], [cx - h, cy - h]]
        count = len(rows_in_polygon(q, box))
        lo, hi = (h, hi) if count < target else (lo, h)
    return box, count


def start_app(store: Path, cache: Path, max_points: int) -> tuple[subprocess.Popen, str]:
    return serve(store, cache, {"ATLAS_MAP_MAX_POINTS": str(max_points)})


def map_frame(page, timeout_s: float = 600):
    """The map component's frame, once it exists."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        for frame in page.frames:
            if "atlas_map" in frame.url:
                return frame
        page.wait_for_timeout(50)
    raise TimeoutError("the map component did not appear")


def open_map(browser, url: str) -> tuple[Any, Any, dict[str, float]]:
    """A new page on the Explore map; (page, frame, {drawn_s, bytes})."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    received = [0, 0]  # websocket (the app's messages), http (Streamlit's own scripts, images, the component)

    def on_ws(ws) -> None:
        ws.on("framereceived", lambda data: received.__setitem__(0, received[0] + len(data)))

    page.on("websocket", on_ws)
    page.on("response", lambda r: received.__setitem__(1, received[1] + int(r.headers.get("content-length") or 0)))
    t0 = time.time() * 1000
    page.goto(f"{url}/explore?collection={COLLECTION}&method=PCA&color=label&map=1", wait_until="commit")
    frame = map_frame(page)
    frame.wait_for_function("document.body.dataset.drawn", timeout=TIMEOUT_MS)
    drawn_at = frame.evaluate("window.atlasMap.state.firstDrawnAt")
    return page, frame, {"drawn_s": round((drawn_at - t0) / 1000, 2), "ws_bytes": received[0],
                         "http_bytes": received[1], "counter": received,
                         "drawn_at": drawn_at}


def map_in_view(page) -> dict[str, float]:
    """Scroll the map to the middle of the window (a drag outside the window does nothing); its iframe's box."""
    page.evaluate("document.querySelector(\"iframe[src*='atlas_map']\").scrollIntoView({block: 'center'})")
    page.wait_for_timeout(100)
    return page.locator("iframe[src*='atlas_map']").bounding_box()


def drag_rect(page, corners: list[tuple[float, float]]) -> float:
    """Drag the lasso along the polygon's corners (10 steps an edge); the wall clock (ms) before mouse-up."""
    page.mouse.move(*corners[0])
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):
        for s in range(1, 11):
            page.mouse.move(ax + (bx - ax) * s / 10, ay + (by - ay) * s / 10)
    before = time.time() * 1000
    page.mouse.up()
    return before


GALLERY_SHOWN = """() => {
  const h = [...document.querySelectorAll('h3')].find(e => e.textContent.startsWith('Selection:'));
  if (!h) return null;
  const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')]
    .filter(i => h.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING);
  return imgs.length && imgs[0].complete && imgs[0].naturalWidth > 0 ? [h.textContent, Date.now()] : null;
}"""


def measure(url: str, box: list[list[float]]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from scripts.check_pages import launch

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = launch(p)
        page, _, first = open_map(browser, url)
        out["first_open_drawn_s"] = first["drawn_s"]
        out["first_open_ws_bytes"], out["first_open_http_bytes"] = first["ws_bytes"], first["http_bytes"]
        page.close()
        page, frame, again = open_map(browser, url)
        out["reopen_drawn_s"] = again["drawn_s"]
        out["reopen_ws_bytes"], out["reopen_http_bytes"] = again["ws_bytes"], again["http_bytes"]
        zooms = [frame.evaluate("window.atlasMap.zoomRedrawMs(1.5)") for _ in range(4)]
        out["zoom_redraw_s"] = round(float(np.median(zooms)) / 1000, 3)
        frame.evaluate("window.atlasMap.home()")
        # a real wheel event: the redraw it schedules, as a user gets it
        origin = map_in_view(page)
        page.mouse.move(origin["x"] + origin["width"] / 2, origin["y"] + 300)
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(500)
        out["wheel_redraw_s"] = round(frame.evaluate("window.atlasMap.state.drawMs") / 1000, 3)
        frame.evaluate("window.atlasMap.home()")
        page.wait_for_timeout(1500)  # let the hover rerun (from moving over the map) finish
        corners = [tuple(frame.evaluate("([x, y]) => window.atlasMap.toScreen(x, y)", c)) for c in box]
        corners = [(origin["x"] + x, origin["y"] + y) for x, y in corners]
        counter = again["counter"]
        before = list(counter)
        up = drag_rect(page, corners)
        shown = page.wait_for_function(GALLERY_SHOWN, timeout=TIMEOUT_MS).json_value()
        out["lasso_to_images_s"] = round((shown[1] - up) / 1000, 2)
        out["lasso_count_shown"] = int(shown[0].split(":")[1].split()[0].replace(",", ""))
        out["lasso_ws_bytes"], out["lasso_http_bytes"] = counter[0] - before[0], counter[1] - before[1]
        out["lasso_kept_view"] = frame.evaluate("window.atlasMap.state.firstDrawnAt") == again["drawn_at"]
        browser.close()
    return out


def table(result: dict[str, Any]) -> str:
    m = result["measured"]
    rows = [("points", f"{result['points']:,}", ""),
            ("reopen drawn, fresh app process (s)", m["first_open_drawn_s"], f"<= {GOALS['reopen_drawn_s']}"),
            ("reopen drawn, second open (s)", m["reopen_drawn_s"], f"<= {GOALS['reopen_drawn_s']}"),
            ("bytes received, first open: app messages", f"{m['first_open_ws_bytes']:,}", "reported"),
            ("  + http (Streamlit's scripts, component, images)", f"{m['first_open_http_bytes']:,}", "reported"),
            ("bytes received, second open: app messages", f"{m['reopen_ws_bytes']:,}", "reported"),
            ("  + http", f"{m['reopen_http_bytes']:,}", "reported"),
            ("zoom redraw (s)", m["zoom_redraw_s"], f"<= {GOALS['zoom_redraw_s']}"),
            ("wheel zoom redraw (s)", m["wheel_redraw_s"], f"<= {GOALS['zoom_redraw_s']}"),
            (f"lasso of {m['lasso_count_shown']:,} points -> count + first image (s)", m["lasso_to_images_s"],
             f"<= {GOALS['lasso_to_images_s']}"),
            ("bytes received for the lasso: app messages", f"{m['lasso_ws_bytes']:,}", "reported"),
            ("  + http (thumbnails, CSV, Streamlit's table code)", f"{m['lasso_http_bytes']:,}", "reported")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value!s:>12}  {goal}" for name, value, goal in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50,000 points (< 2 min)")
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--store", type=Path, default=None, help="store folder to reuse (built there when missing)")
    ap.add_argument("--compare", action="store_true", help="step 1: Plotly Scattergl against the WebGL component")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    n = args.points or (50_000 if args.quick else 1_000_000)
    load = list(os.getloadavg())
    if args.compare:
        from bench.map_compare import compare

        result: dict[str, Any] = {"compare": compare(n), "machine": machine_info(("plotly", "streamlit"), load)}
        out = args.out or ROOT / "bench" / "results" / f"map_compare{'-quick' if args.quick else ''}.json"
    else:
        with tempfile.TemporaryDirectory(prefix="atlas-map-bench-") as tmp:
            store = args.store or Path(tmp) / "store"
            cache = (args.store.parent / f"{args.store.name}-cache") if args.store else Path(tmp) / "cache"
            built_s = None
            if not (store / COLLECTION).exists():
                built_s = round(build_store(store, n), 1)
            coords, map_s, _ = cache_map(store, cache, n)
            box, expected = lasso_box(coords, max(1000, n // 10))
            proc, url = start_app(store, cache, max(n, 100_000))
            try:
                measured = measure(url, box)
            finally:
                proc.terminate()
                proc.wait(20)
        result = {"points": n, "store": "embedded Edge", "layout": "PCA (cached through compute_map)",
                  "build_store_s": built_s, "map_s": round(map_s, 1), "lasso_expected_points": expected,
                  "measured": measured, "goals": GOALS,
                  "met": {k: measured[k] <= v for k, v in GOALS.items()} | {
                      "first_open_drawn_s": measured["first_open_drawn_s"] <= GOALS["reopen_drawn_s"]},
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": machine_info(("streamlit", "plotly", "qdrant-edge-py", "playwright"), load)}
        print(table(result))
        out = args.out or ROOT / "bench" / "results" / f"map_browser{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
