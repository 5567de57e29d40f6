"""The store adapter: the only package that talks to Qdrant. `open_store` picks the engine from a location."""
from __future__ import annotations

from .base import (CollectionInfo, CollectionNotFound, Filter, Hit, InvalidPointId, PointId, Points, Store,
                   StoreError, StoreLocked, VectorSpec, parse_point_id, parse_point_ids)


def open_store(url: str = "", api_key: str = "", path: str = "./data/qdrant", connect_url: str = "") -> Store:
    """A URL (http/https, or ":memory:" for tests) opens qdrant-client; otherwise the embedded engine in `path`.
    connect_url: where to connect instead of url (the checked address of a visitor's URL, see core.netguard)."""
    if url:
        from .remote import ClientStore

        return ClientStore(url, api_key or None, connect_url=connect_url)
    from .edge import EdgeStore

    return EdgeStore(path)


def open_from_settings() -> Store:
    from .. import settings

    return open_store(settings.get("QDRANT_URL"), settings.get("QDRANT_API_KEY"), settings.get("ATLAS_STORE_PATH"))


__all__ = ["CollectionInfo", "CollectionNotFound", "Filter", "Hit", "InvalidPointId", "PointId", "Points", "Store",
           "StoreError", "StoreLocked", "VectorSpec", "open_store", "open_from_settings", "parse_point_id",
           "parse_point_ids"]
