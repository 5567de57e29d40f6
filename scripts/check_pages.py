"""Open every page of a running Image Atlas in headless Chromium and fail when any of them shows an exception.

    python scripts/check_pages.py http://127.0.0.1:8501 [--draw-map] [--screenshots DIR]

The quick start's smoke mode (scripts/demo.sh --smoke) runs it against the demo. --draw-map also draws the
Explore page's default map (what a new user does first) and reports how long it took; --screenshots writes one
PNG per page (how the README's screenshots are made, from the full demo).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"Collections": "", "Ingest": "ingest", "Explore": "explore", "Audit": "audit", "Search": "search",
         "Graph": "graph"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def launch(playwright):
    """Debian's Chromium, headless, as the tests use it (Playwright's own browser download fails offline)."""
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is needed for the browser check: apt-get install chromium "
                         "(scripts/setup.sh does it with BROWSER=1 or TEST=1).")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def wait_idle(page, timeout_s: float) -> None:
    """Until the script run that a navigation or click started has finished."""
    page.wait_for_timeout(300)  # the run starts a moment after the navigation or click
    page.wait_for_selector(IDLE, timeout=timeout_s * 1000)


def problems(page) -> list[str]:
    """Exceptions and error boxes on the page, as their text."""
    def text(e) -> str:
        return " ".join(e.inner_text().split())[:300]

    found = [f"exception: {text(e)}" for e in page.query_selector_all("[data-testid='stException']")]
    # an exception also draws an error box: count those only when there is no exception
    return found or [f"error: {text(e)}" for e in page.query_selector_all("[data-testid='stAlertContentError']")]


def check(url: str, draw_map: bool = False, screenshots: Path | None = None, timeout_s: float = 180,
          page=None) -> list[str]:
    """Every page once; returns the problems found (empty when all is well) and prints a line per page.
    `page`: a Playwright page to use (a test's own browser); by default Chromium is started for this."""
    if page is not None:
        return _check_pages(page, url, draw_map, screenshots, timeout_s)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            return _check_pages(browser.new_page(viewport={"width": 1400, "height": 1000}), url, draw_map,
                                screenshots, timeout_s)
        finally:
            browser.close()


def _check_pages(page, url: str, draw_map: bool, screenshots: Path | None, timeout_s: float) -> list[str]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    failures: list[str] = []
    for title, path in PAGES.items():
        started = time.perf_counter()
        note = ""
        try:
            page.goto(f"{url.rstrip('/')}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector("[data-testid='stApp']", timeout=timeout_s * 1000)
            wait_idle(page, timeout_s)
            found = problems(page)
            if not found and not page.get_by_role("heading", name=title).count():
                found = [f"the page's title '{title}' is not shown"]
            if not found and title == "Explore" and draw_map:
                clicked = time.perf_counter()
                page.get_by_role("button", name="Draw map").click()
                page.locator(".js-plotly-plot").first.wait_for(timeout=timeout_s * 1000)
                wait_idle(page, timeout_s)
                note = f"; default map drawn in {time.perf_counter() - clicked:.1f} s"
                found = problems(page)
        except PlaywrightTimeout as exc:
            found = [f"timed out after {timeout_s:g} s: {str(exc).splitlines()[0]}"]
        failures += [f"{title}: {f}" for f in found]
        print(f"{'FAIL' if found else 'ok  '} {title:<12} {time.perf_counter() - started:5.1f} s{note}",
              flush=True)
        for f in found:
            print(f"     {f}", flush=True)
        if screenshots:
            screenshots.mkdir(parents=True, exist_ok=True)
            if page.locator(".js-plotly-plot").count():  # a map or graph is what a reader wants to see
                page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)  # images and the plot finish painting
            page.screenshot(path=str(screenshots / f"screenshot-{title.lower()}.png"))
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--draw-map", action="store_true", help="also draw the Explore page's default map")
    ap.add_argument("--screenshots", type=Path, help="write a screenshot of every page into this folder")
    ap.add_argument("--timeout", type=float, default=180, help="seconds a page may take (default 180)")
    args = ap.parse_args()
    failures = check(args.url, args.draw_map, args.screenshots, args.timeout)
    if failures:
        print(f"{len(failures)} problem(s) on the pages above (the app's log has the tracebacks).", file=sys.stderr)
        return 1
    print(f"all {len(PAGES)} pages load without an exception.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
