import re

import pytest

from core import settings
from tests.conftest import ROOT


def test_environment_beats_secrets_beats_default(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('ATLAS_BATCH_SIZE = 8\nQDRANT_URL = "http://from-secrets:6333"\n')
    monkeypatch.delenv("ATLAS_BATCH_SIZE", raising=False)
    monkeypatch.delenv("QDRANT_URL", raising=False)
    assert settings.get("ATLAS_BATCH_SIZE", secrets) == 8
    assert settings.get("QDRANT_URL", secrets) == "http://from-secrets:6333"
    monkeypatch.setenv("ATLAS_BATCH_SIZE", "64")
    assert settings.get("ATLAS_BATCH_SIZE", secrets) == 64
    assert settings.get("ATLAS_MODEL", tmp_path / "missing.toml") == "auto"


def test_bad_number_names_the_setting(monkeypatch):
    monkeypatch.setenv("ATLAS_BATCH_SIZE", "lots")
    with pytest.raises(ValueError, match="ATLAS_BATCH_SIZE"):
        settings.get("ATLAS_BATCH_SIZE")


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in settings.SETTINGS if f"`{s.name}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_core_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", p.read_text(), re.M)]
    assert not offenders


def test_on_off_settings_and_where_a_value_comes_from(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('QDRANT_URL = "http://qdrant:6333"\n')
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("ATLAS_ALLOW_PRIVATE_HOSTS", raising=False)
    assert settings.source("QDRANT_URL", secrets) == "secrets"
    assert settings.source("QDRANT_URL", tmp_path / "missing.toml") == "default"
    monkeypatch.setenv("QDRANT_URL", "http://other:6333")
    assert settings.source("QDRANT_URL", secrets) == "environment"
    assert settings.is_on("ATLAS_ALLOW_PRIVATE_HOSTS") is False
    for value, expected in (("on", True), ("ON", True), ("true", True), ("1", True), ("off", False), ("no", False)):
        monkeypatch.setenv("ATLAS_ALLOW_PRIVATE_HOSTS", value)
        assert settings.is_on("ATLAS_ALLOW_PRIVATE_HOSTS") is expected
