"""Near-duplicates: groups of points whose vectors are (almost) identical, and exact copies by content hash.
Groups whose members carry different labels come first: one of them is wrong."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import AuditData, CheckResult


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DuplicateCheck:
    similarity: float = 0.98  # cosine at or above which two images count as near-duplicates
    name: str = "duplicate"

    def run(self, data: AuditData) -> CheckResult:
        n = len(data.ids)
        uf = _UnionFind(n)
        nearest = data.knn.similarities[:, 0] if data.knn.k else np.zeros(n)
        rows, cols = np.nonzero(data.knn.similarities >= self.similarity) if data.knn.k else ([], [])
        for r, c in zip(rows, cols):
            uf.union(int(r), int(data.knn.indices[r, c]))
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i, payload in enumerate(data.payloads):
            digest = payload.get("sha1")
            if isinstance(digest, str) and digest:
                by_hash[digest].append(i)
        exact = {i for members in by_hash.values() if len(members) > 1 for i in members}
        for members in by_hash.values():
            for other in members[1:]:
                uf.union(members[0], other)
        groups_of: dict[int, list[int]] = defaultdict(list)
        for i in range(n):
            groups_of[uf.find(i)].append(i)
        groups = [m for m in groups_of.values() if len(m) > 1]
        labels = data.labels

        def mixed(members: list[int]) -> bool:
            return len({str(labels[i]) for i in members}) > 1

        groups.sort(key=lambda m: (not mixed(m), -len(m), m[0]))
        group_id = np.full(n, -1)
        for g, members in enumerate(groups):
            group_id[members] = g
        table = pd.DataFrame({"duplicate_group": group_id, "duplicate_score": np.clip(1.0 - nearest, 0.0, 1.0),
                              "exact_copy": [i in exact for i in range(n)], "is_duplicate_issue": group_id >= 0})
        summary = {"groups": len(groups), "points_in_groups": int((group_id >= 0).sum()),
                   "mixed_label_groups": sum(mixed(m) for m in groups), "exact_copies": len(exact),
                   "similarity": self.similarity}
        return CheckResult(self.name, table, summary, {"groups": groups})
