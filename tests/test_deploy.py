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
    # nothing is reachable from the network until an operator says so (log-in is not configured by default)
    assert all(p.startswith("127.0.0.1:") for p in qdrant["ports"])
    assert app["ports"] == ["${ATLAS_BIND:-127.0.0.1}:8501:8501"]
    # shared safely by default: a locked connection, and server folders only under the two mounts
    assert app["environment"]["ATLAS_LOCK_CONNECTION"] == "on"
    assert app["environment"]["ATLAS_ALLOWED_ROOTS"].split(",") == ["/images", "/data"]
    mounts = {v.split(":")[1] for v in app["volumes"]}
    assert mounts == {"/images", "/data"}


def test_dockerfile_copies_what_the_app_imports():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("core", "ui", "app_pages", "app.py", "requirements.txt"):
        assert f"COPY {part}" in dockerfile
    assert "torch==2.14.1 torchvision==0.29.1" in dockerfile
    # installs are reproducible: the image takes the exact versions CI tested
    assert "COPY requirements.txt requirements.lock" in dockerfile
    assert dockerfile.count("-c requirements.lock") == 2


def test_lock_pins_every_requirement_exactly():
    import re

    def names(path):
        out = {}
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]
                out[re.sub(r"[-_.]+", "-", name).lower()] = line
        return out

    lock = names("requirements.lock")
    assert all("==" in spec for spec in lock.values()), "requirements.lock holds exact versions only"
    wanted = {**names("requirements.txt"), **names("requirements-dev.txt")}
    missing = sorted(set(wanted) - set(lock))
    assert not missing, f"in requirements*.txt but not in requirements.lock (run scripts/lock.sh): {missing}"


def test_every_imported_package_is_declared():
    # a package used only through another one's dependencies breaks when that one drops it
    import ast
    import re
    import sys
    from importlib.metadata import packages_distributions

    declared = set()
    for path in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                declared.add(re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]).lower())
    # bench/ and scripts/ import their sibling files by bare name
    ours = {"core", "ui", "app_pages", "tests", "bench", "scripts"}
    ours |= {f.stem for folder in ("bench", "scripts") for f in (ROOT / folder).glob("*.py")}
    dists = packages_distributions()
    undeclared = {}
    for folder in ("core", "ui", "app_pages", "tests", "bench", "scripts"):
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in ours or top in sys.stdlib_module_names:
                        continue
                    names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(top, [top])}
                    if not names & declared:
                        undeclared.setdefault(top, str(file.relative_to(ROOT)))
    assert not undeclared, f"imported but not in requirements*.txt: {undeclared}"
