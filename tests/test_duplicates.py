"""Near-duplicates by evidence: distinct images are not grouped even where a model makes them all look alike, copies
(exact and re-encoded) are, and groups never chain pictures that are not near-duplicates of each other."""
import io

import numpy as np
import pytest
from PIL import Image

from core import datasets, models
from core.audit import run_audit
from core.audit.base import AuditData
from core.audit.duplicate_check import DuplicateCheck
from core.knn import knn_graph
from core.store import open_store


def audit_data(x: np.ndarray, labels: list, sha1: list[str] | None = None, k: int = 10) -> AuditData:
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    payloads = [{"sha1": s} for s in (sha1 or [f"h{i}" for i in range(len(x))])]
    return AuditData(list(range(len(x))), x, list(labels), knn_graph(x, k, "exact"), payloads, np.zeros(len(x), bool))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def digits():
    """30 distinct sklearn digits (ten each of 0, 1 and 7) upscaled to 64 px, and copies of four of them, all through
    the real offline effnet-lite0: uncentred features on which most distinct digits have cosine >= 0.98."""
    images, labels, _ = datasets.load_digits()
    rows = np.concatenate([np.flatnonzero(labels == c)[:10] for c in (0, 1, 7)])
    pil = [Image.fromarray(images[i]).resize((64, 64), Image.NEAREST).convert("RGB") for i in rows]
    copies = {0: pil[0], 11: jpeg(pil[11], 75), 22: jpeg(pil[22], 40), 5: jpeg(pil[5], 40)}  # 0: the same file
    model = models.load(models.choose("effnet-lite0"), "cpu")
    x = model.embed_images(pil + list(copies.values()))
    return x, [str(v) for v in labels[rows]], list(copies)


def test_distinct_digits_are_not_grouped_where_one_cosine_groups_them(digits):
    x, labels, _ = digits
    data = audit_data(x[:30], labels)
    fixed = DuplicateCheck(similarity=0.98).run(data)
    assert fixed.summary["points_in_groups"] >= 10  # the failure this replaces: distinct digits as "duplicates"
    result = DuplicateCheck().run(data)
    assert result.summary["groups"] == 0 and not result.table.is_duplicate_issue.any(), result.extra["groups"]
    assert result.summary["rule"] == "adaptive" and 0 < result.summary["ratio"] <= 0.5
    assert result.summary["similarity"] > max(np.sort(data.knn.similarities[:, 0])[-1], 0.98)


def test_exact_and_re_encoded_copies_are_grouped_with_their_originals(digits):
    x, labels, sources = digits
    sha1 = [f"h{i}" for i in range(len(x))]
    sha1[30] = sha1[0]  # the exact copy is the same file; the JPEG copies are other files
    copy_labels = labels + ["7", labels[11], labels[22], labels[5]]  # the exact copy is filed under another label
    result = DuplicateCheck().run(audit_data(x, copy_labels, sha1))
    expected = sorted([sorted([src, 30 + j]) for j, src in enumerate(sources)])
    assert sorted(result.extra["groups"]) == expected, result.summary
    assert result.extra["groups"][0] == [0, 30]  # mixed labels first
    assert result.summary["mixed_label_groups"] == 1 and result.summary["exact_copies"] == 2
    assert result.summary["points_in_groups"] == int(result.table.is_duplicate_issue.sum()) == 8
    assert result.table.exact_copy[[0, 30]].all() and not result.table.exact_copy[[11, 31]].any()
    assert (result.table.duplicate_score[result.table.is_duplicate_issue] < 0.5).all()
    for rep, group in zip(result.extra["representatives"], result.extra["groups"]):
        assert rep in group


def test_three_copies_of_one_image_form_one_group(digits):
    x, labels, _ = digits
    # image 22 and its JPEG copy, plus one more exact file copy of image 22
    x3 = np.vstack([x[:30], x[32], x[22]])
    sha1 = [f"h{i}" for i in range(30)] + ["jpeg", "h22"]
    result = DuplicateCheck().run(audit_data(x3, labels + [labels[22]] * 2, sha1))
    assert result.extra["groups"] == [[22, 30, 31]]


def chain(steps: int, step: float, d: int = 32, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """200 scattered unit vectors plus `steps` points along a line, `step` apart: rows 200.. of the result."""
    rng = np.random.default_rng(seed)
    background = rng.normal(size=(200, d))
    background /= np.linalg.norm(background, axis=1, keepdims=True)
    base, direction = rng.normal(size=d), rng.normal(size=d)
    base /= np.linalg.norm(base)
    direction -= (direction @ base) * base
    direction /= np.linalg.norm(direction)
    line = np.stack([base + t * step * direction for t in range(steps)])
    return np.vstack([background, line / np.linalg.norm(line, axis=1, keepdims=True)]), list(range(200, 200 + steps))


def test_a_chain_does_not_join_its_far_ends_with_a_fixed_similarity():
    x, (a, b, c) = chain(3, 0.15)
    s = x @ x.T
    assert s[a, b] > 0.985 and s[b, c] > 0.985 and s[a, c] < 0.96
    result = DuplicateCheck(similarity=0.98).run(audit_data(x, ["x"] * len(x)))
    together = [g for g in result.extra["groups"] if a in g and c in g]
    assert not together and result.summary["groups"] == 1  # one of the pairs, not the chain
    for group in result.extra["groups"]:
        assert min(s[i, j] for i in group for j in group) >= 0.98


def test_a_long_chain_does_not_join_its_far_ends_adaptively():
    x, line = chain(8, 0.02)
    result = DuplicateCheck().run(audit_data(x, ["x"] * len(x)))
    assert result.summary["groups"] >= 1 and set(result.table.index[result.table.is_duplicate_issue]) <= set(line)
    assert not [g for g in result.extra["groups"] if line[0] in g and line[-1] in g], result.extra["groups"]
    single_link = DuplicateCheck(similarity=float(x[line[0]] @ x[line[1]]) - 1e-6).run(
        audit_data(x, ["x"] * len(x)))
    assert single_link.summary["points_in_groups"] >= 4  # the fixed rule groups the neighbours on the line


def test_an_explicit_similarity_is_the_cosine_on_the_raw_vectors(digits):
    x, labels, _ = digits
    data = audit_data(x[:30], labels)
    nearest = data.knn.similarities[:, 0]
    for bar in (0.97, 0.98, 0.99):
        result = DuplicateCheck(similarity=bar).run(data)
        assert result.summary["rule"] == "fixed" and result.summary["similarity"] == bar
        flagged = result.table.is_duplicate_issue.to_numpy()
        assert not flagged[nearest < bar].any()  # nothing below the user's cosine
        s = data.vectors @ data.vectors.T
        for group in result.extra["groups"]:
            assert min(s[i, j] for i in group for j in group) >= bar - 1e-6
    assert DuplicateCheck(similarity=0.97).run(data).summary["groups"] >= 1


def test_run_audit_takes_the_adaptive_rule_and_an_explicit_one(digits):
    x, labels, _ = digits
    s = open_store(url=":memory:")
    s.create_collection("c", {"m": x.shape[1]})
    s.upsert("c", list(range(1, 31)), {"m": x[:30]}, [{"label": lab, "sha1": f"h{i}"} for i, lab in
                                                      enumerate(labels)])
    adaptive = run_audit(s, "c", checks=["duplicate"], duplicate_similarity=None).results["duplicate"]
    fixed = run_audit(s, "c", checks=["duplicate"], duplicate_similarity=0.98).results["duplicate"]
    assert adaptive.summary["rule"] == "adaptive" and adaptive.summary["groups"] == 0
    assert fixed.summary["rule"] == "fixed" and fixed.summary["groups"] >= 1


def test_two_remote_outliers_are_not_copies_of_each_other():
    """Each is the other's nearest neighbour and both are far from the rest, so their distance is small next to
    their own neighbourhoods; on the collection's scale they are far apart."""
    rng = np.random.default_rng(1)
    d = 32
    centre = np.eye(d)[0]
    cloud = centre + 0.08 * rng.normal(size=(150, d))
    a = np.eye(d)[1]
    b = a + 0.45 * np.eye(d)[2]
    x = np.vstack([cloud, a, b])
    result = DuplicateCheck().run(audit_data(x, ["x"] * len(x)))
    assert not result.table.is_duplicate_issue[[150, 151]].any(), result.summary
    assert DuplicateCheck(similarity=0.9).run(audit_data(x, ["x"] * len(x))).table.is_duplicate_issue[150]
