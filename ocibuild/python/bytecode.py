"""Byte-reproducible ``.pyc`` files, compiled by an interpreter of the image's own Python version.

CPython's ``compileall`` is not reproducible as it is: its output depends on ``PYTHONHASHSEED``
(frozenset constants) and on which modules the process compiled before (marshal writes a
back-reference for an object only when something else holds it; cpython #129724). Here every
batch of files (one layer's) is compiled in one fresh process, in sorted path order, with
``PYTHONHASHSEED=0``, in the ``unchecked-hash`` mode of PEP 552: the ``.pyc`` carries a hash of its
source instead of a timestamp and is used without looking at the source, so read-only images start
from bytecode. The code objects name the file's path inside the image.

Which interpreter (:func:`choose_compiler`): the base's own, run from its unpacked layers on the
build machine through the base's own dynamic loader (no root, no chroot, no emulation) when the base
has the build machine's CPU; for a Debian base of another CPU its twin for the build machine's CPU
(the same ``python3.X`` package: ``.pyc`` do not depend on the CPU); else the build machine's Python
when its major.minor is the image's; else none (the build goes on without ``.pyc`` and says so).
A compiler's ``identity`` goes into the cache key of every layer it compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import LayerError
from ..layers.tarwriter import TarEntry
from ..store import atomic_write_bytes

if TYPE_CHECKING:
    from ..image import Image

__all__ = ["BYTECODE_VERSION", "Compiler", "RootEntry", "add_bytecode", "choose_compiler", "host_compiler",
           "image_compiler", "image_identity", "materialize", "rootfs_compiler"]

BYTECODE_VERSION = "ocibuild-bytecode-1"

# Runs inside the compiling interpreter (any CPython >= 3.7, standard library only, started with -S):
# says its version and cache tag, then answers requests (path, source) with the .pyc bytes, or
# nothing for a file that does not compile (as pip and py3compile skip such files).
_WORKER = r"""
import sys, marshal, warnings
from importlib.util import MAGIC_NUMBER, source_hash
warnings.simplefilter("ignore")
inp, out = sys.stdin.buffer, sys.stdout.buffer
def take(n):
    data = inp.read(n)
    if len(data) != n:
        raise SystemExit(3)
    return data
out.write(("%d.%d %s\n" % (sys.version_info[0], sys.version_info[1], sys.implementation.cache_tag)).encode())
out.flush()
while True:
    n = int.from_bytes(take(4), "big")
    if n == 0:
        break
    path = take(n).decode("utf-8", "surrogateescape")
    source = take(int.from_bytes(take(4), "big"))
    try:
        code = compile(source, path, "exec", dont_inherit=True, optimize=0)
        data = MAGIC_NUMBER + (1).to_bytes(4, "little") + source_hash(source) + marshal.dumps(code)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError):
        data = b""
    out.write(len(data).to_bytes(4, "big"))
    out.write(data)
    out.flush()
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Compiler:
    """How to start an interpreter that compiles for the image: ``argv`` + ``env``, its
    ``version`` (``3.13``) and ``cache_tag`` (``cpython-313``), and an ``identity`` for cache keys."""

    identity: str
    version: str
    cache_tag: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def compile(self, sources: Iterable[tuple[str, Callable[[], bytes]]]) -> Iterator[tuple[str, bytes]]:
        """``(image path, pyc bytes)`` for each ``(image path, read source)``, in sorted path order
        whatever the order given, one fresh process for the whole batch; files that do not compile
        are left out. Sources are read one at a time (memory does not grow with the batch)."""
        ordered = sorted(sources, key=lambda item: item[0])
        proc = subprocess.Popen([*self.argv, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(self.env))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            self._handshake(proc.stdout)
            for path, read in ordered:
                name = path.encode("utf-8", "surrogateescape")
                source = read()
                proc.stdin.write(struct.pack(">I", len(name)) + name + struct.pack(">I", len(source)))
                proc.stdin.write(source)
                proc.stdin.flush()
                size = struct.unpack(">I", _take(proc.stdout, 4, self))[0]
                if size:
                    yield path, _take(proc.stdout, size, self)
            proc.stdin.write(struct.pack(">I", 0))
            proc.stdin.close()
            if proc.wait(timeout=60) != 0:
                raise self._failed(proc)
        except BrokenPipeError:
            raise self._failed(proc) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            if proc.stderr is not None:
                proc.stderr.close()

    def _handshake(self, stdout: IO[bytes]) -> None:
        line = stdout.readline().decode(errors="replace").split()
        if line != [self.version, self.cache_tag]:
            raise LayerError(f"the bytecode compiler {self.description} said {' '.join(line) or 'nothing'}, "
                             f"expected Python {self.version}; build with [python] bytecode = false")

    def _failed(self, proc: subprocess.Popen[bytes]) -> LayerError:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip()[-600:] if proc.stderr else ""
        return LayerError(f"the bytecode compiler {self.description} failed (exit code {proc.returncode}): "
                          f"{err or 'no message'}; build with [python] bytecode = false to skip .pyc files")


def _take(stream: IO[bytes], n: int, compiler: Compiler) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise LayerError(f"the bytecode compiler {compiler.description} stopped answering; "
                         "build with [python] bytecode = false to skip .pyc files")
    return data


def _probe(argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, str] | None:
    """(version, cache tag) of an interpreter, or None when it does not start."""
    try:
        proc = subprocess.run([*argv, "-c", _WORKER], input=struct.pack(">I", 0), capture_output=True,
                              env=dict(env), timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    words = proc.stdout.split(b"\n", 1)[0].decode(errors="replace").split()
    if proc.returncode != 0 or len(words) != 2:
        return None
    return words[0], words[1]


def _probed(root: Path, argv: Sequence[str], env: Mapping[str, str]) -> tuple[str, str] | None:
    """``_probe`` of the interpreter of the unpacked tree ``root``, remembered beside the tree (a fresh
    build then starts no process to learn what the tree's Python is)."""
    note = root.parent / f"{root.name}.probe.json"
    key = [list(argv), sorted(env.items())]
    try:
        saved = json.loads(note.read_bytes())
        if saved["key"] == json.loads(json.dumps(key)):
            return str(saved["version"]), str(saved["cache_tag"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    probed = _probe(argv, env)
    if probed is not None:
        with contextlib.suppress(OSError):
            atomic_write_bytes(note, json.dumps({"key": key, "version": probed[0], "cache_tag": probed[1]}).encode())
    return probed


_ENV = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"}


def host_compiler(version: str) -> Compiler | None:
    """The build machine's own Python, if its major.minor is ``version``."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != version:
        return None
    argv = (sys.executable, "-I", "-S", "-B")
    return Compiler(identity=f"host {sys.version} {sys.implementation.cache_tag}", version=version,
                    cache_tag=sys.implementation.cache_tag or "", argv=argv, env={"PATH": os.defpath, **_ENV},
                    description=f"(this machine's Python {sys.version.split()[0]})")


# --- an interpreter from an unpacked root filesystem --------------------------------------------------

_ELF_PT_INTERP = 3


def elf_interpreter(path: Path) -> str | None:
    """The program interpreter (dynamic loader) an ELF executable names, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF":
                return None
            is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(order + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(order + "I", head, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
            for i in range(min(phnum, 256)):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                if is64:
                    ptype, _flags, offset, _va, _pa, size = struct.unpack_from(order + "IIQQQQ", ph)
                else:
                    ptype, offset, _va, _pa, size = struct.unpack_from(order + "IIIII", ph)
                if ptype == _ELF_PT_INTERP:
                    f.seek(offset)
                    return f.read(min(size, 4096)).rstrip(b"\0").decode(errors="replace")
    except (OSError, struct.error):
        return None
    return None


def _inside(root: Path, path: str, hops: int = 40) -> Path | None:
    """``path`` (absolute, in the image) resolved inside ``root``: symlinks followed as the image sees
    them, never out of ``root``."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        if here.is_symlink():
            hops -= 1
            if hops < 0:
                return None
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        done.append(part)
    found = root.joinpath(*done)
    return found if found.exists() else None


_LIB_DIRS = ("/usr/local/lib", "/lib", "/usr/lib", "/lib64", "/usr/lib64")


def _library_dirs(root: Path) -> list[str]:
    dirs: list[str] = []
    conf = root / "etc" / "ld.so.conf.d"
    listed = []
    if conf.is_dir():
        for f in sorted(conf.glob("*.conf")):
            listed += [ln.strip() for ln in f.read_text(errors="replace").splitlines()
                       if ln.strip().startswith("/")]
    for d in [*listed, *_LIB_DIRS]:
        found = _inside(root, d)
        if found is None or not found.is_dir():
            continue
        for candidate in [found, *sorted(p for p in found.iterdir() if p.is_dir() and "-linux-" in p.name)]:
            s = str(candidate.resolve())
            if s not in dirs:
                dirs.append(s)
    return dirs


def rootfs_compiler(root: Path, interpreter: str, *, identity: str, version: str) -> Compiler | None:
    """The interpreter at ``interpreter`` (a path in the image) of the unpacked tree ``root``, started
    through the tree's own dynamic loader and libraries; None if it does not start or is not ``version``."""
    binary = _inside(root, interpreter)
    if binary is None:
        return None
    loader_path = elf_interpreter(binary)
    loader = _inside(root, loader_path) if loader_path else None
    if loader is None:
        return None
    prefix = posixpath.dirname(posixpath.dirname(_image_path(root, binary)))
    home = _inside(root, prefix)
    if home is None:
        return None
    argv = (str(loader), "--library-path", ":".join(_library_dirs(root)), str(binary), "-s", "-S", "-B")
    env = {"PATH": os.defpath, "PYTHONHOME": str(home), **_ENV}
    probed = _probed(root, argv, env)
    if probed is None or probed[0] != version:
        return None
    return Compiler(identity=identity, version=version, cache_tag=probed[1], argv=argv, env=env,
                    description=f"(the image's {interpreter})")


def _image_path(root: Path, path: Path) -> str:
    return "/" + path.resolve().relative_to(root.resolve()).as_posix()


# --- unpacking the files a compiler needs --------------------------------------------------------------

_PY_LIB = re.compile(r"^/(?:usr/(?:local/)?)?lib(?:64)?/python3(?:\.\d+)?/")
_SKIP_IN_STDLIB = ("/site-packages/", "/dist-packages/", "/test/", "/tests/", "/idlelib/", "/tkinter/",
                   "/turtledemo/", "/ensurepip/")
_SHARED_LIB = re.compile(r"\.so(?:\.[0-9.]+)?$")


def needed_for_compiler(path: str) -> bool:
    """Whether an image path is among what running the interpreter needs: its binaries, the dynamic
    loader and shared libraries in the library folders, the ld.so configuration, the standard library
    (without site-packages, tests and GUI parts)."""
    if _PY_LIB.match(path):
        return not any(s in path for s in _SKIP_IN_STDLIB)
    name = posixpath.basename(path)
    folder = posixpath.dirname(path)
    if folder in ("/usr/bin", "/bin", "/usr/local/bin") and name.startswith("python"):
        return True
    if path.startswith("/etc/ld.so.conf"):
        return True
    top = next((d for d in _LIB_DIRS if folder == d or folder.startswith(d + "/")), None)
    if top is None:
        return False
    depth = folder[len(top):].count("/")
    return depth <= 1 and (bool(_SHARED_LIB.search(name)) or name.startswith("ld-"))


@dataclass(frozen=True, kw_only=True, slots=True)
class RootEntry:
    """One path to create under a root: ``kind`` file/dir/symlink; ``write`` copies a file's bytes into
    an open file; ``linkname`` is a symlink's target (hard links come as files)."""

    path: str
    kind: str
    mode: int = 0o644
    linkname: str = ""
    write: Callable[[IO[bytes]], None] | None = None


def materialize(entries: Iterable[RootEntry], root: Path) -> None:
    """Create ``entries`` under ``root`` (absolute symlinks made relative, so nothing points out)."""
    for e in entries:
        rel = e.path.strip("/")
        if not rel or ".." in rel.split("/"):
            continue
        dest = root / rel
        if e.kind == "dir":
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.is_dir():
            shutil.rmtree(dest)
        if e.kind == "symlink":
            target = e.linkname
            if target.startswith("/"):
                target = os.path.relpath(root / target.lstrip("/"), dest.parent)
            os.symlink(target, dest)
        elif e.kind == "file" and e.write is not None:
            with dest.open("wb") as f:
                e.write(f)
            os.chmod(dest, (e.mode & 0o755) | 0o600)


def tar_root_entries(entries: Iterable[TarEntry]) -> Iterator[RootEntry]:
    """:class:`RootEntry` values for layer entries (relative paths, content from data/source/opener)."""
    for e in entries:
        write = _tar_writer(e) if e.kind == "file" else None
        yield RootEntry(path="/" + e.path, kind=e.kind, mode=e.mode, linkname=e.linkname, write=write)


def entry_bytes(e: TarEntry) -> bytes:
    """The content of a file entry, whichever way it is given."""
    if e.data is not None:
        return e.data
    if e.source is not None:
        return e.source.read_bytes()
    if e.opener is not None:
        with e.opener() as stream:
            return stream.read()
    return b""


def _tar_writer(e: TarEntry) -> Callable[[IO[bytes]], None]:
    def write(out: IO[bytes]) -> None:
        if e.data is not None:
            out.write(e.data)
        elif e.source is not None:
            with e.source.open("rb") as src:
                shutil.copyfileobj(src, out)
        elif e.opener is not None:
            with e.opener() as stream:
                while chunk := stream.read(1 << 20):
                    out.write(chunk)
    return write


def cached_root(cache_dir: Path, identity: str, fill: Callable[[Path], None]) -> Path:
    """A tree under ``cache_dir`` named by ``identity``, filled once by ``fill`` (into a fresh folder
    that is renamed into place when complete: a crash leaves no half tree behind)."""
    name = hashlib.sha256(identity.encode()).hexdigest()[:40]
    final = cache_dir / name
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        fill(work)
        try:
            os.rename(work, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return final


def _unpack_image(image: Image, work: Path) -> None:
    """The files of ``image`` a compiler needs (:func:`needed_for_compiler`; every symlink), under ``work``.
    File contents are spooled to disk while the layers stream, so memory stays flat."""
    from ..imagefs import Entry, merged_view

    spool = work / ".spool"
    spool.mkdir()
    count = itertools.count()

    def reader(entry: Entry, stream: IO[bytes]) -> bytes:
        dest = spool / str(next(count))
        with dest.open("wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        return str(dest).encode()

    view = merged_view(image, keep=lambda e: e.kind == "symlink" or needed_for_compiler(e.path),
                       want=needed_for_compiler, reader=reader)

    def spooled(data: bytes) -> Callable[[IO[bytes]], None]:
        def write(out: IO[bytes]) -> None:
            with open(data.decode(), "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        return write

    entries = []
    for e in view.values():
        if e.kind in ("file", "hardlink") and e.data is not None:
            entries.append(RootEntry(path=e.path, kind="file", mode=e.mode, write=spooled(e.data)))
        elif e.kind == "symlink":
            entries.append(RootEntry(path=e.path, kind="symlink", linkname=e.linkname))
    materialize(entries, work)
    shutil.rmtree(spool)


def image_identity(image: Image, interpreter: str) -> str:
    """What names a compiler taken from ``image``: its layers (diff_ids) and the interpreter path."""
    return json.dumps([BYTECODE_VERSION, interpreter, [str(d) for d in image.config.diff_ids]])


def image_compiler(image: Image, interpreter: str, version: str, *, cache_dir: Path) -> Compiler | None:
    """The image's own ``interpreter``, unpacked once (per set of layers) under ``cache_dir``; None
    when it cannot run here (another CPU, another version, no loader)."""
    if image.config.platform.architecture != _host_arch():
        return None
    identity = image_identity(image, interpreter)
    root = cached_root(cache_dir, identity, lambda work: _unpack_image(image, work))
    return rootfs_compiler(root, interpreter, identity=identity, version=version)


def _host_arch() -> str:
    from ..sources.base import host_platform

    return host_platform().architecture


def choose_compiler(version: str, *candidates: Callable[[], Compiler | None]) -> tuple[Compiler | None, str]:
    """The first candidate that gives a compiler, else the build machine's Python of ``version``;
    with the reason when there is none."""
    for make in candidates:
        found = make()
        if found is not None:
            return found, ""
    host = host_compiler(version)
    if host is not None:
        return host, ""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return None, (f"no .pyc: the image's Python {version} cannot run on this machine and this machine's "
                  f"Python is {here}; run ocibuild with Python {version} to get them")


def add_bytecode(entries: Sequence[TarEntry], compiler: Compiler, *, select: Callable[[str], bool]) -> list[TarEntry]:
    """``entries`` plus a ``__pycache__/NAME.<tag>.pyc`` for every ``.py`` entry whose path ``select``
    accepts (a symlink to a file of the same entries too: Debian links ``sitecustomize.py`` into
    ``/etc``); an existing ``.pyc`` at that path is replaced."""
    files = {e.path: e for e in entries if e.kind == "file"}
    sources: dict[str, TarEntry] = {}
    for e in entries:
        if not e.path.endswith(".py") or not select(e.path):
            continue
        if e.kind == "file":
            sources[e.path] = e
        elif e.kind == "symlink":
            target = posixpath.normpath(e.linkname.lstrip("/") if e.linkname.startswith("/")
                                        else posixpath.join(posixpath.dirname(e.path), e.linkname))
            if target in files:
                sources[e.path] = files[target]
    if not sources:
        return list(entries)
    compiled: dict[str, TarEntry] = {}
    requests = [("/" + path, (lambda e=e: entry_bytes(e))) for path, e in sources.items()]
    for image_path, data in compiler.compile(requests):
        folder, _, name = image_path[1:].rpartition("/")
        pyc = posixpath.join(folder, "__pycache__", f"{name[:-3]}.{compiler.cache_tag}.pyc")
        compiled[pyc] = TarEntry.file(pyc, data)
    return [e for e in entries if e.path not in compiled] + list(compiled.values())
