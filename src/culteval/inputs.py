"""Inputs checked where they are used (docs/hostile-inputs.md, "Inputs checked at use").

Every file a stage reads that culteval did not write in that stage (a model, a raw dataset
file, a translation table, a template, an item set) is hashed at the moment of use and the
hash compared with the one the run recorded for it (``data/models/<name>.json``,
``data/raw/<dataset>/PROVENANCE.json``, a translations or prompts table); a mismatch stops the
stage with :class:`InputChanged`, naming the file, both hashes and what to run. The hash a
stage then writes into provenance is this one: computed from the bytes it used.

Small files are read once and hashed from the same bytes the stage parses (:func:`read_bytes`).
Large ones (models, raw data) are hashed by :func:`file_sha256`, which keeps the verified hash
in a cache keyed by the file's status (device, inode, size, modification and change times):
a 250 MB model is hashed again only when one of those differs. The change time (ctime) cannot
be set back by a user process, so rewriting the file, renaming another one over it or copying
one with ``cp -p`` all miss the cache. :meth:`Checked.confirm` compares the status again after
the stage has read (or loaded) the file, so bytes replaced in between are caught too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from culteval.io import sha256_file


class InputChanged(ValueError):
    """An input's bytes are not the ones the run recorded (``expected``, ``actual`` hold both).

    A ValueError, as culteval's other refusals of bad input: the CLI prints its message alone."""

    def __init__(self, message: str, path: Path | None = None, expected: str | None = None,
                 actual: str | None = None):
        super().__init__(message)
        self.path, self.expected, self.actual = path, expected, actual


def status(path: str | os.PathLike) -> tuple[int, ...]:
    """What changes whenever a file's bytes may have: device, inode, size, mtime and ctime (ns)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def cache_dir() -> Path:
    """Where verified hashes of large inputs are kept (``CULTEVAL_HASH_CACHE`` overrides)."""
    default = Path.home() / ".cache" / "culteval" / "hashes"
    return Path(os.environ.get("CULTEVAL_HASH_CACHE", default))


def _cache_file(path: Path) -> Path:
    return cache_dir() / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32] + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, from the cache while the file's :func:`status` is the one it was hashed
    at, else computed from its bytes (and cached when the file did not change while hashed)."""
    path = Path(path)
    before = status(path)
    entry = _cache_file(path)
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(entry.read_text(encoding="utf-8"))
        if cached.get("path") == str(path.resolve()) and tuple(cached.get("status", ())) == before:
            return cached["sha256"]
    digest = sha256_file(path)
    if status(path) == before:  # a file written while it was hashed is not cached
        with contextlib.suppress(OSError):  # a read-only home only costs a rehash next time
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".", suffix=".part")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"path": str(path.resolve()), "status": list(before), "sha256": digest}, f)
            os.replace(tmp, entry)
    return digest


def _mismatch(what: str, path: Path, actual: str, expected: str, recorded_by: str, fix: str) -> InputChanged:
    return InputChanged(f"{what}: {path} has sha256 {actual}, but {recorded_by} recorded {expected}: "
                        f"the file changed after it was recorded; {fix}", path, expected, actual)


@dataclass(frozen=True)
class Checked:
    """A large input verified at use: its path, the sha256 of its bytes, its status when hashed."""

    path: Path
    sha256: str
    status: tuple[int, ...]
    what: str
    fix: str

    def confirm(self) -> None:
        """Raise unless the file is still the one hashed (call after the stage read or loaded it)."""
        if status(self.path) != self.status:
            raise InputChanged(f"{self.what}: {self.path} changed while this stage read it (it was hashed "
                               f"as {self.sha256}); {self.fix}", self.path, self.sha256, None)


def checked_input(path: str | os.PathLike, expected: str | None, what: str, *, recorded_by: str,
                  fix: str) -> Checked:
    """Verify a large input against the sha256 ``recorded_by`` recorded (None: nothing recorded,
    the hash is only taken). Raises :class:`InputChanged` naming the file, both hashes and ``fix``."""
    path = Path(path)
    before = status(path)
    actual = file_sha256(path)
    if expected is not None and actual != expected:
        raise _mismatch(what, path, actual, expected, recorded_by, fix)
    checked = Checked(path, actual, before, what, fix)
    checked.confirm()  # hashed from a cache entry or from bytes of this very file version
    return checked


def read_bytes(path: str | os.PathLike, expected: str | None = None, what: str = "input", *,
               recorded_by: str = "", fix: str = "") -> tuple[bytes, str]:
    """A small input's bytes and their sha256, read once: the stage parses exactly the bytes it
    records. With ``expected``, a mismatch raises :class:`InputChanged` as :func:`checked_input`."""
    path = Path(path)
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise _mismatch(what, path, actual, expected, recorded_by, fix)
    return data, actual


def check_dataset(folder: str | os.PathLike, manifest: str = "PROVENANCE.json") -> list[Checked]:
    """Check every file of an acquired dataset before a stage reads the folder: each file its
    ``PROVENANCE.json`` lists against the sha256 recorded there (a listed file missing is an
    error too); any other file (the manifest itself; a folder made by hand without one) is hashed
    as it is. The stage calls :meth:`Checked.confirm` on each after reading and records their
    ``sha256``: the hashes of the bytes it used."""
    from culteval.io import SIDECAR_SUFFIX, read_json

    folder = Path(folder)
    if not folder.is_dir():  # nothing acquired: the stage's reader names the file it lacks
        return []
    record = folder / manifest
    content = read_json(record, keys=("files",)) if record.is_file() else {"files": {}}
    dataset = content.get("dataset", folder.name)
    fix = (f"restore it, or acquire the dataset again (remove {record} and rerun the pipeline, or run "
           f"culteval acquire-data --dataset {dataset} --out {folder})")
    for name, entry in sorted(content["files"].items()):
        if not (folder / name).is_file():
            raise InputChanged(f"dataset {dataset!r}: {folder / name} is missing although {record} records "
                               f"it; {fix}", folder / name, entry.get("sha256"), None)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.endswith(SIDECAR_SUFFIX))
    return [checked_input(p, (content["files"].get(p.name) or {}).get("sha256"), f"dataset {dataset!r}",
                          recorded_by=str(record), fix=fix) for p in files]
