"""Issue 14: a new user finds and fixes the demo's 40 planted mislabels with the app alone, no docs.

A real headless Chromium against a real `streamlit run` on a fresh copy of the quick start's demo (2,000
Fashion-MNIST images, 40 of them filed under a wrong label), built in a temporary folder by the same command the
quick start runs (`python -m core demo`). The user does only what the pages say: opens the app, goes to Audit,
presses Run audit, and works down the suspects from the top, one card at a time, with the buttons on the card:
"Accept '<suggestion>'" when the suggestion is what the image shows, "Mark correct" when the given label is, and
"Other label…" + "Relabel" when neither is. When the list is empty they switch "Flag label issues" to Recall-first
(the page's own hint for finding more), run the audit again and go on until a page's worth of suspects in a row
(10) were all correctly labeled, which is when a person would conclude that the rest is clean.

The user's eyes are the demo's ground truth (data/demo/ground_truth.csv): what a person sees in the image is its
true class. Reading the card (given label, file name, suggestion) and pressing buttons is all it does; nothing is
read from the store until the app is stopped. Then the store, not the UI, says how many of the 40 planted points
carry their true label, how many correct labels were changed, and whether every change left a history.

Prints the figures (fixed, wrongly changed, decisions, clicks, seconds). Measured on a 2-core machine shared with
other work (load 8): ingest 120-260 s, then 180-310 s in the browser for 57-59 decisions (63-65 clicks); 38 of 40
fixed, none wrongly changed; 5-8 min in all. On an idle machine the ingest takes 20-50 s (README).
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from core.store import StoreLocked, open_store
from scripts.check_pages import CHROMIUM, launch, wait_idle
from tests.conftest import ROOT, streamlit_app

PLANTED = 40  # what the quick start promises: 2,000 images with 40 planted mislabels
STREAK_CLEAN = 10  # a page's worth of correct labels in a row: the user concludes the rest is clean
MAX_DECISIONS = 160  # a person's patience; a broken page must not loop forever
MAX_SECONDS = 900
WAIT_MS = 180_000
# a suspect's card, as the page writes it: "given: <label>\n<file name>\nlabel score <s>\nsuggested: <label>"
CARD = re.compile(r"given: (\S+)\n(\S+)\n(?:label score \S+\nsuggested: (\S+))?")
RERANKING = "Re-ranking with your"


@dataclass
class Session:
    """What the user did: one entry per decision, and every click."""
    clicks: int = 0
    # phase, file name, given label, suggested label, action
    decisions: list[tuple[str, str, str, str | None, str]] = field(default_factory=list)
    duplicate_buttons: int = 0  # cards that showed two buttons of one kind (the previous card's left behind)
    retries: int = 0  # clicks that did not register and were made again


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The quick start's demo, built and ingested by its own command into a temporary store."""
    assert os.path.exists(CHROMIUM), "Chromium is needed: apt-get install chromium (scripts/test.sh does it)"
    tmp = tmp_path_factory.mktemp("new_user")
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_URL"} | {
        "HF_HUB_OFFLINE": "1", "ATLAS_CACHE_DIR": str(tmp / "cache"), "ATLAS_STORE_PATH": str(tmp / "qdrant")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "demo", "--out", str(tmp / "demo"), "--collection", "demo",
                    "--quiet"], cwd=ROOT, env=env, check=True, timeout=900)
    print(f"\ndemo built and ingested in {time.perf_counter() - started:.0f} s", flush=True)
    with open(tmp / "demo" / "ground_truth.csv", newline="") as f:
        truth = {row["path"]: row for row in csv.DictReader(f)}
    return tmp, truth


def read_store(path: Path):
    """Every point's payload, once the stopped app has let go of the embedded store (its lock)."""
    deadline = time.time() + 60
    while True:
        try:
            with open_store(path=str(path)) as store:
                return store.scroll("demo", with_vectors=False)
        except StoreLocked:
            if time.time() > deadline:
                raise
            time.sleep(1)


def click(session: Session, locator) -> None:
    locator.click()
    session.clicks += 1


def run_audit(page, session: Session) -> None:
    click(session, page.get_by_role("button", name="Run audit"))
    page.get_by_text("most likely wrong first").wait_for(timeout=WAIT_MS)
    wait_idle(page, WAIT_MS / 1000)


def one_button(session: Session, card, name) -> object:
    """The card's button of that name. A card that shows two (the previous card's left behind for a few seconds
    after a decision) is counted; the user presses the first, as a person reading top-down would."""
    buttons = card.get_by_role("button", name=name)
    if buttons.count() > 1:
        session.duplicate_buttons += 1
    return buttons.first


def decide(page, session: Session, truth_by_file: dict, phase: str, done: int) -> str | None:
    """One decision on the top card; returns what was done (None when no card is left)."""
    wait_idle(page, WAIT_MS / 1000)
    cards = page.locator("[data-testid='stHorizontalBlock']:visible").filter(has_text="given:")
    if not cards.count():
        if page.get_by_text(RERANKING).count():  # the list may refill when the re-rank lands
            page.get_by_text(RERANKING).first.wait_for(state="detached", timeout=WAIT_MS)
            return decide(page, session, truth_by_file, phase, done)
        return None
    try:
        text = cards.first.inner_text(timeout=10_000)
    except Exception:  # the card left while the user looked (a re-rank landed and redrew the list): look again
        session.retries += 1
        if session.retries > 50:
            raise
        return decide(page, session, truth_by_file, phase, done)
    m = CARD.search(text)
    assert m, f"a suspect's card no longer reads 'given: <label>\\n<file>': {cards.first.inner_text()[:200]!r}"
    given, file_name, suggested = m.groups()
    row = truth_by_file[file_name]
    true = row["true_label"]
    card = cards.filter(has_text=file_name)  # re-found at each click: the list may re-order meanwhile
    action = "accept" if suggested == true else "confirm" if given == true else "relabel"
    for attempt in range(3):
        try:
            if action == "accept":
                click(session, one_button(session, card, f"Accept '{true}'"))
            elif action == "confirm":
                click(session, one_button(session, card, "Mark correct"))
            else:
                box = card.get_by_role("combobox").first
                click(session, box)
                box.press_sequentially(true)  # the list filters as one types
                click(session, page.get_by_role("option", name=true, exact=True))
                click(session, one_button(session, card, "Relabel"))
        except PlaywrightTimeout:
            # the card left or changed while the user reached for it (a re-rank redrew the list): look again
            session.retries += 1
            if session.retries > 50:
                raise
            return decide(page, session, truth_by_file, phase, done)
        try:
            page.get_by_text(f"Fixed in this session: {done + 1}.").wait_for(timeout=30_000)
            break
        except Exception:  # the click landed on a button left behind by the previous card: the user tries again
            session.retries += 1
            wait_idle(page, WAIT_MS / 1000)
    else:
        raise AssertionError(f"three clicks to {action} {file_name} did not register")
    session.decisions.append((phase, file_name, given, suggested, action))
    return action


def test_new_user_finds_and_fixes_the_planted_mislabels(demo):
    from playwright.sync_api import sync_playwright

    tmp, truth = demo
    truth_by_file = {Path(p).name: row for p, row in truth.items()}
    planted = {p for p, row in truth.items() if row["planted_mislabel"] == "True"}
    assert len(planted) == PLANTED and len(truth) == 2000  # the demo is the one the README describes
    session = Session()
    env = {"ATLAS_STORE_PATH": str(tmp / "qdrant"), "ATLAS_CACHE_DIR": str(tmp / "cache")}
    with streamlit_app(**env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        wait_idle(page, WAIT_MS / 1000)
        click(session, page.get_by_role("link", name="Audit"))  # the sidebar's page list
        page.get_by_role("button", name="Run audit").wait_for(timeout=WAIT_MS)
        run_audit(page, session)
        first_flags = page.get_by_text(re.compile(r"^\d+ suspects?, most likely wrong first")).first.inner_text()
        done = 0
        for phase in ("Balanced", "Recall-first"):
            if phase != "Balanced":  # the list is empty: ask for more, as the operating points offer
                click(session, page.get_by_text(phase, exact=True))
                wait_idle(page, WAIT_MS / 1000)
                run_audit(page, session)
            clean_in_a_row = 0
            while clean_in_a_row < STREAK_CLEAN and done < MAX_DECISIONS \
                    and time.perf_counter() - started < MAX_SECONDS:
                action = decide(page, session, truth_by_file, phase, done)
                if action is None:
                    break
                done += 1
                clean_in_a_row = clean_in_a_row + 1 if action == "confirm" else 0
        seconds = time.perf_counter() - started
        browser.close()
    print(f"\nin the browser: {len(session.decisions)} decisions, {session.clicks} clicks, {seconds:.0f} s", flush=True)

    # --- what the store says, read after the app has stopped --------------------------------------------------------
    points = read_store(tmp / "qdrant")
    by_path = {pl["path"]: pl for pl in points.payloads}
    assert set(by_path) == set(truth)
    fixed = sorted(p for p in planted if by_path[p]["label"] == truth[p]["true_label"])
    wrongly_changed = sorted(p for p in truth if p not in planted and by_path[p]["label"] != truth[p]["given_label"])
    planted_still_wrong = sorted(p for p in planted if p not in fixed)
    changed = [p for p in truth if by_path[p]["label"] != truth[p]["given_label"]]
    without_history = [p for p in changed
                       if by_path[p].get("label_original") != truth[p]["given_label"]
                       or not by_path[p].get("label_history")
                       or by_path[p]["label_history"][-1].get("new") != by_path[p]["label"]]
    actions = Counter(a for *_, a in session.decisions)
    per_phase = Counter(ph for ph, *_ in session.decisions)
    found_by_phase = Counter(ph for ph, f, *_ in session.decisions
                             if truth_by_file[f]["path"] in planted)
    trusting = sum(1 for _, f, given, sugg, _ in session.decisions
                   if sugg is not None and sugg != truth_by_file[f]["true_label"])
    print(f"\nnew user on the demo: {len(fixed)} of {PLANTED} planted mislabels fixed, "
          f"{len(wrongly_changed)} correct labels wrongly changed, {len(changed)} labels changed in all; "
          f"{len(session.decisions)} decisions ({dict(actions)}; per phase {dict(per_phase)}, planted found per "
          f"phase {dict(found_by_phase)}), {session.clicks} clicks, {seconds:.0f} s in the browser. "
          f"First audit: {first_flags!r}. A user accepting every suggestion shown would have made {trusting} wrong "
          f"decisions. Cards showing a left-behind second button: {session.duplicate_buttons}; clicks that did not "
          f"register: {session.retries}.", flush=True)
    if planted_still_wrong:
        print("planted mislabels not fixed (path, now, true): "
              + ", ".join(f"{p} {by_path[p]['label']} {truth[p]['true_label']}" for p in planted_still_wrong))
    assert without_history == [], "label changes without history"
    assert wrongly_changed == [], "the user only pressed buttons for what the image shows: a correct label changed"
    # Reached on the demo: 38 of 40. The other two (a Shirt filed as Pullover, a Sandal filed as Sneaker) score
    # 0.22 for their wrong label, ranks ~166 of 2,000: below Recall-first's ~101 flags, so no operating point a
    # user would pick lists them. Leeway of two for the order decisions are made in (re-ranks land when ready).
    assert len(fixed) >= 36, f"only {len(fixed)} of {PLANTED} planted mislabels were fixed"
