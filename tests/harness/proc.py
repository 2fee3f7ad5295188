"""The harness's one subprocess runner and its one skopeo wrapper.

Every external tool the harness or a test shells out to goes through :func:`run`: a missing tool, a
timeout or (with ``check``) a non-zero exit is an AssertionError carrying the command and its output.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

Arg = str | os.PathLike[str]


def require_tool(name: str) -> str:
    """Absolute path of ``name`` on PATH; AssertionError if it is missing (tests never skip)."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"required tool not found on PATH: {name} (install it; tests never skip)")
    return path


@overload
def run(cmd: Sequence[Arg], *, timeout: float | None = ..., what: str | None = ..., env: dict[str, str] | None = ...,
        cwd: Path | None = ..., check: bool = ...,
        text: Literal[False] = ...) -> subprocess.CompletedProcess[bytes]: ...


@overload
def run(cmd: Sequence[Arg], *, timeout: float | None = ..., what: str | None = ..., env: dict[str, str] | None = ...,
        cwd: Path | None = ..., check: bool = ..., text: Literal[True]) -> subprocess.CompletedProcess[str]: ...


def run(cmd: Sequence[Arg], *, timeout: float | None = 600, what: str | None = None,
        env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True,
        text: bool = False) -> subprocess.CompletedProcess[Any]:
    """Run a command with stdin closed and output captured (bytes, or str with ``text``).

    AssertionError when the tool is missing, on timeout, and (``check``) on a non-zero exit, with
    stderr and the tail of stdout in the message; ``what`` names the step in those messages.
    """
    argv = [os.fspath(c) for c in cmd]
    require_tool(argv[0])
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, cwd=cwd, text=text,
                           stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{what or argv[0]} timed out after {timeout}s: {' '.join(argv)}") from e
    if check and p.returncode != 0:
        out, err = (p.stdout, p.stderr) if text else (p.stdout.decode(errors="replace"),
                                                      p.stderr.decode(errors="replace"))
        raise AssertionError(
            f"{what or argv[0]} failed (exit {p.returncode}): {' '.join(argv)}\n"
            f"--- stderr ---\n{err}\n--- stdout ---\n{out[-4000:]}")
    return p


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive ``fcntl`` lock on ``path`` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------------
# skopeo
# ---------------------------------------------------------------------------------------------------

@overload
def skopeo(*args: Arg, timeout: float = ..., check: bool = ..., env: dict[str, str] | None = ...,
           text: Literal[True] = ...) -> subprocess.CompletedProcess[str]: ...


@overload
def skopeo(*args: Arg, timeout: float = ..., check: bool = ..., env: dict[str, str] | None = ...,
           text: Literal[False]) -> subprocess.CompletedProcess[bytes]: ...


def skopeo(*args: Arg, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None,
           text: bool = True) -> subprocess.CompletedProcess[Any]:
    """Run ``skopeo ARGS`` (stdin closed; str output unless ``text=False``). ``check``: AssertionError
    with stderr on a non-zero exit."""
    what = f"skopeo {os.fspath(args[0])}" if args else "skopeo"
    if text:
        return run(["skopeo", *args], timeout=timeout, check=check, env=env, text=True, what=what)
    return run(["skopeo", *args], timeout=timeout, check=check, env=env, what=what)


def skopeo_copy(src: str, dest: str, *extra_args: Arg, timeout: float = 180,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``skopeo copy EXTRA_ARGS SRC DEST``; AssertionError with stderr on failure."""
    return skopeo("copy", *extra_args, src, dest, timeout=timeout, env=env)


def skopeo_inspect(ref: str, *extra_args: Arg) -> dict[str, Any]:
    """``skopeo inspect EXTRA_ARGS REF`` parsed as JSON (``oci:/path:tag``, ``docker://host/repo:t``, ...)."""
    result: dict[str, Any] = json.loads(skopeo("inspect", *extra_args, ref).stdout)
    return result


def skopeo_inspect_raw(ref: str, *extra_args: Arg) -> bytes:
    """``skopeo inspect --raw EXTRA_ARGS REF``: the manifest (or index) bytes exactly as stored."""
    return skopeo("inspect", "--raw", *extra_args, ref, text=False).stdout
