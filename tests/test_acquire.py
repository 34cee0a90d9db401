"""Dataset and model acquisition: mirror copies, checksums, no partial files."""

import pytest

from culteval.acquire import (
    ChecksumError,
    ModelError,
    acquire_dataset,
    describe_model,
    download,
)
from culteval.config import ROOT, load_params
from culteval.io import read_json, sha256_file


@pytest.fixture(scope="module")
def cfg():
    return load_params(ROOT / "params.yaml")


def test_mirror_copy_records_provenance(cfg, mirror, tmp_path):
    manifest = acquire_dataset("normad", cfg["datasets"]["normad"], tmp_path / "normad", mirror)
    entry = manifest["files"]["normad_etiquette_final_data.csv"]
    assert entry["origin"] == "mirror"
    assert entry["sha256"] == sha256_file(tmp_path / "normad" / "normad_etiquette_final_data.csv")
    assert entry["subset"].startswith("71 India")
    assert read_json(tmp_path / "normad" / "PROVENANCE.json") == manifest


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
