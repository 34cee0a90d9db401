"""Dataset and model acquisition: mirror copies, checksums, no partial files."""

import os
import shutil

import pytest

from culteval.acquire import (
    ChecksumError,
    ModelError,
    acquire_dataset,
    describe_model,
    download,
    load_model_record,
    model_path,
    write_model_record,
)
from culteval.config import ROOT, load_params
from culteval.io import read_json, sha256_file, sidecar_path, write_json
from culteval.provenance import dataset_provenance


@pytest.fixture(scope="module")
def cfg():
    return load_params(ROOT / "params.yaml")


def test_mirror_copy_records_provenance(cfg, mirror, tmp_path):
    manifest = acquire_dataset("normad", cfg["datasets"]["normad"], tmp_path / "normad", mirror)
    entry = manifest["files"]["normad_etiquette_final_data.csv"]
    assert entry["origin"] == "mirror" and entry["pin"] == "params"
    assert entry["source"] == str(mirror / "normad" / "normad_etiquette_final_data.csv")
    assert entry["sha256"] == sha256_file(tmp_path / "normad" / "normad_etiquette_final_data.csv")
    assert entry["subset"].startswith("71 India")
    # the tracked manifest holds content facts; where the file came from is in its sidecar
    tracked = tmp_path / "normad" / "PROVENANCE.json"
    assert read_json(tracked)["files"]["normad_etiquette_final_data.csv"] == {
        k: entry[k] for k in ("sha256", "url", "subset")}
    side = read_json(sidecar_path(tracked))
    assert side["artifact_sha256"] == sha256_file(tracked)
    assert dataset_provenance(tracked) == manifest
    tracked.write_text(tracked.read_text().replace("71 India", "72 India"))
    assert dataset_provenance(tracked)["local_record"] == "stale"


def test_bad_dataset_checksum_names_file_and_both_hashes(cfg, mirror, tmp_path):
    spec = {**cfg["datasets"]["normad"]}
    fname = "normad_etiquette_final_data.csv"
    spec["files"] = {fname: {**spec["files"][fname], "mirror_sha256": "0" * 64}}
    with pytest.raises(ChecksumError) as err:
        acquire_dataset("normad", spec, tmp_path / "normad", mirror)
    msg = str(err.value)
    real = cfg["datasets"]["normad"]["files"][fname]["mirror_sha256"]
    assert fname in msg and "0" * 64 in msg and real in msg
    assert not (tmp_path / "normad" / fname).exists(), "a file failing its checksum must not be left behind"
    assert not list((tmp_path / "normad").glob("*.part"))


def test_missing_mirror_file(cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="not in the data mirror"):
        acquire_dataset("normad", cfg["datasets"]["normad"], tmp_path / "out", tmp_path)


def test_failed_download_leaves_no_partial_file(tmp_path):
    src = tmp_path / "upstream.csv"
    src.write_text("a,b\n1,2\n")
    dest = tmp_path / "raw" / "upstream.csv"
    with pytest.raises(ChecksumError):
        download(src.as_uri(), dest, "f" * 64, "dataset 'x'")
    assert not dest.exists()
    assert download(src.as_uri(), dest, sha256_file(src), "dataset 'x'") == sha256_file(src)
    assert dest.read_text() == "a,b\n1,2\n"


def test_model_not_a_gguf(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelError, match="not a GGUF file"):
        describe_model("fake", {"path": str(fake)})


def test_model_missing_file(tmp_path):
    with pytest.raises(ModelError, match="model 'ghost': file not found"):
        describe_model("ghost", {"path": str(tmp_path / "ghost.gguf")})


def test_model_wrong_sha256(default_model):
    with pytest.raises(ChecksumError) as err:
        describe_model("gemma", {"path": str(default_model), "sha256": "1" * 64})
    assert "model 'gemma'" in str(err.value) and "1" * 64 in str(err.value)


def test_truncated_gguf_is_rejected(default_model, tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(default_model, "rb") as f:
        cut.write_bytes(f.read(4096))
    with pytest.raises(ModelError, match="model 'cut'"):
        describe_model("cut", {"path": str(cut)})


def test_default_model_record(cfg, default_model):
    sha = cfg["models"]["gemma-3-270m"]["sha256"]
    rec = describe_model("gemma-3-270m", {"path": str(default_model), "sha256": sha})
    assert rec["sha256"] == cfg["models"]["gemma-3-270m"]["sha256"]
    assert rec["gguf"]["architecture"] == "gemma3"
    assert rec["gguf"]["quantization"] == "Q4_K_M"
    assert rec["chat_template"] == "none"


def test_model_record_is_the_same_wherever_the_file_sits(cfg, default_model, tmp_path, monkeypatch):
    spec = cfg["models"]["gemma-3-270m"]  # a packaged model, found in the model cache
    out = []
    for where in ("a", "b/deeper"):  # the same bytes at two paths (a hard link: nothing copied)
        gguf = tmp_path / where / spec["package"] / spec["file"]
        gguf.parent.mkdir(parents=True)
        try:
            os.link(default_model, gguf)
        except OSError:
            shutil.copyfile(default_model, gguf)
        monkeypatch.setenv("CULTEVAL_MODEL_CACHE", str(tmp_path / where))
        json_path = tmp_path / where / "gemma-3-270m.json"
        write_model_record(describe_model("gemma-3-270m", spec), json_path)
        assert read_json(sidecar_path(json_path))["path"] == str(gguf)
        assert model_path(json_path, None) == gguf  # from the sidecar: no params needed
        out.append(json_path.read_bytes())
    assert out[0] == out[1], "data/models/<name>.json depends on where the model file sits"
    assert b'"path"' not in out[0] and str(tmp_path).encode() not in out[0]


def test_model_path_resolves_again_without_a_current_sidecar(cfg, default_model, tmp_path):
    spec = {"path": str(default_model), "sha256": cfg["models"]["gemma-3-270m"]["sha256"]}
    json_path = tmp_path / "gemma-3-270m.json"
    write_model_record(describe_model("gemma-3-270m", spec), json_path)
    sidecar_path(json_path).unlink()  # e.g. a checkout by dvc pull: the sidecar is not tracked
    params = {"models": {"gemma-3-270m": spec}}
    assert model_path(json_path, params, resolve=False) is None
    assert load_model_record(json_path, params)["path"] == str(default_model.resolve())
    assert read_json(sidecar_path(json_path))["path"] == str(default_model.resolve())  # written back
    write_json({"path": str(tmp_path / "gone.gguf"), "artifact_sha256": "0" * 64}, sidecar_path(json_path))
    assert model_path(json_path, params) == default_model.resolve()  # a stale sidecar is not used
    # params now name other bytes than the record was made from: both hashes, and the model
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF other bytes")
    sidecar_path(json_path).unlink()
    with pytest.raises(ChecksumError) as err:
        model_path(json_path, {"models": {"gemma-3-270m": {"path": str(other)}}})
    msg = str(err.value)
    assert "model 'gemma-3-270m'" in msg and spec["sha256"] in msg and sha256_file(other) in msg
    with pytest.raises(ModelError, match="params.models has no entry 'gemma-3-270m'"):
        model_path(json_path, {"models": {}})
