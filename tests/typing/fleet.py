"""Type-checked only (mypy --strict): the fleet API as users and tools write it."""

from __future__ import annotations

from rampup.engine import Snapshot
from rampup.errors import StoreConflict
from rampup.http_source import HttpSource
from rampup.redis_source import RedisSource
from rampup.sources import Source
from rampup.store import Ack, Document, Store


def serving() -> None:
    source: Source = RedisSource("redis://localhost:6379/0?namespace=shop", cache_path="c.json")
    snapshot: Snapshot = source.snapshot
    over_http: Source = HttpSource("https://flags.example.com/shop.json", interval=15)
    status: str = RedisSource("redis://localhost").status
    del snapshot, over_http, status


def writing() -> None:
    store = Store("redis://localhost:6379/0", "shop")
    live: Document | None = store.get()
    try:
        written: Document = store.kill("new-checkout", reason="5xx", by="guard")
    except StoreConflict as exc:
        current: int = exc.current
        del current
    else:
        del written
    acks: list[Ack] = store.live()
    del live, acks
