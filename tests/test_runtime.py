"""The faster CPU runtimes (core/models/runtime.py) on real models and real images: OpenVINO and ONNX Runtime give
the torch fp32 embeddings (cosine >= 0.999), the exported ONNX file is cached per weights and never half-written,
ATLAS_RUNTIME picks the runtime (auto falls back to torch and says why), and ingest and text search work through
the compiled model. EfficientNet-Lite0 has its real weights; OpenCLIP ViT-B-32 has its real architecture with
random weights (the real ones are not on every machine)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import datasets, models
from core.ingest import PIXELS, ingest
from core.models import runtime
from core.models.base import ModelError, cpu_bf16_supported
from core.models.clip import OpenClipEmbedder
from core.models.effnet import EffNetLite0
from core.search import search, text_query_vector
from core.store import open_store

BOUND = 0.999  # the equivalence bound: cosine to torch fp32, every image


def _real_set():
    """Fashion-MNIST where the machine has it (scripts/setup.sh installs it), else scikit-learn's digits."""
    if datasets.fashion_mnist_available():
        images, labels = datasets.load_fashion_mnist()
        return images, labels, datasets.FASHION_CLASSES
    return datasets.load_digits()


def _cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _onnx_files(cache_dir: Path) -> list[Path]:
    return sorted((Path(cache_dir) / "models").glob("*.onnx"))


def _no_export(*args, **kwargs):
    raise AssertionError("torch.onnx.export was called: the cached ONNX file was not reused")


@pytest.fixture(scope="module")
def images():
    """60 real images, 6 per class."""
    pixels, labels, _ = _real_set()
    idx = datasets.stratified_indices(labels, 6, seed=3)
    return [Image.fromarray(pixels[i]).convert("RGB") for i in idx]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One export per model for the module: the equivalence, settings and text tests share it."""
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.fixture(scope="module")
def effnet():
    model = EffNetLite0(device="cpu", cpu_bf16=False)
    assert model.runtime == "torch" and not model.cpu_bf16
    return model


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    model = OpenClipEmbedder("ViT-B-32", pretrained=None, device="cpu", cpu_bf16=False)
    assert model.runtime == "torch" and not model.cpu_bf16
    return model


@pytest.fixture(scope="module")
def reference(effnet, clip, images):
    """torch fp32 embeddings of the images: the reference every runtime is held to."""
    return {"effnet": effnet.embed_images(images), "clip": clip.embed_images(images)}


@pytest.fixture
def fresh_load_cache(monkeypatch):
    """core.models.load keeps loaded models in a module dict: each test starts from an empty one."""
    monkeypatch.setattr(models, "_cache", {})


# --- 1. equivalence -----------------------------------------------------------------------------------------------
CASES = [("effnet", "onnx", False), ("effnet", "openvino", False), ("clip", "onnx", False),
         ("clip", "openvino", False), ("clip", "openvino", True)]


@pytest.mark.parametrize("name,which,bf16", CASES, ids=[f"{n}-{r}-{'bf16' if b else 'f32'}" for n, r, b in CASES])
def test_compiled_embeddings_match_torch_fp32(request, images, reference, cache_dir, name, which, bf16):
    if bf16 and not cpu_bf16_supported():
        pytest.skip("this CPU has no bfloat16 support")
    base = request.getfixturevalue(name)
    model = runtime.wrap(base, which, cache_dir, bf16)
    assert isinstance(model, runtime.CompiledEmbedder) and model.runtime == which
    assert ("bf16" in model.description) == bf16 and (name, model.dim) == (name, base.dim)
    got = model.embed_images(images)
    assert got.shape == reference[name].shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = _cosines(got, reference[name])
    assert cos.min() >= BOUND, f"{name} on {model.description}: min cosine {cos.min():.5f} over {len(cos)} images"
    # one image alone (the graph was traced with a batch of 2; the batch axis must stay dynamic)
    assert _cosines(model.embed_images(images[:1]), reference[name][:1]).min() >= BOUND
    # per image, not a permutation that happens to be close: each image is nearest its own reference
    assert (np.argmax(got @ reference[name].T, axis=1) == np.arange(len(got))).mean() >= 0.95
    if bf16:
        import openvino as ov

        if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            f32 = runtime.wrap(base, which, cache_dir, False).embed_images(images)
            assert not np.array_equal(got, f32), "the bf16 hint changed nothing: the bf16 case tested f32 again"


@pytest.mark.parametrize("choice_name", [models.EFFNET, models.CLIP])
@pytest.mark.parametrize("setting", ["auto", "torch", "onnx", "openvino"])
def test_the_precision_auto_picks_keeps_the_bound(choice_name, setting, images, reference, effnet, clip, cache_dir,
                                                  fresh_load_cache):
    """cpu_bf16=auto never picks a precision (for any model and runtime) that breaks cosine >= 0.999 to fp32."""
    torch.manual_seed(0)  # the same random ViT-B-32 weights as the `clip` fixture
    choice = models.ModelChoice(choice_name, "test", None)
    model = models.load(choice, "cpu", cpu_bf16="auto", runtime=setting, cache_dir=str(cache_dir))
    chosen = runtime.pick_runtime(setting, "cpu")
    bf16 = models.use_bf16(choice_name, "auto", "cpu", chosen)
    assert model.runtime == chosen and not model.runtime_note
    if chosen == "torch":
        assert model.cpu_bf16 == bf16
    else:
        assert ("bf16" in model.description) == bf16
    key, base = ("effnet", effnet) if choice_name == models.EFFNET else ("clip", clip)
    torch_model = model.base if isinstance(model, runtime.CompiledEmbedder) else model
    assert runtime.weights_digest(torch_model.model) == runtime.weights_digest(base.model)  # same weights as ref
    cos = _cosines(model.embed_images(images), reference[key])
    assert cos.min() >= BOUND, f"{choice_name} on {runtime.describe(model)}: min cosine {cos.min():.5f}"
    if choice_name == models.CLIP:  # the text tower stays on torch fp32 whatever runs the images
        texts = ["a photo of a shoe", "a handbag"]
        np.testing.assert_allclose(model.embed_texts(texts), clip.embed_texts(texts), atol=1e-6)


def test_bf16_rule_excludes_effnet_and_gpu():
    """The rule the precision test relies on: effnet-lite0 never auto-bf16 (it drops to ~0.993), nor a GPU."""
    for which in ("torch", "onnx", "openvino"):
        assert not models.use_bf16(models.EFFNET, "auto", "cpu", which)
        assert not models.use_bf16(models.CLIP, "auto", "cuda", which)
        assert not models.use_bf16(models.CLIP, "off", "cpu", which)
    assert models.use_bf16(models.CLIP, "auto", "cpu", "openvino") == cpu_bf16_supported()


# --- 2. the export cache ----------------------------------------------------------------------------------------------
def test_export_is_cached_per_weights_and_reused(effnet, images, tmp_path, monkeypatch, fresh_load_cache):
    cache = tmp_path / "cache"
    assert _onnx_files(cache) == []
    first = runtime.wrap(effnet, "onnx", cache, False)
    files = _onnx_files(cache)
    assert len(files) == 1 and files[0].name.startswith("effnet-lite0-224px-") and files[0].stat().st_size > 1e6
    stamp = files[0].stat().st_mtime_ns

    # a second load of the same weights (a new model object, through models.load) reuses the file: no export
    monkeypatch.setattr(torch.onnx, "export", _no_export)
    again = models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off", runtime="onnx", cache_dir=str(cache))
    assert again is not effnet and again.base is not effnet and again.runtime == "onnx"
    assert _onnx_files(cache) == files and files[0].stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.embed_images(images[:8]), first.embed_images(images[:8]), atol=1e-5)
    monkeypatch.undo()

    # different weights: a new file, and its graph is the changed model's, not the cached one
    changed = copy.deepcopy(effnet)
    with torch.no_grad():
        head = changed.model._conv_head.weight
        head.add_(torch.from_numpy(np.random.default_rng(0).normal(0, 0.5, head.shape).astype(np.float32)))
    compiled = runtime.wrap(changed, "onnx", cache, False)
    after = _onnx_files(cache)
    assert len(after) == 2 and files[0] in after and files[0].stat().st_mtime_ns == stamp
    want = changed.embed_images(images[:8])
    got = compiled.embed_images(images[:8])
    assert _cosines(got, want).min() >= BOUND
    assert _cosines(got, first.embed_images(images[:8])).min() < 0.99  # the perturbation is visible


@pytest.mark.parametrize("crash", [RuntimeError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_crash_mid_export_leaves_no_trusted_file(effnet, images, reference, tmp_path, monkeypatch, crash):
    cache = tmp_path / "cache"
    written = []

    def half_export(module, args, f, *rest, **kwargs):
        Path(f).write_bytes(b"\x08\x09\x12\x07pytorch" + b"\0" * 4096)  # a truncated protobuf: the start of a file
        written.append(Path(f))
        raise crash

    monkeypatch.setattr(torch.onnx, "export", half_export)
    if isinstance(crash, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            runtime.wrap(effnet, "openvino", cache, False)
    else:
        with pytest.raises(ModelError, match="disk full"):
            runtime.wrap(effnet, "openvino", cache, False)
    assert written and written[0].parent == cache / "models"  # the fault really wrote partial bytes there
    assert _onnx_files(cache) == [] and not runtime.export_path(effnet, cache).exists()
    monkeypatch.undo()

    model = runtime.wrap(effnet, "openvino", cache, False)  # the next load exports a whole file and uses it
    assert len(_onnx_files(cache)) == 1
    assert _cosines(model.embed_images(images[:12]), reference["effnet"][:12]).min() >= BOUND


# --- 3. settings ------------------------------------------------------------------------------------------------------
def test_atlas_runtime_picks_the_runtime(effnet, images, reference, cache_dir, monkeypatch, fresh_load_cache):
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(cache_dir))
    expected = {"torch": "PyTorch", "onnx": "ONNX Runtime", "openvino": "OpenVINO", " OpenVINO ": "OpenVINO"}
    for setting, words in expected.items():
        monkeypatch.setenv("ATLAS_RUNTIME", setting)
        model = models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off")
        assert model.runtime == setting.strip().lower() and not model.runtime_note
        assert isinstance(model, runtime.CompiledEmbedder) == (model.runtime != "torch")
        assert runtime.describe(model).startswith(words)
        assert _cosines(model.embed_images(images[:6]), reference["effnet"][:6]).min() >= BOUND
    assert len(_onnx_files(cache_dir)) >= 1 and runtime.export_path(effnet, cache_dir).is_file()  # the setting's dir


def test_auto_prefers_openvino_on_cpu_and_torch_on_gpu():
    assert runtime.pick_runtime("auto", "cpu") == "openvino"  # both runtimes are in requirements.lock
    assert runtime.pick_runtime("auto", "cuda") == "torch"
    assert runtime.pick_runtime("torch", "cuda:0") == "torch"
    with pytest.raises(ModelError, match="ATLAS_RUNTIME=openvino runs on the CPU only"):
        runtime.pick_runtime("openvino", "cuda")


@pytest.mark.parametrize("value", ["tensorrt", "gpu", "onnxruntime"])
def test_invalid_runtime_is_refused_with_the_valid_values(value, monkeypatch, fresh_load_cache):
    monkeypatch.setenv("ATLAS_RUNTIME", value)
    with pytest.raises(ModelError) as err:
        models.load(models.choose("effnet-lite0"), "cpu")
    message = str(err.value)
    assert "ATLAS_RUNTIME" in message and value in message
    for valid in ("auto", "torch", "onnx", "openvino"):
        assert valid in message
    assert models._cache == {}  # refused before any model was loaded


def test_search_names_a_bad_runtime_setting_not_missing_weights(monkeypatch, fresh_load_cache):
    from core.search import SearchError, model_for

    monkeypatch.setenv("ATLAS_RUNTIME", "bogus")
    with pytest.raises(SearchError) as err:
        model_for("effnet-lite0", device="cpu")
    assert "ATLAS_RUNTIME='bogus'" in str(err.value) and "weights" not in str(err.value)


def test_auto_falls_back_to_torch_when_export_fails_and_a_named_runtime_raises(images, reference, tmp_path,
                                                                                 monkeypatch, fresh_load_cache):
    def broken_export(*args, **kwargs):
        raise RuntimeError("simulated exporter failure")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ATLAS_RUNTIME", "auto")
    model = models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off")
    assert model.runtime == "torch" and not isinstance(model, runtime.CompiledEmbedder)
    note = model.runtime_note
    assert "export" in note and "simulated exporter failure" in note and "torch" in note
    assert _cosines(model.embed_images(images[:6]), reference["effnet"][:6]).min() >= BOUND  # and it works
    assert _onnx_files(tmp_path / "cache") == []

    monkeypatch.setattr(models, "_cache", {})
    monkeypatch.setenv("ATLAS_RUNTIME", "openvino")
    with pytest.raises(ModelError, match="simulated exporter failure"):
        models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off")


def test_auto_falls_back_when_the_runtime_cannot_load_the_graph(cache_dir, monkeypatch, fresh_load_cache):
    def broken_compile(path, bf16):
        raise RuntimeError("simulated compile failure")

    monkeypatch.setattr(runtime, "openvino_runner", broken_compile)
    model = models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off", runtime="auto",
                        cache_dir=str(cache_dir))
    assert model.runtime == "torch" and "openvino" in model.runtime_note
    assert "simulated compile failure" in model.runtime_note
    monkeypatch.setattr(models, "_cache", {})
    with pytest.raises(ModelError, match="simulated compile failure"):
        models.load(models.choose("effnet-lite0"), "cpu", cpu_bf16="off", runtime="openvino",
                    cache_dir=str(cache_dir))


# --- 4. end to end: ingest --------------------------------------------------------------------------------------------
def test_ingest_with_openvino_matches_torch_point_by_point(effnet, cache_dir, tmp_path):
    pixels, labels, names = _real_set()
    folder = tmp_path / "images"
    datasets.write_image_folder(pixels, labels, names, folder, datasets.stratified_indices(labels, 3, seed=7))
    compiled = runtime.wrap(effnet, "openvino", cache_dir, False)
    assert compiled.runtime == "openvino"
    points = {}
    for tag, model in (("torch", effnet), ("openvino", compiled)):
        with open_store(path=str(tmp_path / f"qdrant-{tag}")) as store:
            report = ingest(store, folder, "c", model, batch_size=8)
            assert (report.added, report.skipped) == (30, [])
            vectors = store.scroll("c", vector=model.name, with_vectors=True)
            pix = store.scroll("c", vector=PIXELS, with_vectors=True)
        order = np.argsort([str(i) for i in vectors.ids])
        assert [vectors.ids[i] for i in order] == sorted(pix.ids, key=str)
        points[tag] = ([vectors.ids[i] for i in order], vectors.vectors[order],
                       [{k: v for k, v in vectors.payloads[i].items() if k != "ingested_at"} for i in order],
                       pix.vectors[np.argsort([str(i) for i in pix.ids])])
    ids_t, vec_t, pay_t, pix_t = points["torch"]
    ids_o, vec_o, pay_o, pix_o = points["openvino"]
    assert ids_o == ids_t and len(ids_t) == 30
    assert pay_o == pay_t and {p["model"] for p in pay_t} == {"effnet-lite0"}
    cos = _cosines(vec_o, vec_t)
    assert cos.min() >= BOUND, f"min cosine {cos.min():.5f} between the two stores"
    np.testing.assert_array_equal(pix_o, pix_t)  # the pixel view does not depend on the model runtime


# --- 5. text search through a compiled OpenCLIP ---------------------------------------------------------------------
def test_text_search_through_compiled_openclip(clip, images, cache_dir):
    compiled = runtime.wrap(clip, "openvino", cache_dir, models.use_bf16(models.CLIP, "auto", "cpu", "openvino"))
    assert compiled.supports_text and compiled.runtime == "openvino"
    text = "a photo of a sneaker"
    query = text_query_vector(compiled, text)
    np.testing.assert_array_equal(query, text_query_vector(clip, text))
    assert query.shape == (compiled.dim,)
    vectors = compiled.embed_images(images[:20])
    with open_store(url=":memory:") as store:
        store.create_collection("c", {compiled.name: compiled.dim})
        store.upsert("c", list(range(1, 21)), {compiled.name: vectors}, [{"i": i} for i in range(20)])
        result = search(store, "c", query, using=compiled.name, k=5, exact=True)
    expected = np.argsort(-(vectors @ query))[:5]
    assert [h.payload["i"] for h in result.hits] == [int(i) for i in expected]
    np.testing.assert_allclose([h.score for h in result.hits], (vectors @ query)[expected], atol=1e-4)
