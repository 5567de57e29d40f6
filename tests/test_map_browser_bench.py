"""bench/map_browser.py --quick runs against a real app in headless Chromium and writes its figures (how fast is
the benchmark's business; here: that it measures what it says)."""
import json
import os

from core.figures import CANVAS_FROM
from scripts.check_pages import CHROMIUM


def test_map_browser_benchmark_quick_runs(tmp_path):
    assert os.path.exists(CHROMIUM), "Chromium is needed: apt-get install chromium"
    from bench.map_browser import main

    out = tmp_path / "map_browser-quick.json"
    assert main(["--quick", "--points", str(CANVAS_FROM + 2_000), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    m = result["measured"]
    n = result["points"]
    assert n == CANVAS_FROM + 2_000 and result["machine"]["cpu"] and "/tmp" not in out.read_text()
    for key in ("first_open_drawn_s", "reopen_drawn_s", "zoom_redraw_s", "wheel_redraw_s", "lasso_to_images_s"):
        assert 0 < m[key] < 120, key
    # the lasso shows (about) the points the bench aimed it at, and did not make the map upload again
    assert abs(m["lasso_count_shown"] - result["lasso_expected_points"]) <= 0.02 * result["lasso_expected_points"]
    assert m["lasso_kept_view"] is True
    # the map arrives once, as 5 bytes a point; a lasso brings back far less than the map
    assert m["reopen_ws_bytes"] >= 5 * n and m["lasso_ws_bytes"] < 5 * n
