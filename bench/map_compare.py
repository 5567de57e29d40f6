"""Step 1 of issue 15, kept so that it can be rerun: Plotly Scattergl (binary typed arrays, no per-point text) against
the project's WebGL map component (ui/map_frontend), both on the same N points in headless Chromium, outside
Streamlit: first draw, a zoom redraw, a lasso over about 10% of the points and what each would send back.

    .venv/bin/python -m bench.map_browser --compare [--points 1000000]
"""
from __future__ import annotations

import http.server
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "ui" / "map_frontend"

PLOTLY_PAGE = """<!doctype html><html><body style="margin:0"><div id="plot" style="width:1000px;height:650px"></div>
<script src="plotly.min.js"></script>
<script>
window.t = {};
window.run = async () => {
  const t0 = performance.now();
  const fig = await (await fetch("fig.json")).json();
  window.t.fetched = performance.now() - t0;
  const gd = document.getElementById("plot");
  await Plotly.newPlot(gd, fig.data, fig.layout, {displaylogo: false});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  window.t.drawn = performance.now() - t0;
  gd.on("plotly_selected", (ev) => {
    const pts = (ev && ev.points) || [];
    // what Streamlit's plotly_chart sends back for each selected point
    const sent = pts.map(p => ({curve_number: p.curveNumber, point_number: p.pointNumber, point_index: p.pointIndex,
                                x: p.x, y: p.y}));
    window.t.selected = {at: Date.now(), count: pts.length, bytes: JSON.stringify(sent).length};
  });
};
window.zoom = async () => {
  const gd = document.getElementById("plot"), xr = gd._fullLayout.xaxis.range, yr = gd._fullLayout.yaxis.range;
  const t0 = performance.now();
  await Plotly.relayout(gd, {"xaxis.range": [xr[0] + (xr[1] - xr[0]) / 4, xr[1] - (xr[1] - xr[0]) / 4],
                             "yaxis.range": [yr[0] + (yr[1] - yr[0]) / 4, yr[1] - (yr[1] - yr[0]) / 4]});
  await new Promise(r => requestAnimationFrame(r));
  return performance.now() - t0;
};
</script></body></html>"""

CANVAS_DRIVER = """
<script>
window.t = {};
window.addEventListener("message", (ev) => {
  const m = ev.data;
  if (m && m.type === "streamlit:setComponentValue" && m.value.selection)
    window.t.selected = {at: Date.now(), bytes: JSON.stringify(m.value).length, value: m.value};
});
window.run = async () => {
  const t0 = performance.now();
  const bin = async (f) => new Uint8Array(await (await fetch(f)).arrayBuffer());
  const [xy, codes] = await Promise.all([bin("xy.bin"), bin("codes.bin")]);
  window.t.fetched = performance.now() - t0;
  const meta = await (await fetch("meta.json")).json();
  window.postMessage({type: "streamlit:render", args: Object.assign(meta, {xy, codes, marks: new Uint8Array(0)})}, "*");
  await new Promise(r => { const w = () => document.body.dataset.drawn ? r() : setTimeout(w, 5); w(); });
  window.t.drawn = performance.now() - t0;
};
</script>
"""


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *a) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _lasso(page, x0: float, y0: float, x1: float, y1: float) -> float:
    """Drag a closed rectangular lasso path; returns the wall clock (ms) at mouse-up."""
    pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]
    page.mouse.move(*pts[0])
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        for s in range(1, 11):
            page.mouse.move(ax + (bx - ax) * s / 10, ay + (by - ay) * s / 10)
    before = time.time() * 1000  # Plotly answers inside the mouse-up handler itself
    page.mouse.up()
    return before


def compare(n: int = 1_000_000, seed: int = 0, kinds: tuple[str, ...] = ("canvas", "plotly"),
            shots: Path | None = None) -> dict:
    import plotly.graph_objects as go
    import plotly
    from playwright.sync_api import sync_playwright

    from core.colors import PALETTE
    from core.figures import map_arrays, rows_in_polygon
    from scripts.check_pages import launch

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centers = rng.normal(size=(10, 2)) * 6
    coords = (centers[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    out: dict = {"points": n}
    c0 = centers[0]
    box = [(c0[0] - 1.6, c0[1] + 1.6), (c0[0] + 1.6, c0[1] - 1.6)]  # top-left, bottom-right in data units
    out["points_in_box"] = int(((np.abs(coords - c0.astype(np.float32)) < 1.6).all(axis=1)).sum())
    lo, hi = coords.min(axis=0).astype(np.float64), coords.max(axis=0).astype(np.float64)
    span = float(max(hi - lo))
    TO_SCREEN = {  # data -> page pixels
        "canvas": f"([x, y]) => window.atlasMap.toScreen((x - {(lo[0] + hi[0]) / 2}) / {span} + 0.5, "
                  f"(y - {(lo[1] + hi[1]) / 2}) / {span} + 0.5)",
        "plotly": "([x, y]) => { const l = document.getElementById('plot')._fullLayout; "
                  "return [l.xaxis.l2p(x) + l.xaxis._offset, l.yaxis.l2p(y) + l.yaxis._offset]; }"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Plotly: one Scattergl trace per label, numpy arrays (plotly 7 writes them as base64 typed arrays)
        fig = go.Figure([go.Scattergl(x=coords[labels == c, 0], y=coords[labels == c, 1], mode="markers",
                                      name=str(c), hoverinfo="none",
                                      marker={"size": 3, "opacity": 0.8, "color": PALETTE[c]}) for c in range(10)])
        fig.update_layout(width=1000, height=650, dragmode="lasso", margin={"l": 0, "r": 0, "t": 0, "b": 0},
                          xaxis={"visible": False}, yaxis={"visible": False})
        t = time.perf_counter()
        fig_json = fig.to_json()
        out["plotly_python_s"] = round(time.perf_counter() - t, 3)
        (folder / "fig.json").write_text(fig_json)
        out["plotly_bytes"] = len(fig_json)
        shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", folder)
        (folder / "plotly.html").write_text(PLOTLY_PAGE)
        # the component: uint16 coordinates + uint8 codes
        t = time.perf_counter()
        arrays = map_arrays(coords, [str(c) for c in labels])
        out["canvas_python_s"] = round(time.perf_counter() - t, 3)
        (folder / "xy.bin").write_bytes(arrays.xy.tobytes())
        (folder / "codes.bin").write_bytes(arrays.codes.tobytes())
        (folder / "meta.json").write_text(json.dumps({"names": arrays.names, "colors": arrays.colors,
                                                      "version": "v1", "height": 650}))
        out["canvas_bytes"] = arrays.xy.nbytes + arrays.codes.nbytes
        html = (FRONTEND / "index.html").read_text().replace('<script src="map.js"></script>',
                                                             CANVAS_DRIVER + '<script src="map.js"></script>')
        (folder / "canvas.html").write_text(html)
        shutil.copy(FRONTEND / "map.js", folder)
        server, url = _serve(folder)
        try:
            with sync_playwright() as p:
                browser = launch(p)
                for kind in kinds:
                    page = browser.new_page(viewport={"width": 1000, "height": 650})
                    page.goto(f"{url}/{kind}.html")
                    page.evaluate("window.run()")
                    timings = page.evaluate("window.t")
                    out[f"{kind}_first_draw_s"] = round(timings["drawn"] / 1000, 3)
                    if kind == "canvas":
                        out["canvas_drawn_as"] = page.evaluate("window.atlasMap.state.drawnAs")
                    if shots:
                        page.screenshot(path=str(shots / f"{kind}-{n}.png"))
                    zooms = [page.evaluate("window.zoom()" if kind == "plotly" else "window.atlasMap.zoomRedrawMs(2)")
                             for _ in range(3)]
                    out[f"{kind}_zoom_redraw_s"] = round(float(np.median(zooms)) / 1000, 3)
                    if shots:
                        page.screenshot(path=str(shots / f"{kind}-{n}-zoomed.png"))
                    page.evaluate("window.atlasMap.home()" if kind == "canvas"
                                  else "Plotly.relayout('plot', {'xaxis.autorange': true, 'yaxis.autorange': true})")
                    # a lasso around one cluster (about a tenth of the points), the same data rectangle for both
                    corners = [page.evaluate(TO_SCREEN[kind], [float(x), float(y)]) for x, y in box]
                    up = _lasso(page, *corners[0], *corners[1])
                    page.wait_for_function("window.t.selected !== undefined", timeout=120_000)
                    sel = page.evaluate("window.t.selected")
                    out[f"{kind}_lasso_browser_s"] = round((sel["at"] - up) / 1000, 3)
                    out[f"{kind}_lasso_sent_bytes"] = sel["bytes"]
                    if kind == "plotly":
                        out["plotly_lasso_points"] = sel["count"]
                    else:
                        t = time.perf_counter()
                        rows = rows_in_polygon(arrays.xy, sel["value"]["selection"]["polygon"])
                        out["canvas_server_polygon_s"] = round(time.perf_counter() - t, 3)
                        out["canvas_lasso_points"] = len(rows)
                    page.close()
                browser.close()
        finally:
            server.shutdown()
    return out
