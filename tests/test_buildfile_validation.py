"""Build-file values are checked as the OCI image and runtime specs require before anything is built:
env keys non-empty and without ``=``, absolute ``workdir`` and ``volumes``, ports 1-65535, a known
stop signal, and no NUL byte in any string that reaches the config or a tar header. Each bad value is
one error line naming the key, and nothing is written; library callers (``ImageSettings``, plans from
JSON) get the same ``ConfigError``.

Relative paths in the build file are relative to its project folder, wherever ocibuild runs: the
air-gapped flow (``ocibuild fetch`` then a build with ``[python] find_links``) works from another
folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ocibuild
from ocibuild import BuildPlan, ConfigError, FileEntry, ImageSettings, LayerSpec, PythonSpec, load_plan
from ocibuild.plan import check_setting

SCRATCH = 'base = "scratch"\n'
LAYER = '[[layers]]\nsrc = "app.txt"\ndest = "/app/app.txt"\n'


def ocibuild_cli(*args: str | Path, cwd: Path | None = None, cache: Path,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=900)


def project(tmp_path: Path, build_file: str, name: str = "ocibuild.toml") -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "app.txt").write_text("hello\n")
    (p / name).write_text(build_file)
    return p


def assert_refused(proc: subprocess.CompletedProcess[str], prefix: str, fragment: str, out: Path,
                   cache: Path) -> None:
    """Exit 1, exactly one error line, ``prefix: fragment`` in it, no traceback, nothing written."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocibuild: error:")]
    assert len(lines) == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"ocibuild: error: {prefix}: {fragment}" in lines[0], lines[0]
    assert not out.exists(), "an output was written"
    assert not (cache / "tmp").exists() or not any((cache / "tmp").iterdir())


# (build file after `base = "scratch"`, the error after "<build file>: ")
BAD_VALUES = [
    ('[env]\n"A=B" = "1"\n', "env: key 'A=B' must not contain '='"),
    ('[env]\n"" = "1"\n', "env: a key is empty; every entry needs a name"),
    ('[env]\n"=" = "1"\n', "env: key '=' must not contain '='"),
    ('[env]\nA = "x\\u0000y"\n', "env.A 'x\\x00y' must not contain a NUL byte"),
    ('[env]\n"A\\u0000B" = "1"\n', "env: key 'A\\x00B' must not contain a NUL byte"),
    ('entrypoint = ["/bin/app", "--x\\u0000"]\n', "entrypoint[1] '--x\\x00' must not contain a NUL byte"),
    ('cmd = "run \\u0000now"\n', "cmd 'run \\x00now' must not contain a NUL byte"),
    ('workdir = "app"\n', "workdir 'app' must be an absolute path in the image, e.g. '/app'"),
    ('workdir = "/a\\u0000b"\n', "workdir '/a\\x00b' must not contain a NUL byte"),
    ('user = "app\\u0000"\n', "user 'app\\x00' must not contain a NUL byte"),
    ('volumes = ["/data", "cache"]\n', "volumes[1] 'cache' must be an absolute path in the image"),
    ('volumes = ["/da\\u0000ta"]\n', "volumes[0] '/da\\x00ta' must not contain a NUL byte"),
    ('stop_signal = "SIGFOO"\n', "stop_signal 'SIGFOO' is not a signal; use a name such as 'SIGTERM'"),
    ('stop_signal = "0"\n', "stop_signal '0' is not a signal"),
    ('stop_signal = "65"\n', "stop_signal '65' is not a signal"),
    ('stop_signal = "SIGRTMIN+16"\n', "stop_signal 'SIGRTMIN+16' is not a signal"),
    ('stop_signal = "SIGTERM\\u0000"\n', "stop_signal 'SIGTERM\\x00' must not contain a NUL byte"),
    ("ports = [0]\n", "port 0 is not valid"),
    ("ports = [65536]\n", "port 65536 is not valid"),
    ('ports = ["80/xtp"]\n', "port '80/xtp' is not valid"),
    ('[labels]\n"" = "x"\n', "labels: a key is empty"),
    ('[labels]\nversion = "1\\u0000"\n', "labels.version '1\\x00' must not contain a NUL byte"),
    ('[annotations]\n"org.example\\u0000" = "x"\n', "annotations: key 'org.example\\x00' must not contain a NUL"),
    ('[[layers]]\nsrc = "app.txt"\ndest = "/app/\\u0000x"\n', "layers[0].dest '/app/\\x00x' must not contain a NUL"),
    ('[[layers]]\nsrc = "app\\u0000.txt"\ndest = "/app"\n', "layers[0].src 'app\\x00.txt' must not contain a NUL"),
    ('[[layers]]\nsrc = "app.txt"\ndest = "/app"\nname = "n\\u0000"\n', "layers[0].name 'n\\x00' must not contain"),
    ('[python]\nvenv = "/opt/v\\u0000env"\n', "python.venv '/opt/v\\x00env' must not contain a NUL byte"),
    ('[python]\nextra_index_urls = ["http://x\\u0000"]\n',
     "python.extra_index_urls[0] 'http://x\\x00' must not contain a NUL"),
    ('outputs = ["oci:out\\u0000:v1"]\n', "outputs[0] 'oci:out\\x00:v1' must not contain a NUL byte"),
]


@pytest.mark.parametrize(("toml", "fragment"), BAD_VALUES, ids=[f[:40] for _, f in BAD_VALUES])
def test_bad_build_file_value_is_one_error_naming_the_key(tmp_path: Path, toml: str, fragment: str) -> None:
    proj = project(tmp_path, SCRATCH + toml + ("" if "[[layers]]" in toml else LAYER))
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = ocibuild_cli("build", proj, *([] if "outputs" in toml else ["--output", f"oci:{out}:v1"]), cache=cache)
    assert_refused(proc, str(proj / "ocibuild.toml"), fragment, out, cache)
    assert not (proj / "out\0").exists()


def test_pyproject_table_is_named_in_the_error(tmp_path: Path) -> None:
    proj = project(tmp_path, '[project]\nname = "x"\nversion = "1"\n[tool.ocibuild]\nbase = "scratch"\n'
                             'workdir = "srv"\n', name="pyproject.toml")
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = ocibuild_cli("build", proj, "--output", f"oci:{out}:v1", cache=cache)
    assert_refused(proc, f"{proj / 'pyproject.toml'} [tool.ocibuild]", "workdir 'srv' must be an absolute path",
                   out, cache)


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--workdir", "srv"], "command line: --workdir 'srv' must be an absolute path in the image"),
    (["--env", "=1"], "--env '=1': expected KEY=VALUE"),
    (["--label", "=1"], "--label '=1': expected KEY=VALUE"),
    (["--port", "99999"], "--port: port '99999' is not valid"),
])
def test_bad_flag_value_is_one_error_naming_the_flag(tmp_path: Path, flags: list[str], fragment: str) -> None:
    proj = project(tmp_path, SCRATCH + LAYER)
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = ocibuild_cli("build", proj, *flags, "--output", f"oci:{out}:v1", cache=cache)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and fragment in proc.stderr, proc.stderr
    assert not out.exists()


def test_valid_values_reach_the_config_unchanged(tmp_path: Path) -> None:
    """Signals by name (any case, SIG optional), real-time name or number; ports with each protocol."""
    proj = project(tmp_path, SCRATCH + 'workdir = "/app"\nvolumes = ["/data"]\nstop_signal = "rtmin+3"\n'
                             'ports = [8080, "53/udp", "9/sctp"]\nuser = "65532:65532"\n[env]\nA = "x=y"\n' + LAYER)
    out = tmp_path / "out"
    proc = ocibuild_cli("build", proj, "--output", f"oci:{out}:v1", "--json", cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    config_digest = json.loads(proc.stdout)["config"]["digest"].split(":", 1)[1]
    config = json.loads((out / "blobs" / "sha256" / config_digest).read_bytes())["config"]
    assert config["StopSignal"] == "rtmin+3" and config["WorkingDir"] == "/app"
    assert config["Env"] == ["A=x=y"] and config["Volumes"] == {"/data": {}}
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp", "9/sctp"}
    for signal in ("SIGTERM", "term", "KILL", "SIGRTMAX-2", "9", "64"):
        check_setting("stop_signal", signal)


# --- the library path: values that do not come from a build file --------------------------------------

LIBRARY_BAD: list[tuple[dict[str, Any], str]] = [
    ({"env": {"A=B": "1"}}, "env: key 'A=B' must not contain '='"),
    ({"env": {"": "1"}}, "env: a key is empty"),
    ({"env": {"A": "\0"}}, "env.A '\\x00' must not contain a NUL byte"),
    ({"entrypoint": ("/bin/app", "a\0b")}, "entrypoint[1] 'a\\x00b' must not contain a NUL byte"),
    ({"entrypoint": "/bin/app --serve"}, "entrypoint must be a list of strings, got str"),
    ({"cmd": ("\0",)}, "cmd[0] '\\x00' must not contain a NUL byte"),
    ({"workdir": "app"}, "workdir 'app' must be an absolute path"),
    ({"volumes": ("data",)}, "volumes[0] 'data' must be an absolute path"),
    ({"stop_signal": "SIGWHATEVER"}, "stop_signal 'SIGWHATEVER' is not a signal"),
    ({"ports": ("0/tcp",)}, "ports: port '0/tcp' is not valid"),
    ({"ports": ("8080/TCP",)}, "ports: port '8080/TCP' is not valid"),
    ({"ports": ("65536",)}, "ports: port '65536' is not valid"),
    ({"labels": {"a": "\0"}}, "labels.a '\\x00' must not contain a NUL byte"),
    ({"annotations": {"": "x"}}, "annotations: a key is empty"),
    ({"user": "a\0"}, "user 'a\\x00' must not contain a NUL byte"),
]


@pytest.mark.parametrize(("kwargs", "fragment"), LIBRARY_BAD, ids=[f[:40] for _, f in LIBRARY_BAD])
def test_image_settings_refuse_bad_values(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        ImageSettings(**kwargs)
    assert str(err.value) == fragment or str(err.value).startswith(fragment), str(err.value)


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"env": {"A=B": "1"}}, "plan.settings: env: key 'A=B' must not contain '='"),
    ({"workdir": "rel"}, "plan.settings: workdir 'rel' must be an absolute path"),
    ({"stop_signal": "SIGNOPE"}, "plan.settings: stop_signal 'SIGNOPE' is not a signal"),
])
def test_plan_json_with_bad_settings_names_the_key(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        BuildPlan.from_dict({"project_dir": ".", "settings": settings})
    assert str(err.value).startswith(fragment), str(err.value)


def test_plan_json_nul_bytes_and_relative_dests(tmp_path: Path) -> None:
    cases = [
        ({"project_dir": ".", "layers": [{"src": ".", "dest": "/a\0"}]}, "plan.layers[0]: dest '/a\\x00' must not"),
        ({"project_dir": ".", "layers": [{"src": ".", "dest": "app"}]}, "plan.layers[0]: dest 'app' must be an abs"),
        ({"project_dir": ".", "layers": [{"files": [{"src": "/x", "dest": "/y\0"}]}]},
         "plan.layers[0].files[0]: dest '/y\\x00' must not"),
        ({"project_dir": ".", "layers": [{"files": [{"src": "/x", "dest": "/y", "mode": 0o17777}]}]},
         "plan.layers[0].files[0]: mode 8191 must be a file mode"),
        ({"project_dir": ".", "outputs": ["oci:o\0:v1"]}, "plan: outputs[0] 'oci:o\\x00:v1' must not contain a NUL"),
        ({"project_dir": "p\0"}, "plan: project_dir 'p\\x00' must not contain a NUL byte"),
        ({"project_dir": ".", "python": {"venv": "venv"}}, "plan.python: venv 'venv' must be an absolute path"),
        ({"project_dir": ".", "python": {"interpreter": "/usr/bin/py\0"}},
         "plan: python.interpreter '/usr/bin/py\\x00' must not contain a NUL byte"),
    ]
    for data, fragment in cases:
        with pytest.raises(ConfigError) as err:
            BuildPlan.from_dict(data)
        assert str(err.value).startswith(fragment), (fragment, str(err.value))
    with pytest.raises(ConfigError, match="dest '/x\\\\x00' must not contain a NUL byte"):
        FileEntry(src=Path("/x"), dest="/x\0")
    with pytest.raises(ConfigError, match="venv 'v' must be an absolute path"):
        PythonSpec(venv="v")


def test_plan_file_with_bad_value_on_the_command_line(tmp_path: Path) -> None:
    """``ocibuild build --plan FILE``: the same one line, naming the plan key."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"project_dir": str(tmp_path), "settings": {"env": {"A=B": "1"}}}))
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = ocibuild_cli("build", "--plan", plan, "--output", f"oci:{out}:v1", cache=cache)
    assert_refused(proc, "plan.settings", "env: key 'A=B' must not contain '='", out, cache)


def test_library_build_with_bad_values_raises_config_error(tmp_path: Path) -> None:
    """``load_plan`` on a bad build file, and plans made in code: ConfigError, before any build."""
    proj = project(tmp_path, SCRATCH + 'stop_signal = "SIGSTOPPP"\n' + LAYER)
    with pytest.raises(ConfigError, match="stop_signal 'SIGSTOPPP' is not a signal"):
        load_plan(proj)
    with pytest.raises(ConfigError, match="dest '/app\\\\x00' must not contain a NUL byte"):
        BuildPlan(project_dir=proj, layers=(LayerSpec(src=Path("app.txt"), dest="/app\0"),))
    with pytest.raises(ConfigError, match="workdir 'app' must be an absolute path"):
        ocibuild.build(BuildPlan(project_dir=proj, settings=ImageSettings(workdir="app")))


# --- relative paths in the build file: joined once with the project folder -----------------------------


def test_relative_paths_are_relative_to_the_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every relative path of the build file, read from another folder, points into the project."""
    proj = project(tmp_path, SCRATCH + LAYER + '[python]\nrequirements = "reqs/requirements.txt"\n'
                                               'find_links = ["wheelhouse", "https://example.invalid/links"]\n'
                                               'project = false\n')
    for cwd in (tmp_path, proj, tmp_path.parent):
        monkeypatch.chdir(cwd)
        plan = load_plan(os.path.relpath(proj, cwd))
        assert plan.python is not None
        assert plan.python.requirements == proj / "reqs" / "requirements.txt"
        assert plan.python.find_links == (str(proj / "wheelhouse"), "https://example.invalid/links")
        assert plan.layers[0].src == Path("app.txt")  # relative to project_dir, by the plan's rule


@pytest.mark.slow
def test_air_gapped_flow_from_another_folder(tmp_path: Path, debian_python_layout: Path) -> None:
    """The air-gapped flow of docs/guides/python-dependencies.md, run from the folder above the project:
    ``ocibuild fetch proj --dest proj/wheelhouse``, then ``ocibuild build proj`` with
    ``[python] find_links = ["wheelhouse"]`` and ``no_index`` in the build file, with no network (a dead
    proxy). Before the fix, the wheelhouse was looked for at proj/proj/wheelhouse. The image equals the one
    built from inside the project."""
    base = f'base = "oci:{debian_python_layout}:bookworm-py"\n'
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "app.py").write_text("import six\nprint(six.__version__)\n")
    (proj / "requirements.txt").write_text("six==1.17.0\n")
    layer = '[[layers]]\nsrc = "app.py"\ndest = "/app/app.py"\n'
    (proj / "ocibuild.toml").write_text(base + layer + '[python]\nrequirements = "requirements.txt"\n')
    cache = tmp_path / "cache"
    fetched = ocibuild_cli("fetch", "proj", "--dest", "proj/wheelhouse", cwd=tmp_path, cache=cache)
    assert fetched.returncode == 0, fetched.stderr
    assert [p.name for p in (proj / "wheelhouse").iterdir()] == ["six-1.17.0-py2.py3-none-any.whl"]

    (proj / "ocibuild.toml").write_text(base + layer + '[python]\nrequirements = "requirements.txt"\n'
                                        'find_links = ["wheelhouse"]\nno_index = true\n')
    offline = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY":
               "http://127.0.0.1:9", "NO_PROXY": "", "http_proxy": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    outside = ocibuild_cli("build", "proj", "--output", "oci:out-outside:v1", "--json", cwd=tmp_path,
                           cache=tmp_path / "cache-outside", env=offline)
    assert outside.returncode == 0, outside.stderr
    inside = ocibuild_cli("build", ".", "--output", "oci:../out-inside:v1", "--json", cwd=proj,
                          cache=tmp_path / "cache-inside", env=offline)
    assert inside.returncode == 0, inside.stderr
    a, b = json.loads(outside.stdout), json.loads(inside.stdout)
    assert a["digest"] == b["digest"]
    assert a["python"]["pins"] == ["six==1.17.0"] and a["python"]["downloaded"] == 1


@pytest.mark.parametrize("settings", [
    {"env": {"A=B": "1"}}, {"env": {"": "1"}}, {"env": {"A": "\0"}}, {"workdir": "rel"}, {"volumes": ["data"]},
    {"ports": ["0"]}, {"ports": ["80/xtp"]}, {"stop_signal": "SIG TERM"}, {"entrypoint": ["a\0"]},
    {"labels": {"": "x"}}, {"user": "\0"},
])
def test_committed_schema_refuses_what_from_dict_refuses(settings: dict[str, Any]) -> None:
    """The JSON Schema other build systems validate against says the same as ``BuildPlan.from_dict``."""
    import jsonschema

    data = {"project_dir": ".", "settings": settings}
    with pytest.raises(ConfigError):
        BuildPlan.from_dict(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, ocibuild.plan_schema())
    good = BuildPlan(project_dir=Path("."), settings=ImageSettings(
        env={"A": "x=y"}, workdir="/app", volumes=("/data",), ports=("8080/tcp", "53", "9/sctp"),
        stop_signal="SIGRTMIN+3", labels={"a": ""}, user="65532"))
    jsonschema.validate(good.to_dict(), ocibuild.plan_schema())


@pytest.mark.slow
def test_uv_lock_of_a_project_built_from_another_folder(tmp_path: Path, debian_python_layout: Path) -> None:
    """``[python] lock = "uv.lock"`` with the project named relative to the current folder: uv is given the
    lock's folder once (it ran in the project folder and looked for proj/proj before the fix)."""
    from ocibuild.python.resolve import uv_binary

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
                                         'dependencies = ["six==1.17.0"]\n')
    (proj / "app.py").write_text("import six\n")
    locked = subprocess.run([uv_binary(), "lock", "--quiet"], cwd=proj, capture_output=True, text=True, timeout=300)
    assert locked.returncode == 0, locked.stderr
    (proj / "ocibuild.toml").write_text(f'base = "oci:{debian_python_layout}:bookworm-py"\n[python]\n'
                                        'lock = "uv.lock"\nproject = false\n' + LAYER.replace("app.txt", "app.py"))
    proc = ocibuild_cli("build", "proj", "--output", "oci:out:v1", "--json", cwd=tmp_path, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["python"]["pins"] == ["six==1.17.0"]
