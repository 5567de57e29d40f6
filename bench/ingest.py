"""Ingest throughput: the image model on each CPU runtime, our pipeline, and the tutorial's one-image loop, side by side.

Same images, model and batch size, in one process:
  (a) ceilings   model.embed_batch on pre-decoded, pre-processed tensors, in batches of --batch-size, per runtime:
                 torch fp32, torch bf16 autocast*, ONNX Runtime fp32, OpenVINO fp32, OpenVINO bf16* (* where the CPU
                 has bf16). One torch model serves them all: its .cpu_bf16 flips for the autocast row, and
                 core.models.runtime.wrap runs its exported ONNX graph (cached in ATLAS_CACHE_DIR/models) for the rest.
  (b) tutorial   per file: open, RGB, preprocess, forward a batch of one on torch fp32; upsert everything at the end
  (c) pipelines  core.ingest.ingest into a fresh embedded store, ATLAS_WORKERS threads, --batch-size: on the default
                 runtime (what ATLAS_RUNTIME=auto with ATLAS_CPU_BF16=auto picks) and, as the reference, on torch

Goals (issue 17): the default runtime's ceiling >= 2x torch fp32's; the pipeline on it >= 0.9x its ceiling and >= 3x
the tutorial; where the CPU has bf16, the default runtime's ceiling >= torch bf16's (no regression). Paths take turns
within each round and each path's best round counts: load from other processes on a shared CPU hits all alike.

    .venv/bin/python bench/ingest.py                                          # 512 Fashion-MNIST t10k images
    .venv/bin/python bench/ingest.py --model clip-vit-b-32 --random-weights   # the real ViT-B-32, speed only
    .venv/bin/python bench/ingest.py --quick                                  # 64 images, one round: it runs
    .venv/bin/python bench/ingest.py --tune                # micro-batch, workers and batch size on train images

--tune sweeps the micro-batch size per runtime (torch fp32, ONNX Runtime, OpenVINO at the precision auto picks) and
ATLAS_WORKERS x batch size for the pipeline, on Fashion-MNIST *train* images (the reported run uses t10k: defaults are
not chosen on the set they are reported on), and writes bench/results/ingest-tune-<model>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark must never sit in network retries

from core import datasets, models, settings  # noqa: E402
from core.ingest import ingest, point_id  # noqa: E402
from core.models import Embedder, runtime  # noqa: E402
from core.models.base import cpu_bf16_supported, pick_device, tune_cpu_allocator  # noqa: E402
from core.store import open_store  # noqa: E402
from machine import machine_info  # noqa: E402

RUNTIME_GOAL = 2.0  # the default runtime's ceiling over torch fp32's
CEILING_GOAL = 0.90  # the pipeline (default runtime) over the default runtime's ceiling
TUTORIAL_GOAL = 3.0  # the pipeline (default runtime) over the tutorial's loop
BF16_GOAL = 1.0  # where the CPU has bf16: the default runtime's ceiling over torch bf16 autocast's
RANDOM_WEIGHTS = "random weights: speed only"
PACKAGES = ("torch", "onnxruntime", "openvino", "open_clip_torch", "numpy", "pillow")
MICRO_BATCHES = (1, 4, 8, 16, 32)
TUNE_WORKERS = (1, 2, 4)
TUNE_BATCHES = (16, 32, 64)


# --- models ----------------------------------------------------------------------------------------------------------
@dataclass(eq=False)  # hashed by identity: the default runtime may be one of the ceilings
class Variant:
    """One way to run the image forward: a runtime at a precision."""
    runtime: str  # torch, onnx, openvino
    precision: str  # fp32, bf16
    model: Embedder
    autocast: bool = False  # the torch model with .cpu_bf16 flipped on while it runs

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"

    def run(self, fn: Callable[[], Any]) -> Any:
        if not self.autocast:
            return fn()
        self.model.cpu_bf16 = True
        try:
            return fn()
        finally:
            self.model.cpu_bf16 = False

    def describe(self) -> str:
        return self.run(lambda: runtime.describe(self.model))


def build_torch_model(name: str, device: str, random_weights: bool) -> tuple[Embedder, str]:
    """The torch model with bf16 off, and what its weights are (no machine path: that goes into the JSON)."""
    dev = pick_device(device)
    if random_weights:
        if not (name == models.CLIP or name.startswith(models.OPEN_CLIP_PREFIX)):
            raise SystemExit(f"--random-weights is for OpenCLIP models, not {name}")
        from core.models.clip import DEFAULT_ARCH, OpenClipEmbedder

        if dev == "cpu":
            tune_cpu_allocator()  # what models.load does on a CPU
        torch.manual_seed(0)  # the same random weights every run, so the exported graph's cache entry is reused
        arch = DEFAULT_ARCH if name == models.CLIP else name[len(models.OPEN_CLIP_PREFIX):]
        return OpenClipEmbedder(arch, pretrained=None, device=dev, name=name), RANDOM_WEIGHTS
    choice = models.choose(name)
    return models.load(choice, dev, cpu_bf16="off", runtime="torch"), "pretrained"


def default_runtime(name: str, device: str) -> tuple[str, str]:
    """(runtime, precision) that core.models.load picks with ATLAS_RUNTIME=auto and ATLAS_CPU_BF16=auto."""
    chosen = runtime.pick_runtime("auto", device)
    return chosen, "bf16" if models.use_bf16(name, "auto", device, chosen) else "fp32"


def build_variants(base: Embedder, cache_dir: str, which: list[tuple[str, str]]) -> list[Variant]:
    """The variants named by (runtime, precision), all from the one torch model; the ONNX graph is exported once."""
    out = []
    for rt, precision in which:
        if rt == "torch":
            out.append(Variant(rt, precision, base, autocast=precision == "bf16"))
        else:
            out.append(Variant(rt, precision, runtime.wrap(base, rt, cache_dir, precision == "bf16")))
    return out


def ceiling_variants(device: str) -> list[tuple[str, str]]:
    if device != "cpu":
        return [("torch", "fp16" if device.startswith("cuda") else "fp32")]
    bf16 = cpu_bf16_supported()
    which = [("torch", "fp32")] + ([("torch", "bf16")] if bf16 else [])
    which += [("onnx", "fp32")] if runtime.available("onnx") else []
    which += [("openvino", "fp32")] + ([("openvino", "bf16")] if bf16 else []) if runtime.available("openvino") else []
    return which


# --- images --------------------------------------------------------------------------------------------------------
def load_dataset(split: str = "t10k") -> tuple[np.ndarray, list[str], str]:
    """(uint8 images N x 28 x 28, label name per image, source). Fashion-MNIST, else sklearn digits (no split)."""
    if datasets.fashion_mnist_available():
        pixels, labels = datasets.load_fashion_mnist(split)
        return pixels, [datasets.FASHION_CLASSES[i] for i in labels], f"fashion-mnist {split}"
    small, labels, names = datasets.load_digits()
    pixels = np.stack([np.asarray(Image.fromarray(im).resize((28, 28), Image.NEAREST)) for im in small])
    return pixels, [f"digit_{names[t]}" for t in labels], "sklearn load_digits, upscaled to 28x28 (no held-out split)"


def write_images(folder: Path, n: int, split: str = "t10k") -> tuple[list[Path], str]:
    """N grayscale PNGs (as stored) in one subfolder per class; cycles through the set if N exceeds it."""
    pixels, labels, source = load_dataset(split)
    paths = []
    for i in range(n):
        j = i % len(pixels)
        path = folder / labels[j] / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[j], "L").save(path)
        paths.append(path)
    return paths, source


def ready_tensors(model: Embedder, paths: list[Path]) -> torch.Tensor:
    return torch.stack([model.preprocess(Image.open(p).convert("RGB")) for p in paths])


# --- the paths -------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    path: str  # what the table shows
    kind: str  # ceiling, tutorial, pipeline
    runtime: str
    precision: str
    description: str  # core.models.runtime.describe: runtime, version, precision
    images: int
    default: bool = False  # runs on the default runtime
    rounds: list[float] = field(default_factory=list)  # seconds of every round, in order
    cpu: list[float] = field(default_factory=list)  # this process's CPU seconds of every round (all its threads)
    cosine: float | None = None  # lowest cosine of an image's embedding to torch fp32's (first round)

    @property
    def seconds(self) -> float:  # best round: the one least disturbed by other processes on a shared machine
        return min(self.rounds)

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.rounds and self.seconds > 0 else 0.0

    def add(self, seconds: float, cpu: float) -> None:
        self.rounds.append(seconds)
        self.cpu.append(cpu)


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result): CPU / wall below the core count means other processes
    took cores, or threads waited."""
    cpu, started = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - started, time.process_time() - cpu, out


def run_ceiling(variant: Variant, tensors: torch.Tensor, batch_size: int) -> tuple[float, float, np.ndarray]:
    """(a) Forward passes only: decoding and preprocessing happened before the clock starts. Returns wall and CPU
    seconds, and the embeddings."""
    def forward() -> np.ndarray:
        # numpy out: a GPU run is synchronised here
        return np.concatenate([variant.model.embed_batch(tensors[i:i + batch_size])
                               for i in range(0, len(tensors), batch_size)])
    return variant.run(lambda: timed(forward))


def run_tutorial(model: Embedder, paths: list[Path], folder: Path, store_dir: Path) -> tuple[float, float]:
    """(b) The tutorial's loop: one image at a time through preprocess and the model, one upsert at the end."""
    seconds, cpu, _ = timed(lambda: tutorial_loop(model, paths, folder, store_dir))
    return seconds, cpu


def tutorial_loop(model: Embedder, paths: list[Path], folder: Path, store_dir: Path) -> None:
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    payloads: list[dict[str, Any]] = []
    for p in paths:
        t = model.preprocess(Image.open(p).convert("RGB"))
        vectors.append(model.embed_batch(t[None])[0])
        rel = p.relative_to(folder).as_posix()
        ids.append(point_id(rel))
        payloads.append({"file_name": p.name, "label": p.parent.name, "path": rel})
    with open_store(path=str(store_dir)) as store:
        store.create_collection("bench", {model.name: model.dim})
        store.upsert("bench", ids, {model.name: np.stack(vectors)}, payloads)


def run_pipeline(model: Embedder, folder: Path, store_dir: Path, batch_size: int, workers: int,
                 paths: list[Path]) -> tuple[float, float, np.ndarray]:
    """(c) Our ingest, end to end: scan, decode threads, batched forward, upserts, optimize(). Returns wall and CPU
    seconds, and the vectors it stored, in the order of `paths` (read back after the clock stops)."""
    with open_store(path=str(store_dir)) as store:
        seconds, cpu, report = timed(lambda: ingest(store, folder, "bench", model, batch_size=batch_size,
                                                    workers=workers))
        stored = store.retrieve("bench", [point_id(p.relative_to(folder).as_posix()) for p in paths],
                                vector=model.name, with_vectors=True)
    if report.skipped or report.embedded != len(paths) or len(stored.ids) != len(paths):
        raise RuntimeError(f"ingest did not embed every image: {report.as_dict()}")
    return seconds, cpu, stored.vectors


def warm_up(variant: Variant, tensors: torch.Tensor, batch_size: int) -> None:
    """A first forward of each shape pays one-off costs (kernel choice, shape compilation) no path should carry."""
    sizes = {min(batch_size, len(tensors)), len(tensors) % batch_size or batch_size}
    for size in sorted(sizes):
        variant.run(lambda: variant.model.embed_batch(tensors[:size]))


def rotated(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


def cosine_floor(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))  # rows are unit vectors


# --- report ----------------------------------------------------------------------------------------------------------
def bench_machine(device: str, load_before: tuple[float, ...]) -> dict[str, Any]:
    info = machine_info(PACKAGES, list(load_before), device=device, cpu_bf16=cpu_bf16_supported(),
                        torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads(),
                        loadavg_at_end=list(os.getloadavg()))
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def markdown(rows: list[Row], torch_ceiling: float, default_ceiling: float) -> str:
    lines = ["| path | runtime | images | seconds | images/s | vs torch fp32 ceiling | vs default ceiling "
             "| cosine to torch fp32 (lowest) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cos = "" if r.cosine is None else f"{r.cosine:.4f}"
        lines.append(f"| {r.path} | {r.description} | {r.images} | {r.seconds:.2f} | {r.rate:.1f} "
                     f"| {r.rate / torch_ceiling:.2f} | {r.rate / default_ceiling:.2f} | {cos} |")
    return "\n".join(lines)


def goal(numerator: Row, denominator: Row, target: float) -> dict[str, Any]:
    ratio = numerator.rate / denominator.rate if denominator.rate else 0.0
    return {"ratio": ratio, "goal": target, "pass": ratio >= target,
            "compares": f"{numerator.path} / {denominator.path}"}


def row_json(r: Row, torch_ceiling: float, default_ceiling: float) -> dict[str, Any]:
    return {"path": r.path, "kind": r.kind, "runtime": r.runtime, "precision": r.precision,
            "description": r.description, "default": r.default, "images": r.images,
            "seconds": round(r.seconds, 3), "rounds": [round(x, 3) for x in r.rounds],
            "cpu_seconds": round(r.cpu[r.rounds.index(r.seconds)], 3),  # of the best round; all threads
            "images_per_second": round(r.rate, 2), "ratio_to_torch_ceiling": round(r.rate / torch_ceiling, 3),
            "ratio_to_ceiling": round(r.rate / default_ceiling, 3),
            "cosine_to_torch_fp32_min": None if r.cosine is None else round(r.cosine, 5)}


def result_path(args: argparse.Namespace, name: str, device: str, stem: str = "ingest") -> Path:
    if args.out:
        return args.out
    kind = "cuda" if device.startswith("cuda") else device
    tail = f"-{kind}" if stem == "ingest" else ""
    return ROOT / "bench" / "results" / f"{stem}-{name}{tail}{'-quick' if args.quick else ''}.json"


def write_json(out: Path, data: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", file=sys.stderr)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the run ---------------------------------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> int:
    n, repeats = (64, 1) if args.quick else (args.n or 512, max(1, args.repeats or 3))
    load_before = os.getloadavg()  # this CPU may be shared: the load says how far to trust the figures
    workers = args.workers if args.workers is not None else int(settings.get("ATLAS_WORKERS"))
    base, weights = build_torch_model(args.model, args.device, args.random_weights)
    device = base.device
    default_rt, default_precision = default_runtime(base.name, device) if device == "cpu" else ("torch", "fp16")
    which = ceiling_variants(device)
    variants = build_variants(base, args.cache_dir, which)
    by_key = {(v.runtime, v.precision): v for v in variants}
    default = by_key[(default_rt, default_precision)]
    torch_fp32 = variants[0]
    log(f"model: {base.name} on {device} ({weights}); batch {args.batch_size}, {workers} workers, "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; default runtime: {default.describe()}")

    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        folder = Path(tmp) / "images"
        paths, source = write_images(folder, n)
        log(f"images: {n} from {source}")
        tensors = ready_tensors(base, paths)
        for v in variants:
            warm_up(v, tensors, args.batch_size)
        torch_fp32.model.embed_batch(tensors[:1])  # the tutorial's shape

        ceilings = [Row(f"(a) ceiling, {v.label}", "ceiling", v.runtime, v.precision, v.describe(), n,
                        default=v is default) for v in variants]
        tutorial = Row("(b) tutorial: one image per forward", "tutorial", "torch", torch_fp32.precision,
                       torch_fp32.describe(), n)
        pipelines = [Row(f"(c) pipeline, {v.label}, {workers} workers", "pipeline", v.runtime, v.precision,
                         v.describe(), n, default=v is default) for v in dict.fromkeys([default, torch_fp32])]
        reference: np.ndarray | None = None
        for r in range(repeats):
            # Paths take turns within each round, so a burst of load from elsewhere hits all of them alike.
            for v, row in zip(variants, ceilings):  # torch fp32 first: the others' cosine is to its vectors
                seconds, cpu, vectors = run_ceiling(v, tensors, args.batch_size)
                row.add(seconds, cpu)
                if reference is None:
                    reference = vectors  # torch fp32 comes first
                if row.cosine is None:
                    row.cosine = cosine_floor(vectors, reference)
            tutorial.add(*run_tutorial(torch_fp32.model, paths, folder, Path(tmp) / f"store-b{r}"))
            for v, row in zip(dict.fromkeys([default, torch_fp32]), pipelines):
                seconds, cpu, vectors = run_pipeline(v.model, folder, Path(tmp) / f"store-c{r}-{v.runtime}",
                                                     args.batch_size, workers, paths)
                row.add(seconds, cpu)
                if row.cosine is None:
                    row.cosine = cosine_floor(vectors, reference)
            rows = [*ceilings, tutorial, *pipelines]
            log(f"round {r + 1}/{repeats}: " + ", ".join(f"{x.path[:3]} {x.runtime} {x.precision} "
                                                         f"{n / x.rounds[-1]:.1f}" for x in rows) + " images/s")

    rows = [*ceilings, tutorial, *pipelines]
    torch_ceiling = ceilings[0]
    default_ceiling = next(row for row in ceilings if row.default)
    default_pipeline = pipelines[0]
    goals: dict[str, dict[str, Any]] = {}
    if default is not torch_fp32:
        goals["runtime_vs_torch_ceiling"] = goal(default_ceiling, torch_ceiling, RUNTIME_GOAL)
    goals["pipeline_vs_ceiling"] = goal(default_pipeline, default_ceiling, CEILING_GOAL)
    goals["pipeline_vs_tutorial"] = goal(default_pipeline, tutorial, TUTORIAL_GOAL)
    torch_bf16 = next((row for row in ceilings if row.runtime == "torch" and row.precision == "bf16"), None)
    if torch_bf16 is not None:
        goals["runtime_vs_torch_bf16_ceiling"] = goal(default_ceiling, torch_bf16, BF16_GOAL)
    else:
        goals["runtime_vs_torch_bf16_ceiling"] = {"measured": False,
                                                  "note": "not measured: this CPU has no bf16" if device == "cpu"
                                                  else "not measured: CPU runtimes only"}

    print(f"{base.name}{f' ({RANDOM_WEIGHTS})' if weights == RANDOM_WEIGHTS else ''}, {n} images from {source}, "
          f"batch {args.batch_size}, {workers} workers; default runtime {default.describe()}\n")
    print(markdown(rows, torch_ceiling.rate, default_ceiling.rate))
    print(f"\nBest of {repeats} round(s); load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs.\n")
    for name, g in goals.items():
        if g.get("measured") is False:
            print(f"- {name}: {g['note']}")
            continue
        print(f"- {name}: {g['ratio']:.2f} (goal >= {g['goal']}) {'PASS' if g['pass'] else 'FAIL'}: {g['compares']}")
        g["ratio"] = round(g["ratio"], 3)

    write_json(result_path(args, base.name, device), {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": bench_machine(device, load_before),
        "config": {"model": base.name, "weights": weights, "images": n, "image_source": source,
                   "batch_size": args.batch_size, "workers": workers, "repeats": repeats, "quick": args.quick,
                   "default_runtime": {"runtime": default.runtime, "precision": default.precision,
                                       "description": default.describe()},
                   "micro_batch": {v.label: v.model.cpu_micro_batch for v in variants}},
        "results": [row_json(r, torch_ceiling.rate, default_ceiling.rate) for r in rows],
        "goals": goals})
    return 0


# --- tuning ----------------------------------------------------------------------------------------------------------
def tune(args: argparse.Namespace) -> int:
    """Micro-batch per runtime, then workers x batch size for the pipeline, on train images (held out)."""
    n, repeats = (32, 1) if args.quick else (args.n or 256, max(1, args.repeats or 2))
    load_before = os.getloadavg()
    base, weights = build_torch_model(args.model, args.device, args.random_weights)
    device = base.device
    if device != "cpu":
        raise SystemExit("--tune sweeps the CPU runtimes: use --device cpu")
    default_rt, default_precision = default_runtime(base.name, device)
    ov_precision = "bf16" if models.use_bf16(base.name, "auto", device, "openvino") else "fp32"
    which = [("torch", "fp32")] + ([("onnx", "fp32")] if runtime.available("onnx") else [])
    which += [("openvino", ov_precision)] if runtime.available("openvino") else []
    which += [(default_rt, default_precision)] if (default_rt, default_precision) not in which else []
    variants = build_variants(base, args.cache_dir, which)
    default = next(v for v in variants if (v.runtime, v.precision) == (default_rt, default_precision))
    shipped = {v.label: v.model.cpu_micro_batch for v in variants}
    micro = [m for m in MICRO_BATCHES if m <= args.batch_size]
    log(f"tune: {base.name} ({weights}), batch {args.batch_size}, micro-batches {micro}, "
        f"{', '.join(v.describe() for v in variants)}")

    with tempfile.TemporaryDirectory(prefix="atlas-tune-") as tmp:
        folder = Path(tmp) / "images"
        paths, source = write_images(folder, n, split="train")
        log(f"images: {n} from {source}")
        tensors = ready_tensors(base, paths)
        sweep: dict[tuple[str, int], list[float]] = {}
        for v in variants:
            for m in micro:
                v.model.cpu_micro_batch = m
                warm_up(v, tensors, args.batch_size)
        for r in range(repeats):
            # Settings take turns, starting one later each round, so load from elsewhere hits them alike.
            for m in rotated(micro, r):
                for v in variants:
                    v.model.cpu_micro_batch = m
                    sweep.setdefault((v.label, m), []).append(run_ceiling(v, tensors, args.batch_size)[0])
            for v in variants:
                log(f"round {r + 1}/{repeats} {v.label}: " + ", ".join(
                    f"{m}: {n / sweep[(v.label, m)][-1]:.1f}" for m in micro) + " images/s")
        best_micro = {v.label: min(micro, key=lambda m: min(sweep[(v.label, m)])) for v in variants}
        for v in variants:
            v.model.cpu_micro_batch = shipped[v.label]

        # The pipeline on the default runtime, at its shipped micro-batch and at the best one found above.
        pipeline: dict[tuple[int, int, int], list[float]] = {}
        default_micro = sorted({shipped[default.label], best_micro[default.label]})
        for m in default_micro:
            default.model.cpu_micro_batch = m
            for b in TUNE_BATCHES:
                warm_up(default, tensors, b)
        settings_ = [(m, w, b) for m in default_micro for w in TUNE_WORKERS for b in TUNE_BATCHES]
        for r in range(repeats):
            for m, w, b in rotated(settings_, r):
                default.model.cpu_micro_batch = m
                seconds = run_pipeline(default.model, folder, Path(tmp) / f"store-{r}-{m}-{w}-{b}", b, w, paths)[0]
                pipeline.setdefault((m, w, b), []).append(seconds)
            for m in default_micro:
                log(f"round {r + 1}/{repeats} pipeline, micro-batch {m}: " + ", ".join(
                    f"{w}w/b{b}: {n / pipeline[(m, w, b)][-1]:.1f}" for w in TUNE_WORKERS for b in TUNE_BATCHES))
        default.model.cpu_micro_batch = shipped[default.label]

    rate = lambda seconds: n / min(seconds)  # noqa: E731
    print(f"{base.name}{f' ({RANDOM_WEIGHTS})' if weights == RANDOM_WEIGHTS else ''}, {n} images from {source}, "
          f"batch {args.batch_size}, best of {repeats} round(s)\n")
    print("Ceiling (images/s) by micro-batch size:\n")
    print("| runtime | " + " | ".join(f"micro {m}" for m in micro) + " | shipped | fastest |")
    print("|---|" + "---:|" * (len(micro) + 2))
    for v in variants:
        cells = " | ".join(f"{rate(sweep[(v.label, m)]):.1f}" for m in micro)
        print(f"| {v.describe()} | {cells} | {shipped[v.label]} | {best_micro[v.label]} |")
    print(f"\nPipeline on {default.describe()} (images/s) by workers and batch size:\n")
    print("| micro-batch | workers | " + " | ".join(f"batch {b}" for b in TUNE_BATCHES) + " |")
    print("|---:|---:|" + "---:|" * len(TUNE_BATCHES))
    for m in default_micro:
        for w in TUNE_WORKERS:
            print(f"| {m} | {w} | " + " | ".join(f"{rate(pipeline[(m, w, b)]):.1f}" for b in TUNE_BATCHES) + " |")
    best_pipe = max(pipeline, key=lambda k: rate(pipeline[k]))
    print("\nFastest micro-batch: " + ", ".join(f"{k} {m}" for k, m in best_micro.items())
          + f". Fastest pipeline: micro-batch {best_pipe[0]}, {best_pipe[1]} workers, batch {best_pipe[2]} "
          f"({rate(pipeline[best_pipe]):.1f} images/s). Load average before {load_before[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs.")

    write_json(result_path(args, base.name, device, stem="ingest-tune"), {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": bench_machine(device, load_before),
        "config": {"model": base.name, "weights": weights, "images": n, "image_source": source,
                   "batch_size": args.batch_size, "repeats": repeats, "quick": args.quick,
                   "default_runtime": {"runtime": default.runtime, "precision": default.precision,
                                       "description": default.describe()},
                   "shipped_micro_batch": shipped},
        "micro_batch": [{"runtime": v.runtime, "precision": v.precision, "description": v.describe(),
                         "micro_batch": m, "rounds": [round(x, 3) for x in sweep[(v.label, m)]],
                         "images_per_second": round(rate(sweep[(v.label, m)]), 2)}
                        for v in variants for m in micro],
        "pipeline": [{"micro_batch": m, "workers": w, "batch_size": b,
                      "rounds": [round(x, 3) for x in pipeline[(m, w, b)]],
                      "images_per_second": round(rate(pipeline[(m, w, b)]), 2)} for (m, w, b) in pipeline],
        "fastest": {"micro_batch": best_micro,
                    "pipeline": {"micro_batch": best_pipe[0], "workers": best_pipe[1], "batch_size": best_pipe[2],
                                 "images_per_second": round(rate(pipeline[best_pipe]), 2)}}})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="number of images (default 512; --tune 256)")
    parser.add_argument("--model", default="effnet-lite0", help="model name for core.models (default effnet-lite0)")
    parser.add_argument("--random-weights", action="store_true",
                        help="OpenCLIP models: the real architecture with random weights (speed only)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--workers", type=int, default=None, help="decode threads for (c) (default ATLAS_WORKERS)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads, also the ONNX Runtime and OpenVINO threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds; each path's best counts (default 3; --tune 2)")
    parser.add_argument("--quick", action="store_true", help="64 images and one round, to check that it runs")
    parser.add_argument("--tune", action="store_true",
                        help="sweep micro-batch per runtime and workers x batch size on train images instead")
    parser.add_argument("--cache-dir", default=None, help="exported models go here (default ATLAS_CACHE_DIR)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/ingest-<model>-<device>[-quick].json, "
                             "--tune: ingest-tune-<model>.json)")
    args = parser.parse_args(argv)
    args.cache_dir = args.cache_dir or settings.get("ATLAS_CACHE_DIR")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    return tune(args) if args.tune else bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
