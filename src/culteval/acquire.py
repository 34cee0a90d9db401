"""Dataset and model acquisition with checksums and a provenance manifest.

Datasets come from their pinned upstream URLs, or from an offline mirror laid
out as ``<mirror>/<dataset>/<upstream file name>`` (``CULTEVAL_DATA_MIRROR``).
Models come from a local path, a URL with a sha256, a Hub repository + file +
revision (``hf:``), or a pip package that ships the GGUF: as a file of the installed
distribution (SmolLM2-135M-Instruct, found without importing it) or through its
``assemble(dest)`` (Gemma 3 270M). Downloads resume (HTTP Range into ``<file>.part``),
retry with backoff and show progress on stderr. Every file is hashed; a file not pinned
in params is pinned on first use in the committed lock file (``sources.lock.yaml``). A
mismatch stops the pipeline before any inference with a message naming the file and
both hashes.

The tracked records (``data/raw/<dataset>/PROVENANCE.json``, ``data/models/<name>.json``) hold
content facts only, the same bytes wherever the mirror, the venv or the download host is; where
a file came from or sits goes to their ``*.provenance.json`` sidecars, which DVC ignores.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import importlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from tqdm import tqdm

from culteval.gguf import facts as gguf_facts
from culteval.io import (
    WriteError,
    atomic_path,
    not_a_file,
    read_json,
    sha256_file,
    sha256_text,
    sidecar_path,
    write_json,
)
from culteval.provenance import MANIFEST

# llama.cpp's LLAMA_FTYPE values (general.file_type) for the common quantizations.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 32: "BF16",
}


class ChecksumError(RuntimeError):
    """A file's sha256 differs from the pinned one (``expected`` and ``actual`` hold both)."""

    def __init__(self, message: str, expected: str | None = None, actual: str | None = None):
        super().__init__(message)
        self.expected, self.actual = expected, actual


class ModelError(RuntimeError):
    """A model entry cannot be resolved or its file is not a usable GGUF."""


def verify(path: Path, expected: str | None, what: str, source: str | Path | None = None, *,
           cached: bool = False) -> str:
    """Hash ``path``; raise ChecksumError naming ``source`` (else ``path``) and both hashes on mismatch.

    ``cached``: through culteval.inputs' cache of verified hashes (a file that stays where it is,
    such as a model: the stages that load it next then find its hash there)."""
    from culteval.inputs import file_sha256

    actual = file_sha256(path) if cached else sha256_file(path)
    if expected is not None and actual != expected:
        # name where the bytes came from, not the temporary file they were checked in
        raise ChecksumError(
            f"{what}: sha256 mismatch for {source or path}: expected {expected}, got {actual}",
            expected, actual)
    return actual


class DownloadError(RuntimeError):
    """A URL cannot be fetched (missing upstream file, refused or dropped connections)."""


# Hosts a user may point elsewhere (a proxy, an internal mirror, a test server): env var -> default base.
ENDPOINTS = {
    "CULTEVAL_HF_ENDPOINT": "https://huggingface.co",
    "CULTEVAL_GITHUB_RAW_ENDPOINT": "https://raw.githubusercontent.com",
}
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


def effective_url(url: str) -> str:
    """``url`` with a known host's base replaced by its endpoint override, if one is set."""
    for var, base in ENDPOINTS.items():
        override = os.environ.get(var)
        if override and (url == base or url.startswith(base + "/")):
            return override.rstrip("/") + url[len(base):]
    return url


def hf_url(spec: dict) -> str:
    """Canonical Hub URL of ``{repo, file, revision[, repo_type]}`` (a commit hash pins the bytes)."""
    prefix = "datasets/" if spec.get("repo_type") == "dataset" else ""
    base = ENDPOINTS["CULTEVAL_HF_ENDPOINT"]
    return f"{base}/{prefix}{spec['repo']}/resolve/{spec.get('revision', 'main')}/{spec['file']}"


def _settings() -> tuple[int, float, float]:
    """(attempts, first backoff in s, socket timeout in s), overridable for slow links and tests."""
    env = os.environ.get
    return (int(env("CULTEVAL_DOWNLOAD_RETRIES", "5")) + 1, float(env("CULTEVAL_DOWNLOAD_BACKOFF", "2")),
            float(env("CULTEVAL_DOWNLOAD_TIMEOUT", "60")))


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, asking for a byte Range when part already holds bytes."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "culteval"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https from params)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file already holds everything (or more): start over
            part.unlink()
            raise
        raise
    with response:
        resumed = have and getattr(response, "status", None) == 206
        if have and not resumed:
            have = 0  # the server ignored Range: take the whole body from the start
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
            desc=f"{part.name[:-5]}{' (resumed)' if resumed else ''}", mininterval=1.0, leave=False,
        ) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    if total is not None and part.stat().st_size != total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def download(url: str, dest: Path, expected: str | None, what: str) -> str:
    """Fetch ``url`` into ``dest`` resumably; verify; place it atomically; return its sha256.

    Bytes go to ``<dest>.part``: a dropped connection or an interrupted run resumes
    from there with an HTTP Range request, retried with exponential backoff.
    Only a file whose sha256 matches ``expected`` (when given) is renamed into place;
    a mismatching one is deleted, since resuming bad bytes cannot fix them.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    real = effective_url(url)
    attempts, backoff, timeout = _settings()
    for attempt in range(attempts):
        try:
            _fetch_once(real, part, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRYABLE_HTTP and exc.code != 416:
                hint = " (no such file at this revision?)" if exc.code == 404 else ""
                raise DownloadError(f"{what}: {real} answered HTTP {exc.code} {exc.reason}{hint}") from None
            error: Exception = exc
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, short bodies
            error = exc
        if attempt + 1 < attempts:
            delay = min(backoff * 2 ** attempt, 60.0)
            print(f"{what}: {real}: {error!r}; retry {attempt + 1}/{attempts - 1} in {delay:g} s "
                  f"({part.stat().st_size if part.exists() else 0} bytes kept)", file=sys.stderr)
            time.sleep(delay)
    else:
        raise DownloadError(f"{what}: cannot download {real} after {attempts} attempts: {error!r} "
                            "(offline? set CULTEVAL_DATA_MIRROR to a local data mirror; "
                            f"partial bytes kept in {part} for the next run)")
    try:
        digest = verify(part, expected, what, real)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, dest)
    return digest


LOCK_HEADER = """\
# Trust on first use: sha256 of upstream files that params.yaml does not pin (sha256: null),
# recorded by their first download and verified by every later one. Commit this file.
# An upstream change stops the run naming both hashes; delete an entry only to accept a change.
"""


def lock_path() -> Path:
    """The committed lock file of first-download hashes (CULTEVAL_SOURCES_LOCK overrides)."""
    from culteval.config import project_root

    return Path(os.environ.get("CULTEVAL_SOURCES_LOCK", project_root() / "sources.lock.yaml"))


@contextlib.contextmanager
def _lock_guard(path: Path):
    # Snakemake runs acquire jobs in parallel: one writer at a time, via a lock beside no project file.
    guard = Path(tempfile.gettempdir()) / f"culteval-{sha256_text(str(path.resolve()))[:16]}.flock"
    with open(guard, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_lock(path: Path | None = None) -> dict[str, dict]:
    """URL -> {file, sha256} from the lock file (empty when it does not exist yet)."""
    path = lock_path() if path is None else Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(data.get("sources") or {})


def locked_download(url: str, dest: Path, pinned: str | None, what: str, label: str) -> tuple[str, str]:
    """Download ``url``; verify against ``pinned`` else against (or into) the lock file.

    Returns (sha256, how it was pinned: "params", "lock" or "first use").
    """
    if pinned is not None:
        return download(url, dest, pinned, what), "params"
    path = lock_path()
    recorded = read_lock(path).get(url, {}).get("sha256")
    try:
        digest = download(url, dest, recorded, what)
    except ChecksumError as exc:
        raise ChecksumError(
            f"{what}: upstream file {url} changed since its first download: {path} records "
            f"sha256 {recorded}, the server now sends {exc.actual}. Check the change; to accept it, "
            "delete that entry from the lock file and rerun", recorded, exc.actual) from None
    if recorded is not None:
        return digest, "lock"
    with _lock_guard(path):
        sources = read_lock(path)
        if url not in sources:  # another job may have recorded it meanwhile: keep the first
            sources[url] = {"file": label, "sha256": digest}
            body = yaml.safe_dump({"sources": dict(sorted(sources.items()))}, sort_keys=True,
                                  allow_unicode=True, width=1000)
            with atomic_path(path) as tmp:
                tmp.write_text(LOCK_HEADER + body, encoding="utf-8")
        elif sources[url]["sha256"] != digest:
            raise ChecksumError(f"{what}: {url}: sha256 {digest} differs from {sources[url]['sha256']} "
                                f"recorded meanwhile in {path}")
    return digest, "first use"


def subset_note(spec: dict, fspec: dict, digest: str) -> str | None:
    """The dataset's mirror subset note when the file's CONTENT is the mirror's subset file.

    That is: its sha256 equals the mirror's (``mirror_sha256``) and differs from the pinned
    upstream file (``sha256``; an unpinned one cannot be told apart, so it counts as the subset).
    The same bytes get the same note whether they came from the mirror or from any server.
    """
    mirror_sha = fspec.get("mirror_sha256")
    if mirror_sha is None or digest != mirror_sha or digest == fspec.get("sha256"):
        return None
    return spec.get("subset_in_mirror")


def acquire_dataset(name: str, spec: dict, out_dir: Path, mirror: Path | None) -> dict:
    """Fetch every file of dataset ``name`` into ``out_dir`` and write PROVENANCE.json there.

    PROVENANCE.json (tracked by DVC) holds what the content determines: dataset, license and per
    file its sha256, params URL and subset note. Where each file came from (``origin`` mirror|url,
    ``source``: the mirror path or the URL actually fetched, ``pin``: params|lock|first use) goes to
    its sidecar ``PROVENANCE.json.provenance.json`` (culteval.io.sidecar_path, hidden from DVC), so
    the tracked bytes are the same for any mirror location or download host. Returns the manifest
    with those local facts joined in (what culteval.provenance.dataset_provenance reads back).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, local = {}, {}
    for fname, fspec in sorted(spec["files"].items()):
        dest = out_dir / fname
        what = f"dataset {name!r} file {fname!r}"
        if mirror is not None:
            source = mirror / name / fname
            if not source.is_file():
                raise FileNotFoundError(f"{what}: not in the data mirror at {source}")
            expected, origin, pin = fspec["mirror_sha256"], "mirror", "params"
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
                digest = verify(tmp, expected, what, source)
            where = str(source)
        else:
            origin, where = "url", effective_url(fspec["url"])
            digest, pin = locked_download(fspec["url"], dest, fspec["sha256"], what, f"{name}/{fname}")
        files[fname] = {"url": fspec["url"], "sha256": digest, "subset": subset_note(spec, fspec, digest)}
        # pin: params | lock | first use (sha256 recorded in the lock file by this run)
        local[fname] = {"origin": origin, "source": where, "pin": pin}
    manifest = {"dataset": name, "license": spec["license"], "files": files}
    path = out_dir / MANIFEST
    write_json(manifest, path)
    # the manifest's hash tells a stale sidecar (a run killed in between) from its own
    write_json({"files": local, "artifact_sha256": sha256_file(path)}, sidecar_path(path))
    return {**manifest, "files": {f: {**e, **local[f]} for f, e in files.items()}}


def model_cache() -> Path:
    return Path(os.environ.get("CULTEVAL_MODEL_CACHE", Path.home() / ".cache" / "culteval" / "models"))


def _distribution_file(spec: dict) -> Path | None:
    """The GGUF ``spec['file']`` as a file of the installed distribution ``spec['package']``, if it is one.

    Found through the distribution's file list (importlib.metadata), never by importing the
    package: some model packages import heavy dependencies that are deliberately not installed.
    """
    if "file" not in spec:
        return None
    try:
        dist = importlib.metadata.distribution(spec["package"])
    except importlib.metadata.PackageNotFoundError:
        return None
    if not any(str(f) == spec["file"] for f in dist.files or ()):
        return None
    path = Path(dist.locate_file(spec["file"]))
    return path.resolve() if path.is_file() else None


def resolve_model_file(name: str, spec: dict) -> Path:
    """Local GGUF path for a model entry (downloading or assembling it when needed)."""
    if "path" in spec:
        path = Path(spec["path"]).expanduser()
        if not path.is_file():
            what = not_a_file(path)  # a directory or /dev/zero is no missing file
            raise ModelError(f"model {name!r}: file not found: {path}" if what == "file not found"
                             else f"model {name!r}: {path} {what}")
        return path.resolve()
    cache = model_cache()
    if "url" in spec or "hf" in spec:
        url = spec["url"] if "url" in spec else hf_url(spec["hf"])
        key = spec.get("sha256") or sha256_text(url)[:16]  # an unpinned Hub file is keyed by its URL
        dest = cache / key / Path(url).name
        if not dest.is_file():
            locked_download(url, dest, spec.get("sha256"), f"model {name!r}", f"model {name}")
        return dest
    shipped = _distribution_file(spec)
    if shipped is not None:
        return shipped
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
    """GGUF key-value metadata (:func:`culteval.gguf.read_metadata`), errors naming the model."""
    from culteval.gguf import GGUFError, read_metadata

    try:
        return read_metadata(path)
    except GGUFError as exc:
        raise ModelError(f"model {name!r}: {exc}") from None


def describe_model(name: str, spec: dict) -> dict:
    """Resolve, verify and describe a model entry: the record of data/models/<name>.json, plus the
    file's local ``path`` (which :func:`write_model_record` keeps out of the tracked bytes)."""
    path = resolve_model_file(name, spec)
    expected = spec.get("sha256")
    if expected is None and "hf" in spec:  # trust on first use: the hash its download recorded
        expected = read_lock().get(hf_url(spec["hf"]), {}).get("sha256")
    digest = verify(path, expected, f"model {name!r}", cached=True)
    meta = gguf_metadata(path, name)
    template = meta.get("tokenizer.chat_template")
    from culteval.io import sha256_text

    file_type = meta.get("general.file_type")
    return {
        "name": name,
        "path": str(path),
        "sha256": digest,
        "size_bytes": path.stat().st_size,
        "source": {k: spec[k] for k in ("path", "url", "hf", "package") if k in spec},
        # no group/base: labels for metrics, kept out so relabelling reruns no inference
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


# Where the model file sits (site-packages of this clone's venv, the model cache): machine facts,
# kept out of data/models/<name>.json and written to its sidecar.
MODEL_LOCAL_KEYS = ("path",)


def write_model_record(record: dict, out: str | os.PathLike) -> None:
    """Write data/models/<name>.json without the local path, which goes to its sidecar."""
    out = Path(out)
    write_json({k: v for k, v in record.items() if k not in MODEL_LOCAL_KEYS}, out)
    local = {k: record[k] for k in MODEL_LOCAL_KEYS if k in record}
    write_json({**local, "artifact_sha256": sha256_file(out)}, sidecar_path(out))


def model_path(model_json: str | os.PathLike, cfg: dict | None, *, resolve: bool = True) -> Path | None:
    """The local GGUF file behind ``data/models/<name>.json``.

    From the record's sidecar when it was written for these bytes and the file is still there
    (or from the record itself when it still names an existing file: older, hand-written records);
    otherwise (a checkout by ``dvc pull``, another clone, a moved venv) resolved again from
    ``cfg['models'][name]`` and verified against the record's sha256 (a mismatch names the model
    and both hashes), and the sidecar rewritten. ``resolve=False``: None instead of resolving
    (nothing is downloaded or assembled).
    """
    from culteval.inputs import file_sha256

    model_json = Path(model_json)
    record = read_json(model_json, keys=("name", "sha256"))
    name, side = record["name"], sidecar_path(model_json)
    local = read_json(side) if side.is_file() else None
    if local is not None and local.get("artifact_sha256") == sha256_file(model_json) and local.get("path"):
        path = Path(local["path"])
        if path.is_file():
            return path
    if record.get("path") and Path(record["path"]).is_file():  # an older or hand-written record: as before
        return Path(record["path"])
    if not resolve:
        return None
    spec = ((cfg or {}).get("models") or {}).get(name)
    if spec is None:
        raise ModelError(f"model {name!r}: {model_json} has no current sidecar with its file's path, and "
                         f"params.models has no entry {name!r} to find the file from")
    path = resolve_model_file(name, spec)
    digest = file_sha256(path)
    if digest != record["sha256"]:
        raise ChecksumError(
            f"model {name!r}: sha256 mismatch: {model_json} records {record['sha256']}, the file params "
            f"now resolve to ({path}) has {digest}; rerun acquire_model", record["sha256"], digest)
    with contextlib.suppress(OSError, WriteError):  # a read-only checkout runs too, resolving each time
        write_json({"path": str(path), "artifact_sha256": sha256_file(model_json)}, side)
    return path


def use_model(model_json: str | os.PathLike, cfg: dict | None, key: str | None = None):
    """(record with ``path``, :class:`culteval.inputs.Checked`) of the model a stage is about to load.

    The record must be the one of ``key`` (the model its path names, ``data/models/<key>.json``):
    another model's record copied over it is moved aside, so the next run acquires ``key`` again.
    The file is hashed now (:func:`culteval.inputs.checked_input`) and must hold the bytes the
    record's sha256 names; a file replaced after acquire stops the stage naming both hashes.
    """
    from culteval.inputs import checked_input
    from culteval.io import reject

    model_json = Path(model_json)
    record = read_json(model_json, keys=("name", "sha256"))
    name = record["name"]
    if key is not None and name != key:
        raise reject(model_json, f"is the record of model {name!r}, not of model {key!r} that its name "
                                 f"says (another model's record copied over it)")
    path = model_path(model_json, cfg)
    checked = checked_input(
        path, record["sha256"], f"model {name!r}", recorded_by=str(model_json),
        fix=f"restore the file, or record the new one with culteval acquire-model --model {name} --out "
            f"{model_json} (or remove {model_json} and rerun the pipeline); its inference then reruns")
    return {**record, "path": str(path)}, checked


def load_model_record(model_json: str | os.PathLike, cfg: dict | None) -> dict:
    """data/models/<name>.json with its file's local ``path`` (:func:`model_path`) joined in."""
    record = read_json(model_json, keys=("name", "sha256"))
    return {**record, "path": str(model_path(model_json, cfg))}
