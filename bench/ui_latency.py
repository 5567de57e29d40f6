"""How long each user action takes in the app, from the click (or the navigation) until its result is visible and
the page is idle again, in headless Chromium on the demo collection (issue 14: p50 <= 1 s, max <= 2 s per action;
the Collections page's first load <= 2 s; map computation and ingest are excluded: they show progress).

The demo's store and cache are copied to a temporary folder first, so the actions that change labels (Accept)
never touch your demo, and the app started here has the store to itself.

    .venv/bin/python bench/ui_latency.py              # 5 rounds of every action -> bench/results/ui_latency.json
    .venv/bin/python bench/ui_latency.py --quick      # 1 round -> bench/results/ui_latency-quick.json

Needs the demo (scripts/demo.sh, or `python -m core demo`) and Chromium (scripts/setup.sh with BROWSER=1).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

from check_pages import IDLE, launch, problems  # noqa: E402
from app_server import start_app as serve  # noqa: E402
from machine import machine_info  # noqa: E402

GOAL_P50_S, GOAL_MAX_S, GOAL_FIRST_LOAD_S = 1.0, 2.0, 2.0
TIMEOUT_MS = 180_000


def start_app(store: Path, cache: Path):
    """The app as scripts/demo.sh starts it, against the copied store; returns (process, url)."""
    return serve(store, cache)


def first_point_id(store: Path) -> str:
    """A point of the demo to search from, read before the app opens the store (one opener per folder)."""
    from core.store import open_store

    with open_store(path=str(store)) as s:
        name = s.list_collections()[0].name
        return str(s.scroll(name, with_vectors=False, limit=1).ids[0])


# Notes when a script run starts, from before the action: a run that starts and ends between two polls still
# counts as seen. Installed on every document (a navigation replaces the window).
WATCH_RUNS_JS = """() => {
  window.__atlasRunSeen = false;
  if (window.__atlasWatching) return;
  window.__atlasWatching = true;
  new MutationObserver(() => {
    const app = document.querySelector("[data-testid='stApp']");
    if (app && app.getAttribute('data-test-script-state') === 'running') window.__atlasRunSeen = true;
  }).observe(document, {subtree: true, childList: true, attributes: true,
             attributeFilter: ['data-test-script-state']});
}"""


def new_page(browser):
    """A page in a new browser context (a new session, empty cache), watching for script runs from the start of
    every document: a load's run can start and end before the first check, and must not be waited for again."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.add_init_script(f"({WATCH_RUNS_JS})()")
    return page


def idle(page) -> None:
    """Until the script run that the action started has finished: first see it start (within a second; an action
    that starts no run counts that second, which errs on the slow side), then see it end."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("window.__atlasRunSeen === true || document.querySelector(\"[data-testid='stApp']"
                               "[data-test-script-state='running']\") !== null", timeout=1000)
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def timed(page, act: Callable[[], None], visible: str | None = None) -> float:
    """Seconds from the action until `visible` (a selector) shows and the script run has finished."""
    try:
        page.evaluate(WATCH_RUNS_JS)  # forget the runs before this action
    except Exception:  # no document yet: the new document's own watcher starts clean
        pass
    started = time.perf_counter()
    act()
    if visible:
        page.locator(visible).first.wait_for(timeout=TIMEOUT_MS)
    idle(page)
    seconds = time.perf_counter() - started
    found = problems(page)
    if found:
        raise RuntimeError(f"the page shows an error: {found[0]}")
    return seconds


def lasso_middle(page) -> None:
    """A lasso around the middle half of the map's plotting area, drawn with the mouse as a user draws it."""
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25
    x1, y1 = box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in [(x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


# Page coordinates of the first node of the graph's first marker trace (WebGL draws no element per node).
NODE_XY_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(d => d.mode === 'markers' && d.x.length);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
  return [r.left + xa._offset + xa.l2p(t.x[0]), r.top + ya._offset + ya.l2p(t.y[0])];
}"""


def one_round(page, url: str, first: bool, point_id: str) -> dict[str, float]:
    """Every action once, as a user moves through the pages."""
    t: dict[str, float] = {}
    # The first load opens the address; then pages are opened as a user does, from the sidebar's navigation.
    go = lambda name: (lambda: page.locator("[data-testid='stSidebarNav']").get_by_role(  # noqa: E731
        "link", name=name).first.click())
    t["Collections: first load" if first else "Collections: load in a new session"] = timed(
        page, lambda: page.goto(url, wait_until="domcontentloaded"), "h1:has-text('Collections')")
    t["Explore: open"] = timed(page, go("Explore"), "h1:has-text('Explore')")
    t["Explore: draw the cached default map"] = timed(
        page, lambda: page.get_by_role("button", name="Draw map").click(), ".js-plotly-plot")
    t["Explore: lasso the middle of the map -> gallery"] = timed(page, lambda: lasso_middle(page),
                                                                 "h3:has-text('Selection')")
    t["Audit: open"] = timed(page, go("Audit"), "h1:has-text('Audit')")
    # The page starts the audit when it opens; this click waits for the rest of it (computing it, with progress,
    # for new labels: each round's accept and undo leave new label history). Again: the result as it is shown.
    t["Audit: run audit (computing)"] = timed(page, lambda: page.get_by_role("button", name="Run audit").click(),
                                              "[data-testid='stMetric']")
    t["Audit: run audit again"] = timed(page, lambda: page.get_by_role("button", name="Run audit").click(),
                                        "[data-testid='stMetric']")
    accept = page.locator("[class*='st-key-'][class*='_accept'] button").first
    if accept.count():
        t["Audit: accept one suggestion"] = timed(page, accept.click)
        page.get_by_role("tab", name="Changes").click()
        idle(page)
        t["Audit: undo it"] = timed(page, lambda: page.get_by_role("button", name="Undo the last step").click())
    t["Graph: open"] = timed(page, go("Graph"), "h1:has-text('Graph')")
    t["Graph: draw graph"] = timed(page, lambda: page.get_by_role("button", name="Draw graph").click(),
                                   ".js-plotly-plot")
    page.wait_for_function("document.querySelector('.js-plotly-plot')._fullLayout !== undefined")
    x, y = page.evaluate(NODE_XY_JS)
    t["Graph: click a node"] = timed(page, lambda: page.mouse.click(x, y), "button:has-text('Expand its neighbours')")
    t["Search: open"] = timed(page, go("Search"), "h1:has-text('Search')")
    page.get_by_role("tab", name="Point").click()
    page.get_by_label("Point id").fill(point_id)
    page.get_by_label("Point id").press("Enter")
    idle(page)
    t["Search: more like a point"] = timed(page, lambda: page.get_by_role("button", name="More like this").click(),
                                           "text=Qdrant query")
    t["Collections: open"] = timed(page, go("Collections"), "h1:has-text('Collections')")
    return t


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| action | rounds | p50 | max | goal | result |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        first = r["action"].startswith("Collections: first load")
        if "(computing)" in r["action"]:  # like map computation: shows progress, outside the click goal
            lines.append(f"| {r['action']} | {r['rounds']} | {r['p50_s']:.2f} s | {r['max_s']:.2f} s | "
                         "shows progress | – |")
            continue
        goal = f"≤ {GOAL_FIRST_LOAD_S:g} s" if first else f"p50 ≤ {GOAL_P50_S:g} s, max ≤ {GOAL_MAX_S:g} s"
        ok = r["max_s"] <= GOAL_FIRST_LOAD_S if first else (r["p50_s"] <= GOAL_P50_S and r["max_s"] <= GOAL_MAX_S)
        lines.append(f"| {r['action']} | {r['rounds']} | {r['p50_s']:.2f} s | {r['max_s']:.2f} s | {goal} | "
                     f"{'pass' if ok else 'FAIL'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round instead of five")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--store-path", type=Path, default=ROOT / "data" / "qdrant", help="the demo's store folder")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "cache", help="the demo's cache folder")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    out = args.out or ROOT / "bench" / "results" / ("ui_latency-quick.json" if args.quick else "ui_latency.json")
    if not args.store_path.is_dir():
        print(f"error: no demo store at {args.store_path}: run scripts/demo.sh (or `python -m core demo`) first, "
              "or pass --store-path.", file=sys.stderr)
        return 1
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="atlas-bench-ui-") as tmp:
        store, cache = Path(tmp) / "qdrant", Path(tmp) / "cache"
        shutil.copytree(args.store_path, store)
        if args.cache_dir.is_dir():
            shutil.copytree(args.cache_dir, cache)
        point_id = first_point_id(store)
        proc, url = start_app(store, cache)
        samples: dict[str, list[float]] = {}
        warm_s = 0.0
        try:
            with sync_playwright() as p:
                browser = launch(p)
                try:
                    # The copied store lives at a new path, so its map is computed once, untimed (map computation
                    # is excluded from the goals: it shows progress); every round then draws it from the cache.
                    warm = new_page(browser)
                    warm_s = timed(warm, lambda: warm.goto(f"{url}/explore", wait_until="domcontentloaded"), "h1")
                    warm_s += timed(warm, lambda: warm.get_by_role("button", name="Draw map").click(),
                                    ".js-plotly-plot")
                    warm.context.close()
                    for r in range(rounds):
                        # a new browser context per round: a new session, as a user opening the app again
                        page = new_page(browser)
                        for action, seconds in one_round(page, url, r == 0, point_id).items():
                            samples.setdefault(action, []).append(seconds)
                        page.context.close()
                        print(f"round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    rows = [{"action": a, "rounds": len(v), "p50_s": round(float(np.median(v)), 3), "max_s": round(max(v), 3),
             "samples_s": [round(x, 3) for x in v]} for a, v in samples.items()]
    text = table(rows)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(("streamlit", "plotly", "playwright"), load_at_start,
                                loadavg_at_end=[round(x, 2) for x in os.getloadavg()]),
        "settings": {"rounds": rounds, "store": args.store_path.name},
        "map_computation_s": round(warm_s, 2), "goals": {
            "p50_s": GOAL_P50_S, "max_s": GOAL_MAX_S, "collections_first_load_s": GOAL_FIRST_LOAD_S},
        "actions": rows, "table": text}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
