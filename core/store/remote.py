"""Qdrant through qdrant-client: a server or cluster by URL, or qdrant-client's in-memory mode in tests."""
from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import numpy as np
from qdrant_client import QdrantClient, models

from ..netguard import public_url
from .base import (CollectionInfo, CollectionNotFound, Filter, Hit, PointId, Points, Store, StoreError,
                   VectorSpec, filter_terms, parse_point_id, parse_point_ids, payload_path)


def _client_filter(filter: Filter | None) -> models.Filter | None:
    terms = filter_terms(filter)
    if not terms:
        return None
    must: list[Any] = []
    for path, groups in terms:
        conds: list[Any] = []
        for kind, values in groups.items():
            if kind is bool or len(values) == 1:  # MatchAny takes only texts or only integers
                conds += [models.FieldCondition(key=path, match=models.MatchValue(value=v)) for v in values]
            else:
                conds.append(models.FieldCondition(key=path, match=models.MatchAny(any=values)))
        if not conds:  # an empty list of values matches nothing
            conds.append(models.FieldCondition(key=path, match=models.MatchAny(any=[])))
        must.append(conds[0] if len(conds) == 1 else models.Filter(should=conds))
    return models.Filter(must=must)


def _vector_of(raw: Any, name: str) -> list[float] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return raw.get(name)
    return raw


class ClientStore(Store):
    engine = "server"

    def __init__(self, url: str, api_key: str | None = None, timeout: int = 10, connect_url: str = ""):
        """connect_url: the same server with its checked IP address in place of the host name (core.netguard),
        so that a second DNS answer cannot point the client elsewhere; url is still what messages show."""
        self.location = public_url(url)  # messages and the page never show user:password@
        if url == ":memory:":
            self.engine = "in-memory"
        try:
            if url == ":memory:":
                self.client = QdrantClient(location=":memory:")
            else:
                self.client = QdrantClient(url=connect_url or url, api_key=api_key or None, timeout=timeout,
                                           check_compatibility=False)
            self.client.get_collections()  # fail now, with the URL, rather than on first use
        except Exception as exc:
            raise StoreError(self._explain(exc)) from None
        # qdrant-client's local mode is not thread-safe; the HTTP client is, but one lock keeps both simple.
        self._lock = threading.RLock()
        self._specs: dict[str, list[VectorSpec]] = {}

    @classmethod
    def from_client(cls, client: QdrantClient, location: str = "qdrant-client") -> "ClientStore":
        """A store around a client made elsewhere (e.g. local mode on a folder, `QdrantClient(path=...)`)."""
        store = cls.__new__(cls)
        store.client, store.location = client, location
        store.engine = "in-memory" if client._client.__class__.__name__ == "QdrantLocal" else "server"
        store._lock, store._specs = threading.RLock(), {}
        return store

    def _explain(self, exc: Exception) -> str:
        text = str(exc) or type(exc).__name__
        if "401" in text or "403" in text or "nauthorized" in text or "orbidden" in text:
            return (f"The Qdrant server at {self.location} refused the API key ({text}). "
                    "Check QDRANT_API_KEY.")
        return (f"Cannot reach the Qdrant server at {self.location}: {text}. Check QDRANT_URL and that the "
                "server is running (docker compose up), or unset QDRANT_URL to use the embedded engine.")

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except (StoreError, ValueError) as exc:
                if "not found" in str(exc).lower() and isinstance(exc, ValueError):
                    raise CollectionNotFound(str(exc)) from None
                raise
            except Exception as exc:
                text = str(exc)
                if "Not found" in text or "doesn't exist" in text or "404" in text:
                    raise CollectionNotFound(f"Not found at {self.location}: {text}") from None
                if "onnect" in text or "imed out" in text:
                    raise StoreError(self._explain(exc)) from None
                raise StoreError(f"Qdrant at {self.location} failed: {text}") from None

    # --- collections -------------------------------------------------------------------------------------------
    def collection_exists(self, name: str) -> bool:
        return bool(self._call(self.client.collection_exists, name))

    def collection_info(self, name: str) -> CollectionInfo:
        if not self.collection_exists(name):
            raise CollectionNotFound(f"Collection '{name}' does not exist at {self.location}.")
        info = self._call(self.client.get_collection, name)
        vectors_cfg = info.config.params.vectors
        if isinstance(vectors_cfg, models.VectorParams):
            specs = [VectorSpec("", vectors_cfg.size, vectors_cfg.distance.value)]
        else:
            specs = [VectorSpec(n, p.size, p.distance.value) for n, p in (vectors_cfg or {}).items()]
        points = self._call(self.client.count, name, exact=True).count
        return CollectionInfo(name, points, specs)

    def list_collections(self) -> list[CollectionInfo]:
        names = sorted(c.name for c in self._call(self.client.get_collections).collections)
        return [self.collection_info(n) for n in names]

    def create_collection(self, name: str, vectors: Mapping[str, int]) -> None:
        if self.collection_exists(name):
            raise StoreError(f"Collection '{name}' already exists at {self.location}.")
        self._specs.pop(name, None)
        params = {vname: models.VectorParams(size=int(size), distance=models.Distance.COSINE)
                  for vname, size in vectors.items()}
        config: Any = params[""] if list(params) == [""] else params
        self._call(self.client.create_collection, name, vectors_config=config)
        if self.engine != "in-memory":  # local mode ignores payload indexes and warns
            self._call(self.client.create_payload_index, name, "label", models.PayloadSchemaType.KEYWORD)

    def delete_collection(self, name: str) -> None:
        self._specs.pop(name, None)
        self._call(self.client.delete_collection, name)

    # --- points ------------------------------------------------------------------------------------------------
    def upsert(self, name: str, ids: Sequence[PointId], vectors: Mapping[str, np.ndarray],
               payloads: Sequence[dict[str, Any]]) -> None:
        ids = parse_point_ids(ids)
        columns = {vname: np.asarray(mat, dtype=np.float32).tolist() for vname, mat in vectors.items()}
        points = []
        for i, pid in enumerate(ids):
            vec: Any = columns[""][i] if list(columns) == [""] else {v: c[i] for v, c in columns.items()}
            points.append(models.PointStruct(id=pid, vector=vec, payload=payloads[i]))
        self._call(self.client.upsert, name, points=points, wait=True)

    def _using(self, name: str, vector: str | None) -> str:
        # Vector names of a collection never change, so a query costs one request, not four.
        specs = self._specs.get(name)
        if specs is None:
            specs = self._specs[name] = self.collection_info(name).vectors
        return CollectionInfo(name, 0, specs).vector(vector).name

    def scroll(self, name: str, vector: str | None = None, with_vectors: bool = True,
               filter: Filter | None = None, payload_keys: Sequence[str] | None = None,
               page_size: int = 5000, limit: int | None = None) -> Points:
        using = self._using(name, vector) if with_vectors else ""
        with_payload: Any = [payload_path(k) for k in payload_keys] if payload_keys is not None else True
        with_vector: Any = ([using] if using else True) if with_vectors else False
        ids: list[PointId] = []
        rows: list[list[float]] = []
        payloads: list[dict[str, Any]] = []
        offset = None
        while True:
            want = page_size if limit is None else min(page_size, limit - len(ids))
            records, offset = self._call(self.client.scroll, name, scroll_filter=_client_filter(filter),
                                         limit=want, offset=offset, with_payload=with_payload,
                                         with_vectors=with_vector)
            for rec in records:
                vec = _vector_of(rec.vector, using) if with_vectors else None
                if with_vectors and vec is None:
                    continue
                ids.append(rec.id)
                payloads.append(rec.payload or {})
                if with_vectors:
                    rows.append(vec)
            if offset is None or (limit is not None and len(ids) >= limit):
                break
        return Points(ids, _matrix(rows, len(ids)) if with_vectors else None, payloads)

    def retrieve(self, name: str, ids: Sequence[PointId], vector: str | None = None,
                 with_vectors: bool = False) -> Points:
        ids = parse_point_ids(ids)
        using = self._using(name, vector) if with_vectors else ""
        records = self._call(self.client.retrieve, name, ids=ids, with_payload=True,
                             with_vectors=([using] if using else True) if with_vectors else False)
        by_id = {parse_point_id(r.id): r for r in records}  # local mode keeps ids as they were written
        found = [pid for pid in ids if pid in by_id]
        rows = [_vector_of(by_id[pid].vector, using) for pid in found] if with_vectors else []
        return Points(found, _matrix(rows, len(found)) if with_vectors else None,
                      [by_id[pid].payload or {} for pid in found])

    def query(self, name: str, vector: Sequence[float] | np.ndarray, using: str | None = None, k: int = 10,
              filter: Filter | None = None, hnsw_ef: int | None = None, exact: bool = False,
              score_threshold: float | None = None) -> list[Hit]:
        vname = self._using(name, using)
        result = self._call(self.client.query_points, name, query=np.asarray(vector, dtype=np.float32).tolist(),
                            using=vname or None, limit=int(k), query_filter=_client_filter(filter),
                            with_payload=True, score_threshold=score_threshold,
                            search_params=models.SearchParams(hnsw_ef=hnsw_ef, exact=exact))
        return [Hit(p.id, float(p.score), p.payload or {}) for p in result.points]

    def recommend(self, name: str, positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray] = (),
                  using: str | None = None, k: int = 10, filter: Filter | None = None) -> list[Hit]:
        vname = self._using(name, using)
        query = models.RecommendQuery(recommend=models.RecommendInput(
            positive=[np.asarray(v, np.float32).tolist() for v in positives],
            negative=[np.asarray(v, np.float32).tolist() for v in negatives],
            strategy=models.RecommendStrategy.BEST_SCORE))
        result = self._call(self.client.query_points, name, query=query, using=vname or None, limit=int(k),
                            query_filter=_client_filter(filter), with_payload=True)
        return [Hit(p.id, float(p.score), p.payload or {}) for p in result.points]

    def neighbours(self, name: str, ids: Sequence[PointId], k: int, vector: str | None = None,
                   filter: Filter | None = None, exact: bool = False) -> list[list[Hit]]:
        # One request for the page: each query names a point id, so the server searches with its stored vector
        # (on its HNSW index unless exact) and no vector crosses the network. The server leaves the queried point
        # out of its own results; k + 1 and the filter below keep an exact duplicate's self-match out either way.
        ids = parse_point_ids(ids)
        if not ids:
            return []
        vname = self._using(name, vector)
        flt = _client_filter(filter)
        params = models.SearchParams(exact=exact)
        requests = [models.QueryRequest(query=pid, using=vname or None, limit=int(k) + 1, filter=flt,
                                        params=params, with_payload=False, with_vector=False) for pid in ids]
        responses = self._call(self.client.query_batch_points, name, requests=requests)
        out = []
        for pid, response in zip(ids, responses):
            hits = [Hit(parse_point_id(p.id), float(p.score), {}) for p in response.points]
            out.append([h for h in hits if h.id != pid][:k])
        return out

    def set_payload(self, name: str, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        points = parse_point_ids(ids)
        self._call(self.client.set_payload, name, payload=dict(payload), points=points, wait=True)

    def count(self, name: str, filter: Filter | None = None) -> int:
        return self._call(self.client.count, name, count_filter=_client_filter(filter), exact=True).count

    def count_by(self, name: str, key: str, limit: int = 10_000) -> dict[Any, int]:
        if self.engine != "in-memory":
            try:
                hits = self._call(self.client.facet, name, key=payload_path(key), limit=limit, exact=True).hits
                return {h.value: h.count for h in hits}
            except StoreError:
                pass  # no payload index on this key: count a scroll instead
        return self._count_by_scroll(name, key)

    def delete(self, name: str, ids: Sequence[PointId]) -> None:
        points = models.PointIdsList(points=parse_point_ids(ids))
        self._call(self.client.delete, name, points_selector=points, wait=True)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def _matrix(rows: list[list[float]], n: int) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(n, -1)
