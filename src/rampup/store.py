"""The flag store: one versioned flag document per namespace in Redis, written with
compare-and-set, with its history, a change channel and the acknowledgements of live processes.

Keys share one hash tag, so a Redis Cluster keeps a namespace in one slot::

    {rampup:NS}:doc       hash: doc (canonical JSON), version, sha, updated_at, by, reason
    {rampup:NS}:history   list: the last 20 versions, newest first (JSON)
    {rampup:NS}:acks      hash: host:pid -> "sha epoch-seconds" (each serving process)
    {rampup:NS}:changes   pub/sub channel: "version sha" after every write

Writers (the CLI, the dashboard, the guard) use :class:`Store`; serving processes read through
:class:`~rampup.redis_source.RedisSource`. Every write is validated with the same loader as the
runtime first, so the store only ever holds documents a process can serve. This module and
``redis_source`` are the only core modules that import redis-py (``rampup[redis]``).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .config import load
from .errors import MissingDependency, StoreConflict, StoreError

try:
    import redis
except ImportError as exc:  # pragma: no cover - the redis extra is installed in tests
    raise MissingDependency(
        'The Redis flag store needs redis-py: pip install "rampup[redis]"'
    ) from exc

__all__ = [
    "HISTORY_LENGTH",
    "LIVE_SECONDS",
    "Ack",
    "Document",
    "Store",
    "canonical",
    "default_author",
    "parse_url",
    "undone_kills",
]

#: versions kept in the history list
HISTORY_LENGTH = 20
#: a process whose last acknowledgement is older than this is reported stale (gone?)
LIVE_SECONDS = 10.0

# Compare-and-set in one round trip: the version check, the write, the history and the
# publish happen atomically, so two writers can never both win and no reader sees a half write.
_PUSH = """
local cur = redis.call('HGET', KEYS[1], 'version') or '0'
if ARGV[1] ~= '' and cur ~= ARGV[1] then
  local by = redis.call('HGET', KEYS[1], 'by') or ''
  local reason = redis.call('HGET', KEYS[1], 'reason') or ''
  return {0, cur, by, reason}
end
local v = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', v, 'sha', ARGV[3],
  'updated_at', ARGV[4], 'by', ARGV[5], 'reason', ARGV[6])
redis.call('LPUSH', KEYS[2], cjson.encode({version = v, sha = ARGV[3], doc = ARGV[2],
  updated_at = ARGV[4], by = ARGV[5], reason = ARGV[6]}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
if ARGV[9] == '1' then
  redis.call('PUBLISH', ARGV[8], v .. ' ' .. ARGV[3])
end
return {1, tostring(v)}
"""


def _jsonable(value: Any) -> Any:
    """TOML and YAML dates and times as ISO 8601 strings (which the loader reads back)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_plain(value: Any) -> bool:
    """True if ``value`` holds only dicts with str keys, lists and JSON scalars (what
    ``json.loads`` returns): ``_jsonable`` would copy it unchanged, so it need not."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    if kind is list:
        return all(_is_plain(v) for v in value)
    return kind in _SCALARS


@dataclass(frozen=True, slots=True)
class _Prints:
    """A document's fingerprints (``repr``, as the loader's): all but its flags, and each
    flag. Taken from the live document before an update edits it in place."""

    rest: str
    flags: dict[str, str]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> _Prints | None:
        flags = data.get("flags")
        if not isinstance(flags, Mapping):
            return None
        rest = repr({k: v for k, v in data.items() if k != "flags"})
        return cls(rest, {k: repr(v) for k, v in flags.items()})


def _changed_part(new: Mapping[str, Any], old: _Prints) -> dict[str, Any] | None:
    """``new`` with only the flags that differ from ``old`` (the live document's prints), or
    None when more than flags changed (segments, flags added or removed): validate it whole.
    Validating a flag needs only itself and the segment names, so the part is valid iff the
    whole is, given a valid ``old``."""
    new_flags = new.get("flags")
    if not isinstance(new_flags, Mapping):
        return None
    rest = {k: v for k, v in new.items() if k != "flags"}
    if repr(rest) != old.rest or new_flags.keys() != old.flags.keys():
        return None
    changed = {k: v for k, v in new_flags.items() if repr(v) != old.flags[k]}
    return {**rest, "flags": changed}


def canonical(data: Mapping[str, Any]) -> str:
    """The canonical JSON of a flag document: sorted keys, no spaces, dates as ISO strings.

    Two documents that mean the same have the same canonical form, hence the same sha.
    """
    plain = data if _is_plain(data) else _jsonable(data)  # the same text, without a copy
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha_of(text: str) -> str:
    """The sha256 (hex) of a canonical document."""
    return hashlib.sha256(text.encode()).hexdigest()


def default_author() -> str:
    """``user@host``: who a write is recorded as, unless ``by`` is given."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def parse_url(url: str) -> tuple[str, str | None]:
    """``redis://h:6379/0?namespace=shop`` -> (``redis://h:6379/0``, ``"shop"``).

    The namespace is rampup's, not a redis-py option, so it is taken out of the query.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    namespace = next((v for k, v in query if k == "namespace"), None)
    rest = urlencode([(k, v) for k, v in query if k != "namespace"])
    return urlunsplit(parts._replace(query=rest)), namespace or None


@dataclass(frozen=True, slots=True)
class Document:
    """One version of a namespace's flag document, as stored."""

    version: int
    sha: str
    data: Mapping[str, Any]
    updated_at: float
    by: str
    reason: str

    def killed(self) -> frozenset[str]:
        """The keys of the flags this document kills."""
        flags = self.data.get("flags")
        if not isinstance(flags, Mapping):
            return frozenset()
        return frozenset(
            k for k, f in flags.items() if isinstance(f, Mapping) and f.get("killed") is True
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """A serving process's last acknowledgement: the sha it serves, and when it said so."""

    process: str
    sha: str
    at: float

    def age(self, now: float | None = None) -> float:
        """Seconds since the acknowledgement."""
        return (time.time() if now is None else now) - self.at


def undone_kills(live: Document | None, data: Mapping[str, Any]) -> list[str]:
    """Flags the live document kills and ``data`` does not: pushing ``data`` would undo them."""
    if live is None:
        return []
    new = Document(0, "", data, 0.0, "", "").killed()
    return sorted(live.killed() - new)


def _from_entry(e: Mapping[str, Any]) -> Document:
    """A history list entry (JSON, its document as JSON text inside) as a Document."""
    return Document(
        int(e["version"]),
        e["sha"],
        json.loads(e["doc"]),
        float(e.get("updated_at") or 0),
        e.get("by", ""),
        e.get("reason", ""),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Store:
    """A namespace's flag document in Redis: read, push (compare-and-set), kill, rollback,
    history and acknowledgements. Give it a URL or a ``redis.Redis`` client."""

    def __init__(
        self, redis_url: str | Any = "redis://localhost:6379/0", namespace: str = "default"
    ):
        #: the URL the client was made from (None: a client was given)
        self.url: str | None = None
        if isinstance(redis_url, str):
            self.url, ns = parse_url(redis_url)
            namespace = ns or namespace
            self.client: Any = redis.Redis.from_url(
                self.url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
        else:
            self.client = redis_url
        self.namespace = namespace
        tag = f"{{rampup:{namespace}}}"
        self.doc_key = f"{tag}:doc"
        self.history_key = f"{tag}:history"
        self.acks_key = f"{tag}:acks"
        self.channel = f"{tag}:changes"
        self._push = self.client.register_script(_PUSH)

    # -- reading -----------------------------------------------------------------------------
    def head(self) -> tuple[int, str] | None:
        """(version, sha) of the live document, or None if there is none: one cheap call."""
        version, sha = self.client.hmget(self.doc_key, ["version", "sha"])
        if version is None or sha is None:
            return None
        return int(version), _text(sha)

    def get(self) -> Document | None:
        """The live document, or None if nothing was pushed to this namespace."""
        raw = self.client.hgetall(self.doc_key)
        if not raw or b"doc" not in raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return Document(
            int(fields.get("version", 0)),
            fields.get("sha", ""),
            json.loads(fields["doc"]),
            float(fields.get("updated_at", 0) or 0),
            fields.get("by", ""),
            fields.get("reason", ""),
        )

    def history(self) -> list[Document]:
        """The last versions, newest first (at most :data:`HISTORY_LENGTH`)."""
        return [_from_entry(e) for e in self._entries()]

    def _entries(self) -> list[dict[str, Any]]:
        """The history list's entries, newest first, each document still JSON text."""
        return [
            json.loads(raw) for raw in self.client.lrange(self.history_key, 0, HISTORY_LENGTH - 1)
        ]

    # -- writing -----------------------------------------------------------------------------
    def push(
        self,
        data: Mapping[str, Any],
        *,
        reason: str = "",
        by: str | None = None,
        expect: int | None = None,
        publish: bool = True,
    ) -> Document:
        """Validate ``data`` and write it as the next version.

        ``expect``: the version the live document must be at (0: none yet), else
        :class:`~rampup.errors.StoreConflict` naming who wrote last. Raises
        :class:`~rampup.ConfigError` if ``data`` is invalid. ``publish=False`` skips the
        change message (processes still see the write at their next poll).
        """
        return self._write(data, reason=reason, by=by, expect=expect, publish=publish)

    def _write(
        self,
        data: Mapping[str, Any],
        *,
        reason: str,
        by: str | None,
        expect: int | None,
        publish: bool = True,
        live: _Prints | None = None,
    ) -> Document:
        text = canonical(data)
        # the runtime's loader, on what processes will read: the store never holds a
        # document a process would reject (an update of the live document, validated when it
        # was written, validates what it changes: a one-flag kill costs one flag)
        parsed = json.loads(text)
        part = None if live is None else _changed_part(parsed, live)
        load(parsed if part is None else part)
        sha = sha_of(text)
        now = time.time()
        author = by or default_author()
        result = self._push(
            keys=[self.doc_key, self.history_key],
            args=[
                "" if expect is None else str(expect),
                text,
                sha,
                repr(now),
                author,
                reason,
                HISTORY_LENGTH,
                self.channel,
                "1" if publish else "0",
            ],
        )
        if int(result[0]) != 1:
            current, last_by, last_reason = int(result[1]), _text(result[2]), _text(result[3])
            raise StoreConflict(
                f"namespace {self.namespace!r} is at version {current}, not {expect}: "
                f"last written by {last_by or 'unknown'}"
                + (f" ({last_reason})" if last_reason else "")
                + "; review the live document and retry with --expect "
                f"{current}",
                current,
                last_by,
                last_reason,
            )
        return Document(int(result[1]), sha, parsed, now, author, reason)

    def update(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        reason: str,
        by: str | None = None,
        retries: int = 20,
    ) -> Document:
        """Apply ``change`` to the live document and push it with compare-and-set, retrying
        when another writer got there first (``change`` is re-applied to their version)."""
        for attempt in range(retries):
            if attempt:  # back off a little, at random, so racing writers stop colliding
                time.sleep(random.uniform(0, 0.01 * attempt))
            live = self.get()
            if live is None:
                raise StoreError(
                    f"no flag document in namespace {self.namespace!r}: "
                    "push one first (rampup push flags.toml --redis URL)"
                )
            prints = _Prints.of(live.data)
            # live.data is this call's own parse of the document: edited in place, no copy
            data = change(dict(live.data))
            try:
                return self._write(data, reason=reason, by=by, expect=live.version, live=prints)
            except StoreConflict:
                continue
        raise StoreError(f"gave up after {retries} conflicting writes; retry")

    def set_killed(
        self, flag: str, killed: bool, *, reason: str, by: str | None = None
    ) -> Document:
        """Kill (or unkill) one flag, with compare-and-set and retry."""

        def change(data: dict[str, Any]) -> dict[str, Any]:
            flags = data.get("flags") or {}
            if flag not in flags:
                known = ", ".join(sorted(flags)[:20]) or "none"
                raise StoreError(
                    f"no flag {flag!r} in namespace {self.namespace!r} (flags: {known})"
                )
            if killed:
                flags[flag]["killed"] = True
            else:
                flags[flag].pop("killed", None)
            return data

        return self.update(change, reason=reason, by=by)

    def kill(self, flag: str, *, reason: str, by: str | None = None) -> Document:
        """Kill ``flag`` everywhere: it serves its off variant until unkilled."""
        return self.set_killed(flag, True, reason=reason, by=by)

    def unkill(self, flag: str, *, reason: str, by: str | None = None) -> Document:
        """Lift the kill switch of ``flag``."""
        return self.set_killed(flag, False, reason=reason, by=by)

    def rollback(
        self, to: int | None = None, *, reason: str = "", by: str | None = None
    ) -> Document:
        """Push an earlier version again as a new version (``to``: the previous one if None)."""
        entries = self._entries()  # only the two documents used are parsed
        versions = [int(e["version"]) for e in entries]
        if to is None:
            if len(entries) < 2:
                raise StoreError("nothing to roll back to: the history has one version or none")
            target = _from_entry(entries[1])
        elif to in versions:
            target = _from_entry(entries[versions.index(to)])
        else:
            kept = ", ".join(map(str, versions)) or "none"
            raise StoreError(f"version {to} is not in the history (kept: {kept})")
        live = _from_entry(entries[0])
        note = f"rollback to v{target.version}" + (f": {reason}" if reason else "")
        # the newest entry was validated when it was written: validate what differs from it
        return self._write(
            target.data, reason=note, by=by, expect=live.version, live=_Prints.of(live.data)
        )

    # -- acknowledgements --------------------------------------------------------------------
    def ack(self, process: str, sha: str, at: float | None = None) -> None:
        """Record that ``process`` (``host:pid``) serves ``sha``."""
        self.client.hset(self.acks_key, process, f"{sha} {time.time() if at is None else at!r}")

    def acks(self) -> list[Ack]:
        """Every process's last acknowledgement, most recent first."""
        out = []
        for k, v in self.client.hgetall(self.acks_key).items():
            sha, _, at = _text(v).partition(" ")
            try:
                when = float(at)
            except ValueError:
                when = 0.0
            out.append(Ack(_text(k), sha, when))
        return sorted(out, key=lambda a: -a.at)

    def live(self, within: float = LIVE_SECONDS) -> list[Ack]:
        """The acknowledgements of processes heard from in the last ``within`` seconds."""
        now = time.time()
        return [a for a in self.acks() if a.age(now) <= within]

    def forget(self, older_than: float = 3600.0) -> int:
        """Drop acknowledgements older than ``older_than`` seconds (processes long gone)."""
        now = time.time()
        old = [a.process for a in self.acks() if a.age(now) > older_than]
        if old:
            self.client.hdel(self.acks_key, *old)
        return len(old)

    def fresh(self) -> Store:
        """The same store with a new client (after a fork: share no socket or lock with the
        parent). A client given by the caller is kept: redis-py's pool checks its pid."""
        return Store(self.url if self.url is not None else self.client, self.namespace)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()
