"""docker-compose.yml and the Dockerfile are real files users run; check what a typo would break."""
import yaml

from tests.conftest import ROOT


def test_compose_runs_pinned_qdrant_and_points_the_app_at_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    qdrant, app = compose["services"]["qdrant"], compose["services"]["app"]
    image, tag = qdrant["image"].split(":")
    assert image == "qdrant/qdrant" and tag.startswith("v") and tag != "latest"
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert "healthcheck" in qdrant and "6333" in " ".join(qdrant["healthcheck"]["test"])
    assert app["environment"]["QDRANT_URL"] == "http://qdrant:6333"
    assert app["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert app["build"] == "."


def test_dockerfile_copies_what_the_app_imports():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("core", "ui", "app_pages", "app.py", "requirements.txt"):
        assert f"COPY {part}" in dockerfile
    assert "torch==2.14.1 torchvision==0.29.1" in dockerfile
