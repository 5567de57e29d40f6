"""Data is text: hostile labels, file names, payload keys and values and vector names show literally everywhere,
inject nothing into the page (no element, no dialog, no request) and export to CSV without formulas."""
import csv
import io
import re

import numpy as np
import pandas as pd
import pytest

from core.exporting import csv_safe_cell, selection_table, to_csv
from core.catalog import payload_text
from core.figures import map_figure, plotly_text
from core.graph import build_graph, graph_figure
from core.points import PointSet
from core.store import open_store
from tests.conftest import streamlit_app
from ui.text import WORD_JOINER, md_escape

TRAP = "127.0.0.1:1"  # nothing listens there: any request to it is an injected element at work
HOSTILE = ["<img src=x onerror=alert(1)>", "**bold**", f"[link](http://{TRAP}/x)", f"![img](http://{TRAP}/y.png)",
           '"quoted"', '=HYPERLINK("http://x")']
VECTOR = f"![vec](http://{TRAP}/v.png) **bold** <img src=x onerror=alert(2)>"
COLLECTION = "c-__bold__.x"  # the embedded store allows only letters, digits, '_', '-' and '.' in names
PER_LABEL = 6


# --- (a) the helpers ------------------------------------------------------------------------------------------

def test_md_escape_leaves_no_markdown_or_html_character_unescaped():
    for value in HOSTILE + [VECTOR, "a & b &quot;", ":red[x] $x$ :material/home:", "# h\n- item\r\n> q", "`c` ~s~",
                            "- x", "12. y", "> q"]:
        escaped = md_escape(value)
        # every character Markdown, HTML or Streamlit's directives act on is preceded by a backslash, and so is a
        # block marker (heading, quote, list) at the start
        assert not re.search(r"(?<!\\)[*_\[\]()<>`!|~$:&]", escaped.replace("\\\\", "")), escaped
        assert not re.match(r"\s*([#>+-]|\d+[.)])", escaped), escaped
        # and removing the escapes gives the value back (line breaks become spaces: one line of text)
        assert re.sub(r"\\(.)", r"\1", escaped).replace(WORD_JOINER, "") == re.sub(r"[\r\n]+", " ", value)
    # GFM links bare URLs and e-mail addresses whatever the escapes: an invisible joiner keeps them text
    for link in ("http://127.0.0.1:1/x", "HTTPS://a.b", "www.a.org", "me@a.org"):
        assert not re.search(r"(?i)(https?:\\?/|www\\?\.|@\w)", md_escape(link).replace("\\", "")), link
    assert md_escape(3) == "3" and md_escape(None) == "None"


def test_csv_neutralises_formula_cells_and_keeps_numbers():
    table = pd.DataFrame({"label": HOSTILE, "n": [-1, 2, -3, 4, 5, 6], "x": [-0.5] * 6,
                          "text_number": ["-3", "+4", "1e5", "-2+3", "@SUM(A1)", "\tq"],
                          '=HYPERLINK("http://x")': ["-x", "ok", None, "+cmd|' /C calc'!A0", "a=b", "\rz"]})
    rows = list(csv.reader(io.StringIO(to_csv(table), newline="")))
    assert rows[0] == ["label", "n", "x", "text_number", "'=HYPERLINK(\"http://x\")"]  # a payload key is a header
    body = rows[1:]
    assert [r[0] for r in body] == [v if v[0] not in "=+-@" else "'" + v for v in HOSTILE]
    assert [r[1] for r in body] == ["-1", "2", "-3", "4", "5", "6"]  # a negative number is not a formula
    assert {r[2] for r in body} == {"-0.5"}
    assert [r[3] for r in body] == ["-3", "+4", "1e5", "'-2+3", "'@SUM(A1)", "'\tq"]
    assert [r[4] for r in body] == ["'-x", "ok", "", "'+cmd|' /C calc'!A0", "a=b", "'\rz"]
    assert csv_safe_cell(-7) == -7 and csv_safe_cell(None) is None


def test_selection_export_writes_no_formula_from_payload():
    payloads = [{"label": v, "file_name": v, v: v} for v in HOSTILE]
    pts = PointSet("c", "", list(range(len(HOSTILE))), payloads, len(HOSTILE), "f")
    text = to_csv(selection_table(pts, np.zeros((len(HOSTILE), 2)), list(range(len(HOSTILE))), "label"))
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@")]
    assert "'=HYPERLINK(\"http://x\")" in cells


def test_plotly_names_and_hover_text_are_escaped_once():
    groups = HOSTILE + ["a & b", "%{x}"]
    n = len(groups)
    mf = map_figure(np.random.default_rng(0).random((n, 2)), groups, [f"{g}.png" for g in groups], list(range(n)))
    graph = build_graph(list(range(n)), [{"label": g, "file_name": f"{g}.png"} for g in groups],
                        np.random.default_rng(1).random((n, 4)).astype(np.float32), "label", k=2)
    traces = list(mf.figure.data) + [t for t in graph_figure(graph).data if t.mode == "markers"]
    assert len(traces) == 2 * n
    for trace in traces:
        assert trace.name in {plotly_text(g) for g in groups}
        assert "&quot;" not in trace.name and "&amp;amp;" not in trace.name and "<" not in trace.name
        # the name reaches the hover box through fullData: a label is never part of the template
        assert trace.hovertemplate == "%{text}<extra>%{fullData.name}</extra>"
        assert all("<img" not in t and "&quot;" not in t for t in trace.text)
    assert plotly_text('<img src=x> "q" & b') == '&lt;img src=x&gt; "q" &amp; b'


# --- (b) a real browser over a hostile collection -------------------------------------------------------------

def _hostile_store(path: str) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(HOSTILE), 8)) * 3  # one tight cluster per label
    ids, vectors, payloads = [], [], []
    for c, label in enumerate(HOSTILE):
        for i in range(PER_LABEL):
            given = HOSTILE[(c + 1) % len(HOSTILE)] if i == 0 else label  # one planted mislabel per cluster
            ids.append(len(ids) + 1)
            vectors.append(centres[c] + rng.normal(size=8) * 0.05)
            payloads.append({"label": given, "file_name": f"{HOSTILE[i % len(HOSTILE)]}.png",
                             HOSTILE[(c + i) % len(HOSTILE)]: HOSTILE[i % len(HOSTILE)], "note": label})
    with open_store(path=path) as store:
        store.create_collection(COLLECTION, {VECTOR: 8})
        store.upsert(COLLECTION, ids, {VECTOR: np.asarray(vectors, np.float32)}, payloads)


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xss")
    _hostile_store(str(tmp / "qdrant"))
    with streamlit_app(ATLAS_STORE_PATH=str(tmp / "qdrant"), ATLAS_CACHE_DIR=str(tmp / "cache")) as url:
        yield url


# Elements that data could have injected: an image or link to the trap, the `<img src=x>` of a label, and bold or
# italic text whose content is the `**bold**` / `__bold__` of data.
INJECTED_JS = """() => {
  const found = [];
  for (const e of document.querySelectorAll('img, a, strong, b, em, i, iframe, script')) {
    const src = e.getAttribute('src') || '', href = e.getAttribute('href') || '';
    if (src.includes('127.0.0.1:1') || href.includes('127.0.0.1:1') || src === 'x' || e.hasAttribute('onerror')
        || (['STRONG', 'B', 'EM', 'I'].includes(e.tagName) && e.textContent.trim() === 'bold'))
      found.push(e.outerHTML.slice(0, 200));
  }
  return found;
}"""
LEGEND_JS = "() => Array.from(document.querySelectorAll('.legendtext')).map(e => e.textContent)"


def test_hostile_data_shows_as_text_on_every_page(hostile_app):
    from playwright.sync_api import sync_playwright

    from scripts.check_pages import launch, problems, wait_idle

    url = hostile_app
    dialogs, trapped, injected, missing, accept_buttons = [], [], {}, {}, []

    def visit(pg, path: str, title: str, expect: list[str], action=None) -> None:
        pg.goto(f"{url}/{path}", wait_until="domcontentloaded")
        pg.get_by_role("heading", name=title).wait_for(timeout=120_000)
        wait_idle(pg, 120)
        if action:
            action(pg)
            wait_idle(pg, 120)
        assert problems(pg) == [], title
        injected[title] = pg.evaluate(INJECTED_JS)
        # the word joiner that keeps a URL from becoming a link is invisible
        body = (pg.inner_text("body") + "\n".join(pg.evaluate(LEGEND_JS))).replace(WORD_JOINER, "")
        missing[title] = [v for v in expect if v not in body]

    def draw_map(pg) -> None:
        pg.get_by_text("PCA", exact=True).click()
        pg.get_by_role("button", name="Draw map").click()
        pg.locator(".legendtext").first.wait_for(timeout=120_000)

    def run_audit(pg) -> None:
        pg.get_by_role("button", name="Run audit").click()
        pg.get_by_role("button", name="Accept '").first.wait_for(timeout=120_000)
        accept_buttons.extend(pg.get_by_role("button", name="Accept '").all_inner_texts())

    def search_point(pg) -> None:
        pg.get_by_role("tab", name="Point").click()
        pg.get_by_label("Point id").fill("2")
        pg.get_by_label("Point id").press("Enter")
        wait_idle(pg, 60)
        pg.get_by_role("button", name="More like this").click()
        pg.get_by_text("Qdrant query").wait_for(timeout=120_000)

    def draw_graph(pg) -> None:
        pg.get_by_role("button", name="Draw graph").click()
        pg.locator(".legendtext").first.wait_for(timeout=120_000)

    with sync_playwright() as p:
        browser = launch(p)
        pg = browser.new_page(viewport={"width": 1400, "height": 1600})
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.on("request", lambda r: trapped.append(r.url) if TRAP in r.url else None)
        try:
            visit(pg, "", "Collections", HOSTILE + [VECTOR, COLLECTION])  # label rows, the Vectors metric
            visit(pg, "explore", "Explore", HOSTILE + [f"Vector: {VECTOR}"], draw_map)  # legend, vector caption
            visit(pg, "audit", "Audit", HOSTILE[1:2], run_audit)  # given labels; button labels below
            visit(pg, "search", "Search", [f"Vector: {VECTOR}", HOSTILE[0] + ".png"], search_point)
            visit(pg, "graph", "Graph", HOSTILE, draw_graph)  # legend
        finally:
            browser.close()
    # 6 hostile values (plus the vector and collection names) on 5 pages: nothing ran, loaded or rendered
    assert dialogs == []
    assert trapped == []
    assert {page: found for page, found in injected.items() if found} == {}
    assert {page: gone for page, gone in missing.items() if gone} == {}
    # "Accept '<suggested label>'": the label as it is (shortened to 20 characters), not rendered
    assert accept_buttons and {b.replace(WORD_JOINER, "") for b in accept_buttons} <= \
        {f"Accept '{payload_text(v, 20)}'" for v in HOSTILE}, accept_buttons
