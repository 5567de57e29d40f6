"""The pixel view: ingest stores a model-free thumbnail vector next to the model's, maps and searches never use
it, and the label audit takes it as more evidence where the model's embedding says little."""
import numpy as np
import torch
from PIL import Image

from core.audit import run_audit
from core.catalog import summarize
from core.ingest import ingest, point_id
from core.models.base import Embedder
from core.pixels import DIM, PIXELS, pixel_vector
from core.store import open_store
from tests.fakes import ColorEmbedder, write_image


class BlindEmbedder(Embedder):
    """A model that cannot see colour: every image gets a random direction (seeded by its size only)."""

    name = "test-blind"
    dim = 16

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return torch.zeros(1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.random.default_rng(len(x) * 7 + int(x.sum())).normal(size=(len(x), self.dim)))


def colour_folder(root, n=12, odd=("red", (30, 40, 220))):
    """n jittered images each of red, green and blue, plus one blue image filed under `odd[0]`."""
    rng = np.random.default_rng(0)
    for label, base in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
        for i in range(n):
            write_image(root / label / f"{i}.png", tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in base))
    write_image(root / odd[0] / "odd.png", odd[1])
    return root


def test_ingest_stores_the_pixel_view_and_searches_and_maps_do_not_use_it(tmp_path):
    root = colour_folder(tmp_path / "colors")
    with open_store(path=str(tmp_path / "q")) as store:
        ingest(store, root, "c", ColorEmbedder())
        info = store.collection_info("c")
        assert {v.name: v.size for v in info.vectors} == {"test-color": 4, PIXELS: DIM}
        assert info.vector().name == "test-color" and [v.name for v in info.embeddings] == ["test-color"]
        assert [v.name for v in summarize(store, "c").embeddings] == ["test-color"]
        got = store.retrieve("c", [point_id("red/odd.png")], vector=PIXELS, with_vectors=True).vectors[0]
        expected = pixel_vector(Image.open(root / "red" / "odd.png"))
        assert np.allclose(got, expected / np.linalg.norm(expected), atol=1e-5) or np.allclose(got, expected)
        # a moved file keeps its pixel view (its point is copied, not re-embedded)
        (root / "blue").joinpath("moved.png").write_bytes((root / "red" / "odd.png").read_bytes())
        (root / "red" / "odd.png").unlink()
        assert ingest(store, root, "c", ColorEmbedder()).moved == 1
        moved = store.retrieve("c", [point_id("blue/moved.png")], vector=PIXELS, with_vectors=True).vectors[0]
        assert np.allclose(moved, got)


def test_the_audit_finds_a_mislabel_through_pixels_that_the_model_cannot_see(tmp_path):
    root = colour_folder(tmp_path / "colors")
    with open_store(path=str(tmp_path / "q")) as store:
        ingest(store, root, "c", BlindEmbedder())
        report = run_audit(store, "c", checks=["label"])
        assert PIXELS in report.results["label"].summary["evidence"]
        table = report.table.set_index("id")
        odd = point_id("red/odd.png")
        assert table.label_score.idxmin() == odd and table.suggested_label[odd] == "blue"
        # the same vectors without the pixel view: the blind model's evidence cannot single it out
        store.create_collection("blind", {"test-blind": 16})
        pts = store.scroll("c", vector="test-blind")
        store.upsert("blind", pts.ids, {"test-blind": pts.vectors}, pts.payloads)
        blind = run_audit(store, "blind", checks=["label"])
        assert PIXELS not in blind.results["label"].summary["evidence"]
        assert blind.table.set_index("id").label_score.rank()[odd] > 3


def test_a_collection_made_before_the_pixel_view_keeps_working(tmp_path):
    root = colour_folder(tmp_path / "colors")
    with open_store(path=str(tmp_path / "q")) as store:
        store.create_collection("old", {"test-color": 4})
        report = ingest(store, root, "old", ColorEmbedder())
        assert report.added == 37 and [v.name for v in store.collection_info("old").vectors] == ["test-color"]
        assert run_audit(store, "old", checks=["label"]).results["label"].summary["scored"] == 37
