"""``oci:`` outputs under concurrency and through symlinks (issue 12, points 2 and 9).

Eight ``python -m ocibuild build`` processes write eight tags into one layout at once, starting from a
missing folder and from an existing layout: every build succeeds, every tag is in ``index.json`` and
names the digest its build printed, and the layout passes the harness validator, oci-image-tool,
umoci and skopeo. A build waits for a lock another writer holds (seen in ``/proc/locks``). An output
that is a symlink is followed: to an empty folder, to a missing one (created), for archives too.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness.layout import images_of_index
from harness.proc import run as run_tool
from harness.proc import skopeo_inspect
from harness.validate import oci_image_tool_validate, validate_layout, validate_output

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
WRITERS = 8


def _project(where: Path, n: int) -> Path:
    """The hello example plus a 1 MB file of its own, so each image has its own big layer to copy."""
    shutil.copytree(HELLO, where)
    (where / "data.bin").write_bytes(n.to_bytes(4, "big") * (1 << 18))
    return where


def _cmd(project: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ocibuild", "build", str(project), "--base", "scratch", *map(str, args)]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "0"}


def _build(project: Path, *args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(project, *args), capture_output=True, text=True, env=_env(cache), timeout=300)


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ocibuild: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in images_of_index(index)]
    assert len(tags) == len(set(tags)), f"a tag is listed twice: {tags}"
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in images_of_index(index)}


def _concurrent_builds(tmp_path: Path, layout: Path) -> dict[str, str]:
    """Start WRITERS builds of different images into ``layout`` at once (one shared cache); return
    tag -> the digest each build printed."""
    projects = [_project(tmp_path / f"p{n}", n) for n in range(WRITERS)]
    procs = [subprocess.Popen(_cmd(p, "--output", f"oci:{layout}:tag{n}"), env=_env(tmp_path / "cache"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n, p in enumerate(projects)]
    results = [p.communicate(timeout=300) for p in procs]
    failed = [(n, err) for n, (p, (_, err)) in enumerate(zip(procs, results, strict=True)) if p.returncode != 0]
    assert not failed, failed
    return {f"tag{n}": out.strip() for n, (out, _) in enumerate(results)}


def _check_with_every_tool(layout: Path, tags: dict[str, str]) -> None:
    validate_layout(layout)
    for tag in tags:  # every image of the layout, by its tag (the SBOM artifacts beside them are not images)
        oci_image_tool_validate(layout, tag)
    listed = run_tool(["umoci", "ls", "--layout", layout], text=True, what="umoci ls").stdout.split()
    assert sorted(listed) == sorted(tags)
    for tag, digest in tags.items():
        assert skopeo_inspect(f"oci:{layout}:{tag}")["Digest"] == digest
        run_tool(["umoci", "stat", "--image", f"{layout}:{tag}"], what="umoci stat")
    assert not [p for p in layout.rglob("*") if ".tmp-" in p.name]


def test_eight_builds_create_one_new_layout(tmp_path: Path) -> None:
    layout = tmp_path / "out" / "shared"  # neither the folder nor its parent exists yet
    printed = _concurrent_builds(tmp_path, layout)
    assert len(set(printed.values())) == WRITERS  # eight different images
    assert _tags(layout) == printed  # no tag lost, each naming what its build printed
    _check_with_every_tool(layout, printed)
    assert (layout / ".ocibuild.lock").is_file()  # the lock stays: removing it would race
    assert sorted(p.name for p in layout.parent.iterdir()) == ["shared"]  # no temp folders beside it


def test_a_layout_made_while_it_is_looked_at_is_not_foreign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race CI once hit: another writer, holding the lock, writes ``oci-layout`` and then its
    blobs while this build checks the folder. What the check lists must be read against an
    ``oci-layout`` looked for afterwards, never before (else the blobs look like foreign files)."""
    from ocibuild.errors import OutputError
    from ocibuild.sinks.layout import LOCK_NAME, OCI_LAYOUT, check_layout

    root = tmp_path / "shared"
    root.mkdir()
    (root / LOCK_NAME).touch()  # the other writer has made the folder and holds its lock
    listing = Path.iterdir

    def iterdir_while_the_other_writer_finishes(self: Path):  # type: ignore[no-untyped-def]
        if self == root:
            (root / "oci-layout").write_bytes(OCI_LAYOUT)
            (root / "blobs" / "sha256").mkdir(parents=True)
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", iterdir_while_the_other_writer_finishes)
    check_layout(root, f"oci:{root}:tag")  # no "non-empty folder but not an OCI layout"
    monkeypatch.undo()
    (root / "oci-layout").unlink()  # a folder with blobs and no oci-layout is refused, as before
    with pytest.raises(OutputError, match="non-empty folder but not an OCI layout"):
        check_layout(root, f"oci:{root}:tag")


def test_eight_builds_add_tags_to_an_existing_layout(tmp_path: Path) -> None:
    layout = tmp_path / "shared"
    first = _build(_project(tmp_path / "first", 99), "--output", f"oci:{layout}:first", cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    printed = _concurrent_builds(tmp_path, layout)
    assert _tags(layout) == {"first": first.stdout.strip(), **printed}
    _check_with_every_tool(layout, {"first": first.stdout.strip(), **printed})


def _waiting_on(lock: Path, pid: int) -> bool:
    """Whether ``pid`` is blocked in flock on ``lock`` (a ``->`` line of /proc/locks)."""
    inode = os.stat(lock).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            at = fields.index("->")
            if int(fields[at + 4]) == pid and fields[at + 5].endswith(f":{inode}"):
                return True
    return False


def test_a_build_waits_for_the_layout_lock(tmp_path: Path) -> None:
    """While another writer holds the layout's lock, a build does not touch index.json; it goes on
    when the lock is released and keeps the tag the other writer added meanwhile."""
    layout = tmp_path / "shared"
    project = _project(tmp_path / "p", 1)
    assert _build(project, "--output", f"oci:{layout}:one", cache=tmp_path / "cache").returncode == 0
    lock = layout / ".ocibuild.lock"
    with lock.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = subprocess.Popen(_cmd(_project(tmp_path / "p2", 2), "--output", f"oci:{layout}:two"),
                                env=_env(tmp_path / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not _waiting_on(lock, proc.pid):
            assert proc.poll() is None, ("the build did not wait for the lock", proc.communicate())
            assert time.monotonic() < deadline, "the build never reached the layout lock"
            time.sleep(0.05)
        # the lock holder's own read-modify-write, while the build waits
        index = json.loads((layout / "index.json").read_text())
        other = dict(index["manifests"][0], annotations={"org.opencontainers.image.ref.name": "meanwhile"})
        index["manifests"].append(other)
        (layout / "index.json").write_text(json.dumps(index))
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert set(_tags(layout)) == {"one", "meanwhile", "two"} and _tags(layout)["two"] == out.strip()


# ---------------------------------------------------------------------------------------------------
# outputs that are symlinks (point 9): the link is followed, the target written (and made if missing)
# ---------------------------------------------------------------------------------------------------

def test_layout_symlink_to_an_empty_folder_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    proc = _build(HELLO, "--output", f"oci:{link}:v1", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and _tags(target) == {"v1": proc.stdout.strip()}
    again = _build(HELLO, "--output", f"oci:{link}:v2", "--label", "x=y", cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    assert set(_tags(target)) == {"v1", "v2"}
    validate_layout(target)


def test_layout_symlink_to_a_missing_folder_creates_it(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("gone/deeper")  # relative, and its parent is missing too
    proc = _build(HELLO, "--output", f"oci:{link}:v1", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "gone" / "deeper"
    assert link.is_symlink() and target.is_dir() and _tags(target) == {"v1": proc.stdout.strip()}


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])
def test_archive_dangling_symlink_writes_its_target(tmp_path: Path, kind: str) -> None:
    link = tmp_path / "image.tar"
    link.symlink_to(tmp_path / "store" / "real.tar")
    proc = _build(HELLO, "--output", f"{kind}:{link}", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink(), "the link was replaced by the archive instead of followed"
    validate_output(tmp_path / "store" / "real.tar")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["real.tar"]


def test_symlink_loop_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for output in (f"oci:{tmp_path / 'a'}:v1", f"oci-archive:{tmp_path / 'a'}"):
        _assert_one_line_error(_build(HELLO, "--output", output, cache=tmp_path / "cache"), "symlink loop",
                               str(tmp_path / "a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "cache"]
