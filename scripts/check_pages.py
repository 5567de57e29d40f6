"""Open every page of a running Image Atlas in headless Chromium and fail when any of them shows an exception.

    python scripts/check_pages.py http://127.0.0.1:8501 [--draw-map] [--screenshots DIR]

The quick start's smoke mode (scripts/demo.sh --smoke) runs it against the demo. --draw-map also draws the
Explore page's default map (what a new user does first) and reports how long it took; --screenshots writes one
PNG per page (how the README's screenshots are made, from the full demo), each after the page has done its job:
the collection's own folder ingested again (every image unchanged: nothing embedded or written), the map drawn,
the audit run, a search by one of the collection's own images, the graph drawn. No label is changed.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"Collections": "", "Ingest": "ingest", "Explore": "explore", "Audit": "audit", "Search": "search",
         "Graph": "graph"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
SHOT_WIDTH = 1400
SHOT_MAX_HEIGHT = {"Collections": 1450, "Audit": 2300, "Search": 1500, "Explore": 1500, "Graph": 1500,
                   "Ingest": 1100}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


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
    from playwright.sync_api import Error as PlaywrightError
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
        if screenshots and not found:
            try:
                started_job = time.perf_counter()
                what = show_its_job(page, title, timeout_s)
                found = problems(page)
                if what:
                    print(f"     {what} in {time.perf_counter() - started_job:.1f} s", flush=True)
            except PlaywrightTimeout as exc:
                found = [f"showing its job timed out after {timeout_s:g} s: {str(exc).splitlines()[0]}"]
            except PlaywrightError as exc:  # a control it looks for is gone or ambiguous
                found = [f"showing its job failed: {str(exc).splitlines()[0]}"]
            failures += [f"{title}: {f}" for f in found]
            for f in found:
                print(f"     {f}", flush=True)
        if screenshots:
            screenshots.mkdir(parents=True, exist_ok=True)
            screenshot(page, screenshots / f"screenshot-{title.lower()}.png", SHOT_MAX_HEIGHT.get(title, 1500))
    return failures


def show_its_job(page, title: str, timeout_s: float) -> str:
    """Before a page's screenshot: what a reader should see it do. Returns what was done ("" for nothing)."""
    wait = timeout_s * 1000
    if title == "Ingest":  # the collection's own folder again: every image unchanged, nothing embedded or written
        collection = parse_qs(urlparse(page.url).query).get("collection", [""])[0]
        root = _image_root(page, wait)
        if not collection or root is None:
            return "no collection or image folder to show an ingest with"
        folder = page.get_by_role("textbox", name=re.compile(r"^Folder"))  # "Folder (or manifest) on the server"
        folder.fill(str(root))
        folder.press("Enter")
        wait_idle(page, timeout_s)
        page.get_by_role("textbox", name="Collection").fill(collection)
        page.get_by_role("button", name="Ingest").click()
        page.locator("[data-testid='stAlertContentSuccess']").first.wait_for(timeout=wait)
        wait_idle(page, timeout_s)
        return f"ingested {root} into {collection} again"
    if title == "Collections":
        page.get_by_text("Samples per label").wait_for(timeout=wait)
        _images_loaded(page, wait)
        return ""
    if title == "Explore":
        drawn = page.locator(".js-plotly-plot").count() > 0  # --draw-map drew it already
        if not drawn:
            page.get_by_role("button", name="Draw map").click()
        page.locator(".js-plotly-plot").first.wait_for(timeout=wait)
        wait_idle(page, timeout_s)
        return "" if drawn else "map drawn"
    if title == "Audit":
        page.get_by_role("button", name="Run audit").click()
        page.get_by_text("most likely wrong first").wait_for(timeout=wait)
        wait_idle(page, timeout_s)
        _images_loaded(page, wait)
        return "audit run"
    if title == "Search":
        query = _query_image(page, wait)
        if query is None:
            return "no image found under the sidebar's image folder: no search shown"
        upload = page.locator("input[type='file']").first
        upload.wait_for(state="attached", timeout=wait)
        upload.set_input_files(str(query))
        page.get_by_role("button", name="Search by image").click(timeout=wait)
        page.get_by_text("Qdrant query").wait_for(timeout=wait)
        wait_idle(page, timeout_s)
        _images_loaded(page, wait)
        return f"searched by {query.parent.name}/{query.name}"
    if title == "Graph":
        page.get_by_role("button", name="Draw graph").click()
        page.locator(".js-plotly-plot").first.wait_for(timeout=wait)
        wait_idle(page, timeout_s)
        return "graph drawn"
    return ""


def _image_root(page, wait_ms: float) -> Path | None:
    """The sidebar's image folder, where the page check runs (on the app's machine)."""
    field = page.get_by_role("textbox", name="Image folder")
    field.wait_for(timeout=wait_ms)
    root = Path(field.input_value())
    return root if root.is_dir() else None


def _query_image(page, wait_ms: float) -> Path | None:
    """An image of the collection's own: the first file of the first label folder under the sidebar's image folder."""
    root = _image_root(page, wait_ms)
    if root is None:
        return None
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files[0]
    return None


def _images_loaded(page, wait_ms: float) -> None:
    page.wait_for_function("Array.from(document.querySelectorAll('[data-testid=stMain] img'))"
                           ".every(i => i.complete)", timeout=wait_ms)


def screenshot(page, path: Path, max_height: int) -> None:
    """The page's whole content (up to max_height px tall) at SHOT_WIDTH px: Streamlit scrolls inside the page, so a
    full-page screenshot would cut it at the window; the window is made as tall as the content instead."""
    height = page.evaluate("(() => { const b = document.querySelector('[data-testid=stMainBlockContainer]');"
                           " return b ? Math.ceil(b.getBoundingClientRect().bottom + 40) : 0; })()")
    before = page.viewport_size
    page.set_viewport_size({"width": SHOT_WIDTH, "height": max(800, min(int(height or 1000), max_height))})
    page.wait_for_timeout(1500)  # the layout settles, plots resize, images paint
    page.screenshot(path=str(path))
    if before:
        page.set_viewport_size(before)


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
