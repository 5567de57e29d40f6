"""Real model code: OpenCLIP's ViT-B-32 (random weights: plumbing) and the offline EfficientNet-Lite0 (real
weights: quality)."""
import time

import numpy as np
import pytest
import torch
from PIL import Image

from core import datasets, models
from core.models import ModelError, TextNotSupported
from core.models.clip import OpenClipEmbedder


def _images(n=4):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope="module")
def clip_random():
    torch.manual_seed(0)
    return OpenClipEmbedder("ViT-B-32", pretrained=None)


@pytest.fixture(scope="module")
def effnet():
    return models.load(models.choose("effnet-lite0"), device="cpu")


def test_openclip_image_and_text_plumbing(clip_random):
    ims = _images()
    a = clip_random.embed_images(ims)
    assert a.shape == (4, 512) and a.dtype == np.float32 and clip_random.dim == 512
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(clip_random.embed_images(ims[::-1])[::-1], a, atol=1e-5)  # deterministic, per image
    t = clip_random.embed_texts(["a red apple on a table", "a banana"])
    assert t.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ModelError, match="empty"):
        clip_random.embed_texts(["  "])


def test_openclip_loads_a_local_weights_file(clip_random, tmp_path, monkeypatch):
    path = tmp_path / "vitb32.pt"
    torch.save(clip_random.model.state_dict(), path)
    choice = models.choose("clip-vit-b-32", str(path))
    assert choice.pretrained == str(path) and "ATLAS_CLIP_WEIGHTS" in choice.reason
    loaded = models.load(choice, device="cpu")
    assert loaded.name == "clip-vit-b-32" and loaded.dim == 512
    auto = models.choose("auto", str(path))
    assert auto.name == "clip-vit-b-32"


def test_offline_clip_fails_fast_and_names_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ModelError) as err:
        models.choose("clip-vit-b-32")
    assert time.perf_counter() - t < 5
    assert "ATLAS_CLIP_WEIGHTS" in str(err.value) and "effnet-lite0" in str(err.value)
    auto = models.choose("auto")
    assert auto.name == "effnet-lite0" and "auto chose effnet-lite0" in auto.reason


def test_missing_weights_file_and_unknown_model_are_explained():
    with pytest.raises(ModelError, match="not a file"):
        models.choose("clip-vit-b-32", "/nowhere/weights.pt")
    with pytest.raises(ModelError, match="Unknown model"):
        models.choose("resnet-9000")
    with pytest.raises(ModelError, match="ATLAS_CLIP_WEIGHTS"):
        models.choose("open_clip:ViT-L-14")


def test_effnet_has_no_text_encoder(effnet):
    with pytest.raises(TextNotSupported, match="clip-vit-b-32"):
        effnet.embed_texts(["a shoe"])


def test_effnet_embeddings_separate_real_classes(effnet):
    """Same-label images must be nearer than different-label ones: leave-one-out 1-NN far above chance."""
    if datasets.fashion_mnist_available():
        images, labels = datasets.load_fashion_mnist("t10k")
    else:
        images, labels, _ = datasets.load_digits()
    idx = datasets.stratified_indices(labels, per_class=20, seed=0)
    pil = [Image.fromarray(images[i]).convert("RGB") for i in idx]
    vecs = np.concatenate([effnet.embed_images(pil[i:i + 50]) for i in range(0, len(pil), 50)])
    assert vecs.shape == (200, 1280)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    y = labels[idx]
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    accuracy = float((y[sims.argmax(1)] == y).mean())
    assert accuracy > 0.6, accuracy  # chance is 0.1
    same = sims[(y[:, None] == y[None, :]) & np.isfinite(sims)].mean()
    diff = sims[y[:, None] != y[None, :]].mean()
    assert same > diff
