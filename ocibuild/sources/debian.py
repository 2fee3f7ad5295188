"""Bases assembled from Debian packages (see ``ocibuild.debian``), built on demand and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..debian import DebianLock, build_base, debian_arch, platform_for
from ..debian.lock import LOCK_VERSION
from ..errors import ImageNotFound
from ..image import Image
from ..spec import Platform
from ..store import STORE_HINT, ContentStore, atomic_write_bytes
from ..transports import DebianBase
from .base import ANY_PLATFORM, host_platform


def debian_platforms(location: DebianBase) -> tuple[Platform, ...]:
    """The platforms the Debian base is configured for (its ``architectures``)."""
    return tuple(platform_for(a) for a in location.architectures)


def load_debian(location: DebianBase, store: ContentStore, platform: Platform | None, *,
                any_arch: bool = False) -> Image:
    """Build (or take from the cache) the Debian base for ``platform`` (default: the host's).

    Without an explicit lock file the lock lives in the cache, keyed by the package set, so the
    implicit default base is resolved once and then reused byte for byte. ``any_arch`` builds it
    for a platform outside the base's ``architectures`` too (the twin whose interpreter compiles
    ``.pyc`` for another CPU)."""
    offered = debian_platforms(location)
    wanted = host_platform() if platform is None or platform is ANY_PLATFORM else platform
    if not any_arch and not any(p.matches(wanted) for p in offered):
        have = ", ".join(map(str, offered))
        raise ImageNotFound(f"the Debian base is configured for {have}, not {wanted}; add its architecture "
                            f"({debian_arch(wanted)}) to 'architectures' or choose one of those with --platform")
    lock = lock_path(location, store)
    shared_key = f"debian-lock-{LOCK_VERSION}-{lock.stem}"
    fresh = False
    if location.lock is None:
        lock.parent.mkdir(parents=True, exist_ok=True)
        if store.shared is not None and not lock.is_file():  # another machine's resolution (--cache-repo)
            text = store.get_record(shared_key)
            if isinstance(text, str) and _readable_lock(text, lock):
                atomic_write_bytes(lock, text.encode(), hint=STORE_HINT)
            fresh = not lock.is_file()
    (image,) = build_base(location.spec, [wanted], store, lock_path=lock)
    if fresh and lock.is_file():
        store.put_record(shared_key, lock.read_text(encoding="utf-8"))
    return image


def _readable_lock(text: str, where: Path) -> bool:
    """Whether ``text`` reads as a lock file (one from a shared cache is checked before it is used)."""
    from ..debian.lock import LockFile
    from ..errors import ConfigError

    try:
        LockFile.parse(text, where)
    except ConfigError:
        return False
    return True


def lock_path(location: DebianBase, store: ContentStore) -> Path:
    """The lock file of a Debian base: its own ``lock``, else the cache's lock for its package set."""
    if location.lock is not None:
        return location.lock
    key = hashlib.sha256(repr((location.spec.suite, location.spec.packages, location.spec.mirror,
                               location.spec.components)).encode()).hexdigest()[:16]
    return store.root / "debian" / f"{location.spec.suite}-{key}.lock"


def base_lock(location: DebianBase, store: ContentStore, image: Image) -> DebianLock | None:
    """The locked packages (name, version, architecture, ``.deb`` sha256) that ``image``, a base
    :func:`load_debian` made, was assembled from, read back from its lock file. None when the lock no
    longer lists exactly the packages the image's history names (rewritten by another build since)."""
    from ..debian.lock import LockFile
    from ..errors import ConfigError

    path = lock_path(location, store)
    try:
        lock = LockFile.read(path).archs.get(debian_arch(image.config.platform)) if path.is_file() else None
    except ConfigError:
        return None
    if lock is None:
        return None
    built = {word for h in image.config.history for word in (h.comment or "").split()}
    return lock if built == {f"{p.name}={p.version}" for p in lock.packages} else None
