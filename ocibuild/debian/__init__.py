"""Python base images assembled from Debian packages: no registry, no root, no emulation.

    from ocibuild.debian import DebianSpec, build_base, platform_for
    from ocibuild import ContentStore

    spec = DebianSpec(suite="trixie", packages=("python3", "ca-certificates"))   # Python 3.13
    images = build_base(spec, [platform_for("amd64"), platform_for("arm64")], ContentStore.default(),
                        lock_path=Path("debian.lock"), mtime=0)
    # images[i] is a single-platform Image (its layers in the store): publish it with
    # ocibuild.publish(image, ["oci:out/base:py"]), or join them: ocibuild.mutate.index_of(images).

How it works, step by step (each has its own function for callers that want only part of it):

1. **Indexes** (``sources``, ``release``, ``mirror``): ``dists/<suite>/InRelease`` (or ``Release`` +
   ``Release.gpg``) is fetched from ``spec.mirror`` (default: the host apt's mirror, else
   http://deb.debian.org/debian; ``file://`` works) and verified with ``gpgv`` against
   ``spec.keyring`` (default ``/usr/share/keyrings/debian-archive-keyring.gpg``); a release that
   cannot be verified raises ``SignatureError`` unless ``allow_unsigned=True``. Each
   ``<component>/binary-<arch>/Packages.xz`` is checked against the release's sha256 and every
   ``.deb`` against the index's (or the lock's) sha256; an expired ``Valid-Until`` is refused.
   ``spec.security`` adds ``<suite>-security`` (newest version wins; such packages record their
   mirror in the lock). ``spec.deb_dir`` instead reads the control files of a folder of ``.deb``
   files (offline; the folder is trusted as given).
2. **Resolution** (``resolve``, ``Resolver``): Depends/Pre-Depends with versions (dpkg's version
   order, ``compare_versions``), alternatives, virtual packages; dependencies on Essential packages
   and on ``spec.exclude`` (debconf) are treated as met, so no shell, dpkg or perl comes along unless
   requested. ``resolve(spec, arch, store, lock=PATH, update=False)`` returns a ``DebianLock`` and
   keeps the lock file (TOML, see ``lock``) up to date; with a matching lock no index is fetched.
   Errors: ``UnknownPackage``, ``ResolutionError`` (message shows the chain ``a -> b -> c (>= 1)``).
3. **Unpacking** (``deb``, ``rootfs``): data tars (xz/zst/gz) become ``TarEntry`` values; owners are
   0, modes (setuid too) and symlinks are kept, hard links become files; no maintainer script runs.
   Merged /usr: ``/bin``, ``/sbin``, ``/lib*`` contents move under ``/usr`` and the top-level names
   become links (the loader stays reachable, e.g. ``/lib64/ld-linux-x86-64.so.2``). Generated:
   ``/etc/passwd`` + ``/etc/group`` (root, nobody, nonroot 65532), ``/home/nonroot`` (owned by
   65532), ``/tmp`` 1777, the CA bundle ``/etc/ssl/certs/ca-certificates.crt`` (as
   update-ca-certificates builds it), ``/etc/os-release`` when base-files is not included, and
   ``/var/lib/dpkg/status.d/<package>`` (+ ``.md5sums``) for scanners. With ``spec.slim`` man pages,
   locales and docs (except copyright files) are left out.
4. **Layers** (``build_layers``): core libraries / Python runtime / other packages / generated files
   / nonroot home, each a ``keyed_layer`` keyed by the ``.deb`` sha256s it contains; fixed ``mtime``.
   An unchanged lock rebuilds (and downloads) nothing; a Python update changes one package layer and
   the small generated layer.
5. **Image** (``image_for``): Env PATH (Debian default) and LANG=C.UTF-8, User ``spec.user``
   (default 65532 = nonroot, WorkingDir /home/nonroot), Cmd ``["python3"]`` when python3 is in, one
   history entry per layer, platform as given (``platform_for("arm64")`` -> linux/arm64/v8).

Downloaded indexes and ``.deb`` files are blobs in the content store (an index is found again via a
selector keyed by its URL and sha256). Multi-arch: call per architecture (``build_base`` does).
"""

from ..debianspec import DEFAULT_EXCLUDE
from ..errors import ResolutionError, SignatureError, UnknownPackage
from .assemble import BaseLayer, build_base, build_layers, group_of, image_for, resolve
from .control import Relation, parse_relations
from .index import PackageIndex, PackageInfo
from .lock import DebianLock, LockedPackage, LockFile
from .mirror import DEFAULT_MIRROR, DEFAULT_SECURITY_MIRROR, default_mirror, default_security_mirror, host_mirror
from .release import DEFAULT_KEYRING, Release
from .resolve import Resolver
from .spec import DebianSpec, debian_arch, platform_for
from .version import DebVersion, compare_versions, satisfies

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_KEYRING",
    "DEFAULT_MIRROR",
    "DEFAULT_SECURITY_MIRROR",
    "BaseLayer",
    "DebVersion",
    "DebianLock",
    "DebianSpec",
    "LockFile",
    "LockedPackage",
    "PackageIndex",
    "PackageInfo",
    "Relation",
    "Release",
    "ResolutionError",
    "Resolver",
    "SignatureError",
    "UnknownPackage",
    "build_base",
    "build_layers",
    "compare_versions",
    "debian_arch",
    "default_mirror",
    "default_security_mirror",
    "group_of",
    "host_mirror",
    "image_for",
    "parse_relations",
    "platform_for",
    "resolve",
    "satisfies",
]
