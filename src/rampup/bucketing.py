"""The stable bucketing hash: (flag salt, subject key) -> bucket in [0, 10000).

Algorithm ``v1`` (documented in docs/bucketing.md, with test vectors)::

    digest = BLAKE2b(utf8(salt + ":" + key), digest_size=8)
    bucket = int.from_bytes(digest, "big") % 10000

BLAKE2b is in every language's standard crypto library, so another service can reproduce a
user's bucket exactly. Python's ``hash()`` is salted per process and is never used. Changing the
algorithm re-buckets every user, so a new one must ship as a new version next to this one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from .model import BUCKETS

__all__ = ["ALGORITHM", "bucket", "bucketer", "prefix_hash", "two_way"]

ALGORITHM = "v1"

_from_bytes = int.from_bytes
T = TypeVar("T")


def prefix_hash(salt: str) -> Any:
    """The BLAKE2b state after ``salt:``; copy it and add a key to hash ``salt:key``."""
    return hashlib.blake2b((salt + ":").encode("utf-8"), digest_size=8)


def bucketer(salt: str) -> Callable[[str], int]:
    """A function key -> bucket for one salt.

    The salt's prefix is hashed once; each call copies that state and adds the key, which is
    about a third cheaper than hashing ``salt:key`` from scratch.
    """
    prefix = prefix_hash(salt)

    def _bucket(key: str) -> int:
        h = prefix.copy()
        h.update(key.encode("utf-8", "surrogatepass"))
        return _from_bytes(h.digest(), "big") % BUCKETS

    return _bucket


def bucket(salt: str, key: str) -> int:
    """The bucket in [0, 10000) of ``key`` for a flag salted with ``salt``."""
    return bucketer(salt)(key)


def two_way(salt: str, bound: int, below: T, rest: T) -> Callable[[str], T]:
    """key -> ``below`` if the key's bucket is under ``bound``, else ``rest``.

    The on/off split is the hot case of evaluation, so this is :func:`bucketer` with the hash
    inlined (one Python call per decision instead of two); tests hold the two to the same
    result.
    """
    copy = prefix_hash(salt).copy

    def choose(key: str) -> T:
        h = copy()
        h.update(key.encode("utf-8", "surrogatepass"))
        return below if _from_bytes(h.digest(), "big") % BUCKETS < bound else rest

    return choose
