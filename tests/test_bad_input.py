"""A corpus of bad input (ids, payloads, images, command-line arguments, page inputs). Every case ends in a clear
message or a placeholder, never a traceback or a crashed page. Real engines, real images, no mocks."""
import io
import os
import struct
import subprocess
import sys
import time
import uuid
import zlib

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import cli, images, thumbnails
from core.ingest import ingest
from core.search import SearchError, image_query_vector, point_vector, read_image_file, recommend, search
from core.store import InvalidPointId, StoreError, open_store, parse_point_id
from tests.conftest import ROOT, unit_rows
from tests.fakes import ColorEmbedder, write_image

U = "6f1c9a52-8a5e-4b1a-9c3d-00000000000a"

# --- ids -------------------------------------------------------------------------------------------------------
GOOD_IDS = [("7", 7), (" 42 ", 42), (0, 0), (2**64 - 1, 2**64 - 1), (np.int64(5), 5), (U.upper(), U),
            (U.replace("-", ""), U), (f"  {U.upper().replace('-', '')}  ", U), (uuid.UUID(U), U), (f"{{{U}}}", U)]
BAD_IDS = ["img04772.png", "", "   ", "6f1c9a52-8a5e", U + "0", "g" * 32, "-1", "1.5", "１２", "99999999999999999999999",
           -1, 2**64, 99999999999999999999999, 1.5, float("nan"), True, None, [1], {"id": 1}, "a\0b", "x" * 5000]


@pytest.mark.parametrize("raw,expected", GOOD_IDS, ids=repr)
def test_id_forms_are_normalised(raw, expected):
    assert parse_point_id(raw) == expected


@pytest.mark.parametrize("raw", BAD_IDS, ids=lambda v: repr(v)[:30])
def test_bad_ids_say_what_an_id_looks_like(raw):
    with pytest.raises(InvalidPointId) as err:
        parse_point_id(raw)
    assert "UUID" in str(err.value) and "whole number" in str(err.value)
    assert len(str(err.value)) < 400  # a 5,000-character input is not echoed whole


@pytest.fixture
def filled(store):
    store.create_collection("c", {"m": 4})
    store.upsert("c", [U, 3], {"m": unit_rows(2, 4)}, [{"label": "a"}, {"label": "b"}])
    return store


@pytest.mark.parametrize("raw", ["img04772.png", -1, 2**64, "99999999999999999999999"], ids=repr)
def test_every_engine_refuses_bad_ids_with_the_same_message(filled, raw):
    for call in (lambda: filled.retrieve("c", [raw]), lambda: filled.set_payload("c", [raw], {"x": 1}),
                 lambda: filled.delete("c", [raw]),
                 lambda: filled.upsert("c", [raw], {"m": unit_rows(1, 4)}, [{}])):
        with pytest.raises(InvalidPointId, match="not a point id|out of range"):
            call()
    assert filled.count("c") == 2  # nothing was written or deleted


@pytest.mark.parametrize("raw", [U.upper(), U.replace("-", ""), "{" + U + "}", " 3 ", np.uint64(3)], ids=repr)
def test_every_engine_finds_a_point_under_any_spelling_of_its_id(filled, raw):
    got = filled.retrieve("c", [raw], vector="m", with_vectors=True)
    assert got.ids == [parse_point_id(raw)] and got.vectors.shape == (1, 4)
    assert point_vector(filled, "c", raw, "m").shape == (4,)


def test_search_helpers_turn_bad_ids_into_search_errors(filled):
    with pytest.raises(SearchError, match="not a point id"):
        point_vector(filled, "c", "img04772.png", "m")
    with pytest.raises(SearchError, match="not a point id"):
        recommend(filled, "c", positive_ids=["img04772.png"], using="m")


@pytest.mark.parametrize("opts,match", [({"k": 0}, "number of results"), ({"k": -5}, "number of results"),
                                        ({"k": 10**9}, "number of results"), ({"hnsw_ef": -1}, "hnsw_ef"),
                                        ({"hnsw_ef": 0}, "hnsw_ef"), ({"min_score": float("nan")}, "minimum score"),
                                        ({"min_score": 2.0}, "minimum score"), ({"min_score": -1.5}, "minimum score")],
                         ids=repr)
def test_bad_query_options_are_refused(filled, opts, match):
    with pytest.raises(SearchError, match=match):
        search(filled, "c", unit_rows(1, 4)[0], using="m", **opts)


# --- payloads ----------------------------------------------------------------------------------------------------
ODD_KEYS = ["class name", "a.b", "ünïcode", "1st", "[x]", "a-b", "tab\tkey", "emoji 🍎", "x" * 300]


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:20])
def test_odd_payload_keys_work_in_counts_and_filters(store, key):
    store.create_collection("c", {"m": 4})
    store.upsert("c", [1, 2, 3], {"m": unit_rows(3, 4)},
                 [{key: "x", "a": {"b": "nested"}}, {key: "y"}, {key: "x", "label": "z"}])
    assert store.count_by("c", key) == {"x": 2, "y": 1}
    assert store.count("c", {key: "x"}) == 2 and store.count("c", {key: ["x", "y"]}) == 3
    assert store.scroll("c", with_vectors=False, filter={key: "y"}, payload_keys=[key]).payloads == [{key: "y"}]


def test_keys_qdrant_cannot_name_are_counted_and_filtering_on_them_is_explained(store):
    key = 'say "hi"'
    store.create_collection("c", {"m": 4})
    store.upsert("c", [1, 2], {"m": unit_rows(2, 4)}, [{key: "x"}, {key: "x"}])
    assert store.count_by("c", key) == {"x": 2}  # counted from whole payloads instead
    with pytest.raises(StoreError, match="quote or backslash.*rename"):
        store.count("c", {key: "x"})
    with pytest.raises(StoreError, match="non-empty"):
        store.count("c", {"": "x"})


@pytest.mark.parametrize("value,expected", [([1, "a"], 2), (1.0, 1), ([], 0), ("1", 0), ([True], 1)], ids=repr)
def test_filters_on_non_string_labels(store, value, expected):
    store.create_collection("c", {"m": 4})
    store.upsert("c", [1, 2, 3], {"m": unit_rows(3, 4)}, [{"v": 1}, {"v": "a"}, {"v": True}])
    assert store.count("c", {"v": value}) == expected


@pytest.mark.parametrize("value", [1.5, None, {"a": 1}, [[1]]], ids=repr)
def test_unmatchable_filter_values_are_explained(store, value):
    store.create_collection("c", {"m": 4})
    with pytest.raises(StoreError, match="matches text, whole numbers"):
        store.count("c", {"v": value})


@pytest.fixture
def image_root(tmp_path):
    write_image(tmp_path / "ok" / "a.png", (200, 10, 10))
    return tmp_path


BAD_PATH_PAYLOADS = [{"path": "a\0b.png"}, {"path": "x" * 5000}, {"path": ("y" * 250 + "/") * 40}, {"path": 5},
                     {"path": None}, {"path": {"nested": "a.png"}}, {"path": ["ok/a.png"]}, {"path": "../../etc/passwd"},
                     {"path": "ok"}, {"path": "/etc/hostname"}, {"image_url": "http://exa\0mple.com/a.png"},
                     {"image_url": "ftp://example.com/a.png"}, {"image_url": "file:///etc/passwd"},
                     {"image_url": "javascript:alert(1)"}, {"image_url": 12}, {}]


@pytest.mark.parametrize("payload", BAD_PATH_PAYLOADS, ids=lambda p: repr(p)[:30])
def test_bad_image_paths_give_no_thumbnail(image_root, payload):
    assert thumbnails.thumbnail(payload, image_root, cache_dir=image_root / "thumbs") is None
    assert thumbnails.thumbnail({"path": "ok/a.png"}, image_root).size == (32, 32)  # the good one still works


# --- images ------------------------------------------------------------------------------------------------------
def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and carries almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def _gif_animated() -> bytes:
    frames = [Image.new("P", (20, 10), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def _jpeg_cmyk() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (20, 10), (0, 200, 200, 0)).save(buf, "JPEG")
    return buf.getvalue()


GOOD_PNG = _png(Image.new("RGB", (30, 20), (10, 200, 10)))
IMAGES = {  # name: (bytes, None when it must decode to RGB, else a words the reason must contain)
    "zero-byte": (b"", "empty"),
    "text": (b"hello, not an image", "not an image"),
    "truncated": (GOOD_PNG[: len(GOOD_PNG) // 2], "truncated"),
    "header 100000x100000": (_png_header(100_000, 100_000), "too many pixels"),
    "header 65535x65535": (_png_header(65535, 65535), "too many pixels"),
    "5000x1 strip": (_png(Image.new("L", (5000, 1))), "extreme shape"),
    "1x5000 strip": (_png(Image.new("L", (1, 5000))), "extreme shape"),
    "200000x1 strip": (_png(Image.new("1", (200_000, 1))), "extreme shape"),
    "101x1 strip": (_png(Image.new("L", (101, 1))), "extreme shape"),
    "100x1 strip": (_png(Image.new("L", (100, 1))), None),
    "1x1": (_png(Image.new("RGB", (1, 1))), None),
    "animated gif": (_gif_animated(), None),
    "16-bit": (_png(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)), None),
    "cmyk jpeg": (_jpeg_cmyk(), None),
    "palette with transparency": (_png(Image.new("P", (8, 8), 3), transparency=3), None),
    "greyscale+alpha": (_png(Image.new("LA", (8, 8), (40, 100))), None),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_weird_images_decode_or_say_why(name):
    data, reason = IMAGES[name]
    if reason is None:
        out = images.decode(data, 50_000_000)
        assert out.image.mode == "RGB" and min(out.image.size) >= 1
    else:
        with pytest.raises(images.BadImage, match=reason):
            images.decode(data, 50_000_000)


@pytest.fixture(scope="module")
def effnet():
    from core.models.effnet import EffNetLite0

    return EffNetLite0()


@pytest.mark.parametrize("size", [(5000, 1), (1, 200_000), (30_000, 7)], ids=str)
def test_model_preprocessing_stays_small_for_extreme_shapes(effnet, size):
    # Images that skip decode() (a library caller) are cropped to 100:1 before the short side goes to 224.
    assert images.limit_aspect(Image.new("RGB", size)).size in {(100 * min(size), min(size)),
                                                               (min(size), 100 * min(size))}
    assert tuple(effnet.preprocess(Image.new("RGB", size)).shape) == (3, 224, 224)


@pytest.mark.parametrize("name", [n for n, (_, reason) in IMAGES.items() if reason])
def test_bad_uploads_give_a_search_error(effnet, name):
    with pytest.raises(SearchError, match="cannot be used as an image"):
        image_query_vector(effnet, IMAGES[name][0], 10**7, 50_000_000)


def test_ingest_skips_bad_images_and_reports_why(tmp_path):
    folder = tmp_path / "imgs"
    write_image(folder / "ok" / "good.png", (10, 200, 10))
    for name, (data, reason) in IMAGES.items():
        path = folder / "odd" / (name.replace(" ", "_") + (".gif" if "gif" in name else ".png"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with open_store(path=str(tmp_path / "q")) as store:
        report = ingest(store, folder, "c", ColorEmbedder(), cache_dir=tmp_path / "cache")
        reasons = {s.path: s.reason for s in report.skipped}
        assert report.added == 1 + sum(reason is None for _, reason in IMAGES.values())
        for name, (_, reason) in IMAGES.items():
            if reason:
                [got] = [r for p, r in reasons.items() if name.replace(" ", "_") in p]
                assert reason in got


def test_a_huge_query_file_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:
        f.truncate(10**9)  # 1 GB, sparse: refused from the file system's size, never read
    started = time.perf_counter()
    with pytest.raises(SearchError, match="1000.0 MB; the limit is 20 MB"):
        read_image_file(big, 20 * 10**6)
    assert time.perf_counter() - started < 0.5
    with pytest.raises(SearchError, match="is a folder"):
        read_image_file(tmp_path, 20 * 10**6)
    with pytest.raises(SearchError, match="does not exist"):
        read_image_file(tmp_path / "nope.jpg", 20 * 10**6)


# --- command line ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with open_store(path=str(root / "q")) as s:
        s.create_collection("c", {"m": 8})
        # three exact copies (same sha1): the duplicate check must flag them
        s.upsert("c", list(range(1, 31)), {"m": x}, [{"label": f"c{i % 3}", "sha1": "same" if i < 3 else str(i)}
                                                      for i in range(30)])
    (root / "folder").mkdir()
    with (root / "big.jpg").open("wb") as f:
        f.truncate(10**9)
    return root


CLI_CASES = [  # (arguments after the verb's --collection c, words stderr must contain)
    ("search --point 1 --k -5", "--k must be"),
    ("search --point 1 --k 0", "--k must be"),
    ("search --point 1 --k 100000000", "--k must be"),
    ("search --point 1 --hnsw-ef -1", "--hnsw-ef must be"),
    ("search --point 1 --hnsw-ef 0", "--hnsw-ef must be"),
    ("search --point 99999999999999999999999", "out of range"),
    ("search --point -1", "out of range"),
    ("search --point img04772.png", "not a point id"),
    ("search --point 1 --min-score nan", "--min-score"),
    ("search --point 1 --min-score inf", "--min-score"),
    ("search --point 1 --min-score 2", "--min-score"),
    ("search --point 12345", "No point with id 12345"),
    ("search --text", "expected one argument"),
    ("search --image {root}/folder", "is a folder"),
    ("search --image {root}/missing.jpg", "does not exist"),
    ("search --image {root}/big.jpg", "1000.0 MB; the limit"),
    ("audit --k 0", "--k must be"),
    ("audit --k -3", "--k must be"),
    ("audit --threshold 2", "--threshold"),
    ("audit --threshold nan", "--threshold"),
    ("audit --threshold -0.1", "--threshold"),
    ("audit --checks ''", "--checks"),
    ("audit --checks label,bogus", "unknown: bogus"),
    ("audit --k abc", "argument --k: invalid int value"),
    ("audit --operating-point fast", "--operating-point: Unknown operating point"),
    ("audit --operating-point 1.5", "--operating-point: A target precision must lie between 0 and 1"),
    ("audit --operating-point 0", "--operating-point: A target precision"),
    ("audit --operating-point nan", "--operating-point: A target precision"),
    ("audit --operating-point ''", "--operating-point: Unknown operating point"),
    ("audit --duplicate-similarity 2", "--duplicate-similarity is a cosine"),
    ("audit --duplicate-similarity nan", "--duplicate-similarity is a cosine"),
    ("review --operating-point sometimes", "--operating-point: Unknown operating point"),
    ("review --limit -1", "--limit must be"),
    ("review --k 0", "--k must be"),
    ("review --rerank-every -2", "--rerank-every must be"),
    ("relabel --point img04772.png --label c1", "not a point id"),
    ("relabel --point 1 --label c9", "--new-label"),
    ("project --n-neighbors 0", "--n-neighbors"),
    ("project --max-points -1", "--max-points"),
    ("project --seed -1", "--seed"),
    ("project --perplexity 0", "--perplexity"),
]


@pytest.mark.parametrize("args,words", CLI_CASES, ids=[a for a, _ in CLI_CASES])
def test_cli_bad_arguments_exit_with_a_message(cli_store, capsys, args, words):
    import shlex

    verb, *rest = shlex.split(args.format(root=cli_store))
    argv = [verb, "--collection", "c", *rest, "--store-path", str(cli_store / "q")]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own syntax errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == (2 if "argument" in words else 1), err
    assert words in err and "Traceback" not in err


def test_cli_in_a_real_process_exits_1_without_a_traceback(cli_store):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args in (["search", "--point", "-1"], ["search", "--point", "1", "--k", "-5"], ["audit", "--k", "0"]):
        out = subprocess.run([sys.executable, "-m", "core", *args, "--collection", "c", "--store-path",
                              str(cli_store / "q")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr, out.stderr


def test_cli_duplicate_count_matches_the_csv(cli_store, capsys, monkeypatch):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(cli_store / "cache"))
    out_csv = cli_store / "s.csv"
    assert cli.main(["audit", "--collection", "c", "--store-path", str(cli_store / "q"), "--out", str(out_csv)]) == 0
    import pandas as pd

    table = pd.read_csv(out_csv)
    printed = capsys.readouterr().out
    assert int(table["is_duplicate_issue"].sum()) == 3
    assert "duplicate: 3 flagged" in printed


@pytest.mark.parametrize("label", ["", "   "], ids=repr)
def test_cli_blank_labels_exit_1(cli_store, capsys, label):
    # core.labels refuses a blank label with LabelError; the CLI prints it as an error, not a traceback
    code = cli.main(["relabel", "--collection", "c", "--point", "1", "--label", label, "--new-label", "--store-path",
                     str(cli_store / "q")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "blank" in err and "Traceback" not in err


# --- pages (AppTest) -------------------------------------------------------------------------------------------
@pytest.fixture
def app_env(tmp_path, monkeypatch):
    folder = tmp_path / "fruit"
    for label, n in {"apple": 4, "banana": 3}.items():
        for i in range(n):
            write_image(folder / label / f"{i}.png", (40 * i, 100, 200 if label == "apple" else 20))
    store_path = tmp_path / "qdrant"
    with open_store(path=str(store_path)) as store:
        ingest(store, folder, "fruits", ColorEmbedder(), cache_dir=tmp_path / "cache")
        ids = store.scroll("fruits", with_vectors=False).ids
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    return store_path, ids


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.mark.parametrize("bad", ["img04772.png", "-1", "99999999999999999999999", "6f1c9a52-8a5e"])
def test_search_point_tab_bad_id_is_explained(app_env, bad):
    _, ids = app_env
    at = _app().run()
    at.switch_page("app_pages/search.py").run()
    at.text_input(key="search_point").set_value(bad).run()
    at.button(key="search_by_point").click().run()
    assert not at.exception, at.exception
    assert any("not a point id" in e.value or "out of range" in e.value for e in at.error)
    at.text_input(key="search_point").set_value(ids[0].upper()).run()  # an upper-case UUID is found
    at.button(key="search_by_point").click().run()
    assert not at.exception, at.exception
    assert not at.error and any("results" in c.value for c in at.caption)


def test_graph_around_a_bad_id_is_explained_and_the_page_recovers(app_env):
    _, ids = app_env
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    at.selectbox(key="graph_source").set_value("Around points (ids)")
    at.text_input(key="graph_ids").set_value(f"{ids[0]}, img04772.png")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("img04772.png" in e.value and "not a point id" in e.value for e in at.error)
    assert "graph_request" not in at.session_state
    at.run()  # a rerun (any widget) does not bring the error back as a crash
    assert not at.exception and not at.error
    at.text_input(key="graph_ids").set_value(ids[1].upper())
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error and any("nodes" in c.value and "edges" in c.value for c in at.caption)


def test_graph_drops_a_broken_request_left_in_the_session(app_env):
    at = _app().run()
    at.switch_page("app_pages/graph.py").run()
    at.session_state["graph_request"] = {"collection": "fruits", "start": ["img04772.png"], "sample": 10, "k": 3,
                                         "tree": False, "layout": "force-directed", "filter": None}
    at.run()
    assert not at.exception, at.exception
    assert any("cannot be drawn" in e.value for e in at.error)
    at.run()
    assert not at.exception and not at.error  # the broken request is gone: the page is usable again
    at.button[0].click().run()  # a sample graph
    assert any("nodes" in c.value for c in at.caption)


def test_bad_paths_in_payloads_show_placeholders_on_the_collections_page(app_env):
    store_path, ids = app_env
    with open_store(path=str(store_path)) as store:
        store.set_payload("fruits", ids[:1], {"path": "apple/\0.png"})
        store.set_payload("fruits", ids[1:2], {"path": "x" * 5000})
    at = _app().run()
    assert not at.exception, at.exception
    # galleries are one image-list element per row: count the images inside them
    shown = [img for e in at.main if getattr(e, "type", "") == "image" for img in e.proto.imgs]
    assert len(shown) == 7  # every sample drew: the two bad paths as placeholders


def test_a_label_key_with_a_space_works_in_the_sidebar_and_pages(tmp_path, monkeypatch):
    store_path = tmp_path / "qdrant"
    with open_store(path=str(store_path)) as store:
        store.create_collection("odd", {"test-color": 4})
        store.upsert("odd", list(range(1, 7)), {"test-color": unit_rows(6, 4)},
                     [{"class name": "cat" if i % 2 else "dog", "file_name": f"{i}.png"} for i in range(6)])
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    at = _app().run()
    assert not at.exception, at.exception
    [counts] = [d.value for d in at.dataframe if list(d.value.columns) == ["label", "points"]]
    assert dict(zip(counts["label"], counts["points"])) == {"cat": 3, "dog": 3}
    at.switch_page("app_pages/search.py").run()
    at.multiselect(key="search_labels").set_value(["cat"])
    at.text_input(key="search_point").set_value("1")
    at.button(key="search_by_point").click().run()
    assert not at.exception, at.exception
    assert {t.value.split()[1] for t in at.text if t.value[:1].isdigit() or t.value[:1] == "-"} == {"cat"}


ODD_LABELS = [1, 2.5, None, {"a": 1}, ["x"], "x" * 5000, "nul\0label", True, "ok", "ok", "a.b", "", "<b>html</b>"]


@pytest.mark.parametrize("page", ["app_pages/collections.py", "app_pages/explore.py", "app_pages/audit.py",
                                  "app_pages/search.py", "app_pages/graph.py"])
def test_odd_payloads_never_crash_a_page(tmp_path, monkeypatch, page):
    """Labels of every JSON type, NUL bytes, 5,000-character strings, nested payloads, keys with NUL bytes."""
    store_path = tmp_path / "qdrant"
    with open_store(path=str(store_path)) as store:
        store.create_collection("odd", {"test-color": 4})
        store.upsert("odd", list(range(1, len(ODD_LABELS) + 1)), {"test-color": unit_rows(len(ODD_LABELS), 4)},
                     [{"label": lab, "path": "\0" if i % 2 else "y" * 5000, "file_name": lab if i % 3 else None,
                       "a\0b": 1, "deep": {"x": {"y": [1, {"z": 2}]}}} for i, lab in enumerate(ODD_LABELS)])
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    at = _app().run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    if page.endswith("search.py"):
        at.text_input(key="search_point").set_value("4").run()
        at.button(key="search_by_point").click().run()
        assert any("results" in c.value for c in at.caption)
    elif not page.endswith("collections.py"):
        if page.endswith("explore.py"):
            at.radio(key="explore_method").set_value("PCA")
        at.button[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
