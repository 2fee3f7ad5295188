"""SLSA provenance v1 of real builds (ocibuild.attest.slsa_provenance): the subject is every manifest and
the index as written to a layout, externalParameters is the plan (--print-plan's form, read back to an
equal plan), resolvedDependencies name every input by sha256 and origin (the base, wheels from a
wheelhouse and from PyPI, an sdist built here, every .deb of a Debian base, model files), the clock is
never read, and two builds in fresh stores give the same bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.layout import read_blob, tag_descriptor
from test_sbom import EPOCH, deb_folder, debian_plan, python_project, sha256, wheelhouse

import ocibuild
from ocibuild import attest
from ocibuild.debian import LockFile
from ocibuild.version import __version__


def statement(payload: bytes) -> dict[str, Any]:
    assert payload == json.dumps(json.loads(payload), sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()  # canonical JSON
    doc: dict[str, Any] = json.loads(payload)
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    build = doc["predicate"]["buildDefinition"]
    assert build["buildType"] == attest.BUILD_TYPE == "https://ocibuild.dev/buildtypes/image/v1"
    builder = doc["predicate"]["runDetails"]["builder"]
    assert builder["id"] == f"https://ocibuild.dev/ocibuild@{__version__}"
    assert builder["version"] == {"ocibuild": __version__}
    for dep in build["resolvedDependencies"]:
        assert dep.get("uri") or dep.get("digest"), dep
        assert dep["annotations"]["platforms"]
    return doc


def deps_of(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in doc["predicate"]["buildDefinition"]["resolvedDependencies"]
            if d["annotations"]["kind"] == kind}


def scratch_plan(app: Path, epoch: int) -> ocibuild.BuildPlan:
    app.mkdir(parents=True, exist_ok=True)
    (app / "main.py").write_text("print('hi')\n")
    platforms = (ocibuild.Platform.parse("linux/amd64"), ocibuild.Platform.parse("linux/arm64"))
    return ocibuild.BuildPlan(project_dir=app, layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),),
                              platforms=platforms, source_date_epoch=epoch)


def test_subjects_are_the_written_manifests_and_index(tmp_path: Path) -> None:
    plan = scratch_plan(tmp_path / "app", EPOCH)
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store"))
    ocibuild.publish(result, [f"oci:{tmp_path / 'layout'}:v1"])
    index_desc = tag_descriptor(tmp_path / "layout", "v1")
    index = json.loads(read_blob(tmp_path / "layout", index_desc["digest"]))
    written = {index_desc["digest"]} | {m["digest"] for m in index["manifests"]}

    doc = statement(attest.slsa_provenance(result))
    assert {"sha256:" + s["digest"]["sha256"] for s in doc["subject"]} == written
    names = {s["name"]: s for s in doc["subject"]}
    assert set(names) == {"app", "app (linux/amd64)", "app (linux/arm64/v8)"}
    assert names["app"]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert names["app (linux/amd64)"]["annotations"] == {"platform": "linux/amd64"}

    # externalParameters: the plan as --print-plan prints it, which reads back to the same plan
    params = doc["predicate"]["buildDefinition"]["externalParameters"]
    assert params == plan.to_dict() and ocibuild.BuildPlan.from_dict(params) == plan
    assert doc["predicate"]["runDetails"]["metadata"] == {"startedOn": "2023-11-14T22:13:20Z",
                                                          "finishedOn": "2023-11-14T22:13:20Z"}
    assert not deps_of(doc, "base-image")  # scratch has no digest to depend on
    (files,) = deps_of(doc, "project-files").values()
    assert files["digest"]["sha256"] == result.layers[-1].layer.diff_id.hex
    assert files["annotations"]["platforms"] == ["linux/amd64", "linux/arm64/v8"]  # one input, both platforms

    # the library entry: an SBOM per manifest, the provenance attached to each manifest and to the index
    docs = attest.documents(result, kind="cyclonedx")
    sboms = [d for d in docs if d.artifact_type == "application/vnd.cyclonedx+json"]
    provenance = [d for d in docs if d.artifact_type == "application/vnd.in-toto+json"]
    assert {str(d.subject.digest) for d in sboms} == written - {index_desc["digest"]}
    assert {str(d.subject.digest) for d in provenance} == written
    assert {d.payload for d in provenance} == {attest.slsa_provenance(result)}
    assert provenance[0].descriptor().digest == ocibuild.Digest.of(provenance[0].payload)

    # a plan given by the caller (e.g. the --print-plan output) is recorded as given
    custom = {**plan.to_dict(), "outputs": ["oci:out/app:v1"]}
    assert statement(attest.slsa_provenance(result, plan_dict=custom))["predicate"]["buildDefinition"][
        "externalParameters"] == custom


def test_no_time_without_source_date_epoch(tmp_path: Path) -> None:
    result = ocibuild.build(scratch_plan(tmp_path / "app", 0), store=ocibuild.ContentStore(tmp_path / "store"))
    doc = statement(attest.slsa_provenance(result))
    assert "metadata" not in doc["predicate"]["runDetails"]
    (image,) = [p.image for p in result.platforms if p.platform == "linux/amd64"]
    one = attest.slsa_provenance(result, [image])  # only some platforms' images: only those subjects
    assert [s["name"] for s in json.loads(one)["subject"]] == ["app", "app (linux/amd64)"]


def test_wheels_sdist_and_base_with_origins_reproducibly(tmp_path: Path, debian_python_layout: Path) -> None:
    tmp, wheels = tmp_path, wheelhouse(tmp_path / "wheels")
    plan = python_project(tmp / "app", wheels, base=debian_python_layout)
    (plan.project_dir / "requirements.txt").write_text(
        (plan.project_dir / "requirements.txt").read_text() + "docopt==0.6.2\n")  # only an sdist on PyPI
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp / "store1"))
    payload = attest.slsa_provenance(result)
    doc = statement(payload)
    ((subject),) = doc["subject"]
    assert subject["digest"]["sha256"] == result.image.digest.hex and subject["name"] == "app"

    base = deps_of(doc, "base-image")
    assert list(base) == [f"oci:{debian_python_layout}:bookworm-py"]
    assert base[f"oci:{debian_python_layout}:bookworm-py"]["digest"]["sha256"] == result.base.digest.hex
    wheel_deps = deps_of(doc, "wheel")
    for wheel in wheels.glob("*.whl"):
        dep = wheel_deps[wheel.name]
        assert dep["digest"] == {"sha256": sha256(wheel)} and dep["uri"] == wheel.absolute().as_uri()
    six = wheel_deps["six-1.17.0-py2.py3-none-any.whl"]
    assert six["uri"].startswith("https://files.pythonhosted.org/") and six["annotations"]["version"] == "1.17.0"
    assert six["digest"]["sha256"] == "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"
    # docopt: the sdist is the input (its sha256 from PyPI), the wheel built from it a byproduct
    (sdist,) = deps_of(doc, "sdist").values()
    assert sdist["name"] == "docopt-0.6.2.tar.gz" and sdist["uri"].startswith("https://files.pythonhosted.org/")
    assert sdist["digest"]["sha256"] == "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"
    assert "setuptools" in {name.split("==")[0] for name in deps_of(doc, "sdist-build-requirement")}
    built = {b["name"]: b for b in doc["predicate"]["runDetails"]["byproducts"]}
    assert built[sdist["annotations"]["built"]]["annotations"]["built_from"] == "docopt-0.6.2.tar.gz"

    # a fresh store, the same inputs: the same image, SBOM and provenance bytes
    again = ocibuild.build(plan, store=ocibuild.ContentStore(tmp / "store2"))
    assert again.digest == result.digest
    assert attest.slsa_provenance(again) == payload
    assert [d.payload for d in attest.documents(again)] == [d.payload for d in attest.documents(result)]


def test_debian_base_debs_and_model_files(tmp_path: Path) -> None:
    debs = deb_folder(tmp_path / "debs")
    weights = tmp_path / "app" / "weights"
    weights.mkdir(parents=True)
    (weights / "model.onnx").write_bytes(b"onnx" * 1000)
    (weights / "vocab.txt").write_text("a\nb\n")
    plan = debian_plan(tmp_path / "app", debs, tmp_path / "debian.lock",
                       models=(ocibuild.ModelSpec(name="weights", src=Path("weights")),))
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store"))
    doc = statement(attest.slsa_provenance(result))
    lock = LockFile.read(tmp_path / "debian.lock").archs["amd64"]
    deb_deps = deps_of(doc, "deb")
    assert set(deb_deps) == {Path(p.filename).name for p in lock.packages}
    for p in lock.packages:
        dep = deb_deps[Path(p.filename).name]
        assert dep["digest"] == {"sha256": p.sha256} == {"sha256": sha256(debs / p.filename)}
        assert dep["uri"] == (debs / p.filename).as_uri()
        assert dep["annotations"]["package"] == p.name and dep["annotations"]["version"] == p.version
    assert not deps_of(doc, "base-image")  # assembled here: a byproduct, its inputs are the .deb files
    byproducts = {b["annotations"]["kind"]: b for b in doc["predicate"]["runDetails"]["byproducts"]}
    assert byproducts["base-image"]["digest"]["sha256"] == result.base.digest.hex
    assert byproducts["model-image"]["digest"]["sha256"] == result.models[0].image.digest.hex
    models = deps_of(doc, "model-file")
    assert {k: v["digest"]["sha256"] for k, v in models.items()} == {
        f"weights/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest() for f in weights.iterdir()}
    assert models["weights/model.onnx"]["uri"] == (weights / "model.onnx").as_uri()

    # embedded models: the same file hashes, read from the image's model layers
    embedded = ocibuild.build(debian_plan(tmp_path / "app", debs, tmp_path / "debian.lock",
                                          models=plan.models, embed_models=True),
                              store=ocibuild.ContentStore(tmp_path / "store"))
    again = deps_of(statement(attest.slsa_provenance(embedded)), "model-file")
    assert {k: v["digest"] for k, v in again.items()} == {k: v["digest"] for k, v in models.items()}
    assert again["weights/vocab.txt"]["uri"] == (weights / "vocab.txt").as_uri()
