"""The notebook API (core.api): the same calls the CLI makes, with the store from the settings or given."""
import pandas as pd
import pytest

from core import api
from core.formats.export import ExportError
from core.store import open_store
from tests.fakes import ColorEmbedder, write_image


def test_ingest_audit_export_from_python(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLAS_STORE_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    for label, color in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
        for i in range(6):
            write_image(tmp_path / "colors" / label / f"{i}.png", tuple(min(255, c + 4 * i) for c in color))
    write_image(tmp_path / "colors" / "blue" / "odd.png", (225, 25, 35))  # a red image filed under blue
    report = api.ingest(tmp_path / "colors", "colors", model=ColorEmbedder())
    assert report.added == 19
    audit = api.audit("colors", checks=["label"], threshold=0.3, write_scores=True)
    flagged = set(audit.suspects("label")["id"])
    assert flagged
    out = api.export("colors", tmp_path / "out" / "all.csv", audit=audit)
    table = pd.read_csv(tmp_path / "out" / "all.csv", dtype=str, keep_default_na=False)
    assert out.exported == 19 and set(table.loc[table["is_label_issue"] == "True", "id"]) == set(map(str, flagged))
    suspects = api.export("colors", tmp_path / "out" / "suspects.json", audit=audit, suspects_only=True)
    assert suspects.format == "labelstudio" and suspects.exported == len(flagged)
    with pytest.raises(ExportError, match="Say which format"):
        api.export("colors", tmp_path / "tree")
    with pytest.raises(ExportError, match="Unknown export format"):
        api.export("colors", tmp_path / "tree", format="coco")
    with open_store(path=str(tmp_path / "qdrant")) as store:  # an open store is used as given, and left open
        tree = api.export("colors", tmp_path / "tree", format="imagefolder", store=store, labels=["red"])
        assert tree.exported == 6 and store.count("colors") == 19
        payload = store.scroll("colors", with_vectors=False, limit=1).payloads[0]
    assert "label_score" in payload and "audit_at" in payload  # write_scores stored them
