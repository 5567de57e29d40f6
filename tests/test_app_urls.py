"""A reload or a shared link opens the same view: connection, collection and page settings live in the URL."""
from streamlit.testing.v1 import AppTest

from core.ingest import ingest
from core.store import open_store
from tests.conftest import ROOT
from tests.fakes import ColorEmbedder, write_image


def _app(**params: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    return at


def _add_collection(app_env, name: str) -> None:
    for label in ("red", "blue"):
        for i in range(3):
            write_image(app_env / name / label / f"{i}.png", (200 if label == "red" else 0, 30 * i, 90))
    with open_store(path=str(app_env / "qdrant")) as store:
        ingest(store, app_env / name, name, ColorEmbedder(), cache_dir=app_env / "cache")


def test_collection_choice_goes_into_the_url_and_a_link_restores_it(app_env):
    _add_collection(app_env, "zoo")
    at = _app().run()
    first = at.sidebar.selectbox(key="collection").value
    other = "zoo" if first != "zoo" else "fruits"
    at.sidebar.selectbox(key="collection").set_value(other).run()
    assert not at.exception
    assert at.query_params["collection"] == other
    # a new session (a reload) with that URL opens the same collection, not the first one
    again = _app(collection=other).run()
    assert not again.exception
    assert again.sidebar.selectbox(key="collection").value == other


def test_explore_link_redraws_the_same_map(app_env):
    at = _app(collection="fruits", method="PCA", map="1")
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception, at.exception
    assert at.radio(key="explore_method").value == "PCA"
    assert any(c.value.startswith("Showing 10 of 10 points") for c in at.caption)
    assert at.query_params["method"] == "PCA" and at.query_params["map"] == "1"


def test_stale_or_hostile_links_fall_back_to_defaults(app_env, tmp_path):
    missing = tmp_path / "no-such-folder"
    at = _app(collection="gone", method="<b>x</b>", color="nope", qdrant="embedded", store=str(missing))
    at.switch_page("app_pages/explore.py").run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="collection").value == "fruits"
    assert at.radio(key="explore_method").value == "UMAP"
    assert not missing.exists()  # a link never creates folders on the server
