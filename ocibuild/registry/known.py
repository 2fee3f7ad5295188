"""Which blobs each destination repository is known to have, so a push need not ``HEAD`` them again.

A blob is noted once a manifest naming it has been stored in the repository (the registry checked
then that it is there). The memory is only ever a hint: a registry may lose a blob (garbage
collection, a cleanup script), and then the manifest ``PUT`` is answered ``MANIFEST_BLOB_UNKNOWN``;
the pusher forgets what it knew of that repository, makes every blob present the usual way (``HEAD``,
mount or upload) and puts the manifest again (see ``sinks.registry.push_image``). So a wrong memory
costs one round trip, never a broken image.

``KnownBlobs()`` lives in memory (``ocibuild dev`` keeps one for its whole session);
``KnownBlobs(store)`` also keeps a record per repository in the content store, read on first use
and written back after each stored manifest, for fresh processes (``ocibuild build`` in CI). At most
``LIMIT`` digests per repository are kept (the newest), and a record is trusted for ``TTL`` seconds
from when it was started: then every blob is checked again once (for registries that would store a
manifest naming a blob they lost, instead of refusing it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable

from ..errors import OcibuildError
from ..spec import Digest
from ..store import ContentStore
from .transport import Repository

__all__ = ["LIMIT", "TTL", "KnownBlobs"]

LIMIT = 20_000
TTL = 24 * 3600
log = logging.getLogger("ocibuild.registry")


def _key(repo: Repository) -> str:
    return "known-blobs-" + hashlib.sha256(f"{repo.host}/{repo.name}".encode()).hexdigest()[:40]


class KnownBlobs:
    """Digests known to be in each repository (thread-safe); see the module docstring."""

    def __init__(self, store: ContentStore | None = None, *, limit: int = LIMIT, ttl: float = TTL) -> None:
        self.store = store
        self.limit = limit
        self.ttl = ttl
        self._repos: dict[tuple[str, str], dict[str, None]] = {}  # insertion-ordered: oldest first
        self._since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _digests(self, repo: Repository) -> dict[str, None]:
        key = (repo.host, repo.name)
        known = self._repos.get(key)
        if known is not None and time.time() - self._since[key] > self.ttl:
            known = None
        if known is None:
            known = {}
            since = time.time()
            record = self.store.get_record(_key(repo)) if self.store is not None and key not in self._repos else None
            if (isinstance(record, dict) and record.get("repository") == f"{repo.host}/{repo.name}"
                    and isinstance(record.get("since"), int | float) and 0 <= since - record["since"] <= self.ttl):
                since = float(record["since"])
                for text in record.get("digests", ()) if isinstance(record.get("digests"), list) else ():
                    try:
                        known[str(Digest.parse(text))] = None
                    except (ValueError, TypeError):
                        continue
            self._repos[key] = known
            self._since[key] = since
        return known

    def has(self, repo: Repository, digest: Digest) -> bool:
        """Whether ``repo`` is known to hold the blob ``digest``."""
        with self._lock:
            return str(digest) in self._digests(repo)

    def add(self, repo: Repository, digests: Iterable[Digest]) -> None:
        """Note that ``repo`` holds ``digests`` (a manifest naming them was stored), and save the record."""
        with self._lock:
            known = self._digests(repo)
            new = False
            for digest in digests:
                new = known.pop(str(digest), True) is not None or new
                known[str(digest)] = None
            while len(known) > self.limit:
                known.pop(next(iter(known)))
            snapshot = list(known)
            since = self._since[(repo.host, repo.name)]
        if new:
            self._save(repo, snapshot, since)

    def _save(self, repo: Repository, digests: list[str], since: float) -> None:
        if self.store is None:
            return
        try:
            self.store.put_record(_key(repo), {"repository": f"{repo.host}/{repo.name}", "since": since,
                                               "digests": digests})
        except (OcibuildError, OSError) as exc:  # a hint: a push never fails for it
            log.debug("could not save the blobs known in %s: %s", repo, exc)

    def forget(self, repo: Repository) -> None:
        """Forget all ``repo`` was known to hold (it lost a blob), here and in the store's record."""
        with self._lock:
            self._repos[(repo.host, repo.name)] = {}
            self._since[(repo.host, repo.name)] = since = time.time()
        self._save(repo, [], since)
