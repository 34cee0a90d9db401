"""Atomic, deterministic file I/O shared by every stage.

Every writer goes through a temporary file in the destination folder and an
``os.replace``: a killed process never leaves a partial file under the final
name, so no later stage can read half an artifact as complete.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"culteval.provenance"
ROWS_KEY = b"culteval.rows"
FLOAT_FORMAT = "%.10g"
#: errors of the device being written to, as opposed to a bug in the writer
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


class DamagedFileError(ValueError):
    """An input is not what culteval wrote (truncated, edited, foreign, or made with other params)."""

    def __init__(self, message: str, path: Path | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path, self.reason = path, reason


class WriteError(RuntimeError):
    """The device refused a write (full disk, quota, read-only); the previous file is unchanged."""

    def __init__(self, message: str, path: Path | None = None, strerror: str = "") -> None:
        super().__init__(message)
        self.path, self.strerror = path, strerror


class EmptyInputError(ValueError):
    """A stage's input table holds no rows: the stage would write an empty result."""


def require_rows(df: pd.DataFrame, path: str | os.PathLike, what: str, check: str) -> pd.DataFrame:
    """``df`` unless it is empty. No stage input may be empty (every stage refuses to write an
    empty table), so an empty one is older than that rule or not culteval's: it is named, not
    moved aside (its producer would make the same again). ``check`` says where to look."""
    if len(df) == 0:
        raise EmptyInputError(f"{path}: an empty {what} table (0 rows), nothing to work on; check {check}")
    return df


def not_a_file(path: str | os.PathLike) -> str:
    """What ``path`` is when it is not a regular file, for messages ("file not found" would be
    false for a directory or a device such as /dev/null)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"is {what}, not a file"
    return "not a regular file"


#: where rejected files go, under the project root: outside every tracked output (data/, results/)
QUARANTINE = Path(".culteval") / "damaged"


def _project_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` holding a project (its Snakefile or dvc.yaml)."""
    for parent in path.resolve().parents:
        if (parent / "Snakefile").is_file() or (parent / "dvc.yaml").is_file():
            return parent
    return None


def quarantine_path(path: str | os.PathLike) -> Path:
    """Where :func:`reject` moves ``path``: ``.culteval/damaged/<path in the project>`` under the
    project root, so neither DVC nor Snakemake ever hashes or reads it as an output; outside a
    project, ``<path>.damaged`` beside it."""
    path = Path(path)
    root = _project_root(path)
    if root is None:
        return path.with_name(path.name + ".damaged")
    return root / QUARANTINE / path.resolve().relative_to(root)


def _set_aside(path: Path, aside: Path) -> Path:
    """Move ``path`` to ``aside``, or, when a different file was set aside there before, to
    ``aside`` numbered before its last suffix (``normad.2.parquet``, ``t.parquet.3.damaged``): a
    quarantined copy is never overwritten (it may be the only copy of a valid file). A copy with
    the same bytes is not kept twice. Returns where it went."""
    aside.parent.mkdir(parents=True, exist_ok=True)
    digest = None
    for n in range(1, 10_000):
        where = aside if n == 1 else aside.with_name(f"{aside.stem}.{n}{aside.suffix}")
        try:
            os.link(path, where)  # fails if ``where`` exists: no check-then-replace race
        except FileExistsError:
            digest = digest or sha256_file(path)
            if where.is_file() and sha256_file(where) == digest:
                path.unlink()
                return where
            continue
        except OSError:  # a file system without hard links: the same, less strictly
            if where.exists():
                continue
            os.replace(path, where)
            return where
        path.unlink()
        return where
    raise OSError(errno.EEXIST, f"{aside}: 9999 copies set aside already")


def reject(path: str | os.PathLike, reason: str) -> DamagedFileError:
    """Move a damaged or mismatched input aside (:func:`quarantine_path`, kept for inspection and
    never overwritten: :func:`_set_aside`) so its producer reruns; the error names the file and
    the reason."""
    path = Path(path)
    aside = quarantine_path(path)
    moved = True
    try:
        aside = _set_aside(path, aside)
    except OSError:
        moved = False
    if moved:  # what was made from it is out of date too, though Snakemake cannot see it
        mark_consumers(path)
    shown = aside.name if aside.parent == path.parent else aside.as_posix()
    where = f"moved to {shown}" if moved else "could not be moved aside"
    return DamagedFileError(f"{path}: {reason}; {where}, rerun to recompute it", path, reason)


#: the modification time given to an output made from a file set aside: older than any input, so
#: Snakemake (which compares times) remakes it after remaking the file (not 0: Snakemake reads 0 as
#: "no time"); 1980-01-01, the oldest time every file system and archive format holds
STALE_MTIME = 315532800
#: where culteval's records live: Parquet artifacts (their embedded provenance) and the JSON
#: records of outputs built from many artifacts (``provenance.json``, e.g. results/metrics/)
_RECORD_FOLDERS = ("data/items", "data/translations", "data/prompts", "results")


def _recorded_inputs(path: Path) -> list[str]:
    """The input paths a provenance record names (absolute ones from its sidecar, where the
    content keeps only their names); [] for a file without a readable record."""
    try:
        if path.suffix == ".parquet":
            raw = (pq.read_schema(path).metadata or {}).get(PROVENANCE_KEY)
            content = json.loads(raw) if raw else {}
        else:
            content = json.loads(path.read_text(encoding="utf-8"))
        side = sidecar_path(path)
        full = json.loads(side.read_text(encoding="utf-8")).get("input_paths", {}) if side.is_file() else {}
    except (pa.ArrowException, OSError, ValueError):
        return []
    if not isinstance(content, dict):
        return []
    return [full.get(i.get("path"), i.get("path")) for i in content.get("inputs", []) if isinstance(i, dict)]


def mark_consumers(path: str | os.PathLike) -> list[Path]:
    """Mark for rerun every output of the project whose provenance names ``path`` as an input
    (set aside, or found stale): its modification time goes back to :data:`STALE_MTIME`, so the
    next ``snakemake`` remakes ``path`` and everything made from it, where it would otherwise say
    "Nothing to be done" beside a missing intermediate (a downstream file exists, so Snakemake
    never asks for it). DVC compares contents: its stages rerun when the remade file differs.
    Cost: the footer of every artifact is read (no data), only when a file is set aside."""
    path = Path(path)
    root = _project_root(path)
    if root is None:
        return []
    target = path.resolve()
    marked = []
    for folder in _RECORD_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        found = sorted(base.rglob("*.parquet")) + sorted(base.rglob("provenance.json"))
        for f in found:
            if any(part.endswith(".chunks") for part in f.parts):
                continue
            if any((root / p).resolve() == target for p in _recorded_inputs(f)):
                try:
                    os.utime(f, (STALE_MTIME, STALE_MTIME))
                except OSError:  # replaced or removed meanwhile by a job running beside this one
                    continue
                marked.append(f)
    return marked


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, removed unless :func:`_commit` renamed it into place; a
    device error while it is written becomes a :class:`WriteError` naming ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise WriteError(f"{path}: could not be written ({exc.strerror}); "
                         "the previous version, if any, is unchanged", path, exc.strerror) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _commit(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    held = _SET.get()
    if held is not None:  # renamed into place with the rest of its set (:func:`file_set`)
        held.hold(tmp, path)
        return
    os.replace(tmp, path)


#: the set of files being written together, if any (:func:`file_set`)
_SET: contextvars.ContextVar[FileSet | None] = contextvars.ContextVar("culteval_file_set", default=None)


class FileSet:
    """Files that belong together, each written in full to a temporary file beside its final
    path, and renamed into place together when the set is complete (:func:`file_set`)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.held: dict[Path, Path] = {}  # final path -> its finished temporary file

    def hold(self, tmp: Path, path: Path) -> None:
        path = Path(os.path.abspath(path))
        held = tmp.with_name(tmp.name + ".held")  # out of _staged's clean-up, still a unique name
        os.rename(tmp, held)
        previous = self.held.pop(path, None)
        if previous is not None:
            previous.unlink(missing_ok=True)
        self.held[path] = held

    def sha256(self, path: str | os.PathLike) -> str:
        """The sha256 of ``path`` as the set will leave it (its staged bytes, if written)."""
        return sha256_file(current(path))

    def manifest(self, folder: str | os.PathLike) -> dict[str, str]:
        """Path under ``folder`` -> sha256 of every member staged so far but sidecars (which vary
        by machine and commit): what :func:`check_set` compares."""
        folder = Path(os.path.abspath(folder))
        return {p.relative_to(folder).as_posix(): sha256_file(h) for p, h in sorted(self.held.items())
                if p.is_relative_to(folder) and not p.name.endswith(SIDECAR_SUFFIX)}

    def discard(self) -> None:
        for held in self.held.values():
            held.unlink(missing_ok=True)
        self.held.clear()

    def commit(self) -> None:
        """Rename every member into place. The previous versions are kept (hard links, else copies)
        until all renames succeed; a failed rename puts back those already done."""
        items = sorted(self.held.items())
        backups: dict[Path, Path] = {}
        done: list[Path] = []
        try:
            for path, held in items:
                if path.exists():
                    backup = held.with_name(held.name[:-len(".held")] + ".old")
                    try:
                        os.link(path, backup)
                    except OSError:
                        shutil.copy2(path, backup)
                    backups[path] = backup
            for path, held in items:
                os.replace(held, path)
                done.append(path)
            for folder in {p.parent for p, _ in items}:
                _fsync_dir(folder)
        except OSError as exc:
            why = exc.strerror or str(exc)
            failed = next((p for p, _ in items if p not in done), items[-1][0])
            head = f"{failed}: could not be put in place ({why})"
            if not done:
                raise WriteError(f"{head}; nothing of {self.label} was replaced: the previous versions, "
                                 "if any, are unchanged", failed, why) from exc
            try:
                for path in reversed(done):
                    if path in backups:
                        os.replace(backups[path], path)
                    else:
                        path.unlink()
            except OSError as undo:
                raise WriteError(
                    f"{head}; {len(done)} of the {len(items)} file(s) of {self.label} had been replaced and "
                    f"could not be put back ({undo.strerror or undo}): the set is mixed, and a stage that "
                    "reads it refuses it (culteval.io.check_set): rerun to rewrite it", failed, why) from exc
            raise WriteError(f"{head}; the {len(done)} file(s) of {self.label} already replaced were put "
                             "back: the previous versions, if any, are unchanged", failed, why) from exc
        finally:
            for leftover in [*backups.values(), *(h for _, h in items)]:
                leftover.unlink(missing_ok=True)
            self.held.clear()


def current(path: str | os.PathLike) -> Path:
    """Where ``path``'s newest bytes are: inside a file set that has written it, its staged file
    (not yet in place); else ``path`` itself. For a writer that reads back what it wrote."""
    fs = _SET.get()
    held = fs.held.get(Path(os.path.abspath(path))) if fs is not None else None
    return held if held is not None else Path(path)


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_set(label: str) -> Iterator[FileSet]:
    """Write several files as one set: every writer inside (atomic_path and all that use it) writes
    its temporary file in full, and nothing is renamed into place until the block ends without an
    error; then all are, with the previous versions put back if a rename fails. A device error
    while writing names the file and says that nothing of ``label`` was replaced. A process killed
    during the renames can still leave a mixed set: the set's manifest (recorded by the caller
    with :meth:`FileSet.manifest`, checked by :func:`check_set`) lets readers refuse it."""
    if _SET.get() is not None:  # a set inside a set: one set
        yield _SET.get()
        return
    fs = FileSet(label)
    token = _SET.set(fs)
    try:
        try:
            yield fs
        finally:
            _SET.reset(token)
    except WriteError as exc:
        fs.discard()
        where = exc.path if exc.path is not None else "a file"
        raise WriteError(f"{where}: could not be written ({exc.strerror or exc}); nothing of {label} was "
                         "replaced: the previous versions, if any, are unchanged", exc.path, exc.strerror
                         ) from exc
    except BaseException:
        fs.discard()
        raise
    fs.commit()


class MixedSetError(ValueError):
    """Files written as one set do not match the manifest their set recorded."""


def check_set(record: str | os.PathLike) -> None:
    """Refuse a mixed set: ``record`` (a provenance record written with its set, key ``set``: path
    under its folder -> sha256) names each member's bytes; a member that differs came from another
    run (an interrupted write) or was edited. Records without a ``set`` (older runs) pass."""
    record = Path(record)
    if not record.is_file():
        return
    manifest = read_json(record).get("set")
    if not isinstance(manifest, dict):
        return
    folder = record.parent
    bad = [name for name, digest in sorted(manifest.items())
           if not (folder / name).is_file() or sha256_file(folder / name) != digest]
    if bad:
        raise MixedSetError(
            f"{folder}: {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not the bytes written with "
            f"the rest of its set (recorded in {record}): an interrupted write or an edit mixed the set; "
            "rerun the stage that writes it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success only."""
    path = Path(path)
    with _staged(path) as tmp:
        yield tmp
        _commit(tmp, path)


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, UTF-8, stable across runs."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_json(obj), encoding="utf-8")


def read_json(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> Any:
    """Parsed JSON; a file that does not parse, or lacks one of ``keys``, is rejected by path."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise reject(path, f"not valid JSON ({exc})") from None
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise reject(path, f"lacks keys {missing}")
    return obj


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# What varies by commit, machine, checkpointing or thread count, not by content: kept out of an
# artifact's bytes (so an unchanged artifact keeps its hash and stops DVC's rerun there) and
# written to a sidecar ``<artifact>.provenance.json`` that .dvcignore hides from hashing.
# llama.cpp's CPU kernels give each output row to one thread, so results do not depend on
# the thread count (tests/test_engine.py::test_thread_count_changes_no_byte).
LOCAL_KEYS = ("git", "culteval_version", "model.path", "engine.system_info", "engine.n_threads",
              "params.inference.chunk_size", "params.inference.n_threads")
SIDECAR_SUFFIX = ".provenance.json"


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def split_provenance(record: dict) -> tuple[dict, dict]:
    """(content, local): the record without LOCAL_KEYS and absolute input paths, and those parts."""
    content, local = json.loads(json.dumps(record)), {}
    for dotted in LOCAL_KEYS:
        *parents, last = dotted.split(".")
        node = content
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and last in node:
            local[dotted] = node.pop(last)
    for inp in content.get("inputs", []):
        if Path(inp["path"]).is_absolute():  # e.g. a table in the data mirror: its name and sha256 stay
            local.setdefault("input_paths", {})[Path(inp["path"]).name] = inp["path"]
            inp["path"] = Path(inp["path"]).name
    return content, local


def join_provenance(content: dict, local: dict) -> dict:
    """Inverse of :func:`split_provenance`."""
    record = json.loads(json.dumps(content))
    for dotted, value in local.items():
        if dotted in ("input_paths", "artifact_sha256"):
            continue
        *parents, last = dotted.split(".")
        node = record
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    paths = local.get("input_paths", {})
    for inp in record.get("inputs", []):
        inp["path"] = paths.get(inp["path"], inp["path"])
    return record


def write_record(record: dict, path: str | os.PathLike) -> None:
    """A provenance record as a JSON file (outputs built from many artifacts): the content part
    in ``path``, the commit/machine part in its sidecar, split as :func:`write_parquet` splits
    them, so a new commit or another machine changes no tracked byte."""
    content, local = split_provenance(record)
    text = dumps_json(content)
    write_text(text, path)
    # the hash of the bytes written, not of the file at ``path`` (inside a file set, still the old one)
    write_json({**local, "artifact_sha256": sha256_text(text)}, sidecar_path(path))


def read_record(path: str | os.PathLike) -> dict:
    """Inverse of :func:`write_record`: the content joined with a sidecar written for these bytes
    (else ``local_record`` says ``missing`` or ``stale``). A record written whole (older runs)
    reads as it is."""
    content = read_json(path)
    side = sidecar_path(path)
    local = read_json(side) if side.is_file() else None
    if local is None or local.get("artifact_sha256") != sha256_file(path):
        if "git" in content:  # an older record, written whole
            return content
        return {**content, "local_record": "missing" if local is None else "stale"}
    return join_provenance(content, local)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, provenance: dict | None = None, *,
                  sidecar: bool = True) -> None:
    """Write ``df`` (index dropped) with the content part of its provenance record in the file's
    metadata and the commit/machine part in the sidecar (:func:`split_provenance`)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    local = None
    if provenance is not None:
        content, local = split_provenance(provenance)
        meta[PROVENANCE_KEY] = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
    meta[ROWS_KEY] = str(table.num_rows).encode()  # what a reader checks a hand-cut file against
    table = table.replace_schema_metadata(meta)
    path = Path(path)
    # Both files are written in full before either is renamed into place: a full disk leaves
    # the previous pair as it was, never a new artifact beside an old (or no) sidecar.
    with _staged(path) as tmp:
        # page checksums: a flipped byte in the data is caught on reading, not read as a number
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
        # the artifact's hash tells a stale sidecar (killed in between) from its own
        if local is not None and sidecar:
            side = sidecar_path(path)
            try:
                with _staged(side) as side_tmp:
                    side_tmp.write_text(dumps_json({**local, "artifact_sha256": sha256_file(tmp)}),
                                        encoding="utf-8")
                    _commit(side_tmp, side)
            except WriteError as exc:
                raise WriteError(f"{side}: could not be written ({exc.__cause__.strerror}); neither it nor "
                                 f"{path.name} was replaced: the previous versions, if any, are unchanged",
                                 side, exc.strerror) from exc.__cause__
        _commit(tmp, path)


def identity_mismatch(made: dict | None, expect: dict) -> str | None:
    """Why an artifact's recorded identity is not ``expect`` (None when it is).

    ``expect`` maps identity keys to the values the reader needs; a dotted key reads a nested
    value (``sources.items``: the sha256 of the items the artifact was made from).
    """
    if made is None:
        return ("carries no identity record (made by an older culteval or not by culteval), "
                f"expected {dumps_inline(expect)}")
    for key, want in sorted(expect.items()):
        got: Any = made
        for part in key.split("."):
            got = got.get(part) if isinstance(got, dict) else None
        if got != want:
            what = dumps_inline({k: made.get(k) for k in ("kind", "culture", "task", "strategy", "model")
                                 if made.get(k) is not None})
            return f"is {key} {got!r} where {want!r} is expected (the file is {what})"
    return None


def dumps_inline(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def read_parquet(path: str | os.PathLike, columns: list[str] | tuple[str, ...] = (),
                 params: dict | None = None, expect: dict | None = None) -> pd.DataFrame:
    """Read a Parquet file, rejecting it (by path, moved aside) unless it is what its writer wrote.

    Checked: it parses with valid page checksums, has ``columns``, holds the row count its
    writer recorded, (for ``params``) was made with the same values of those params, and (for
    ``expect``) its provenance's ``identity`` (what it is and what it was made from, see
    ``culteval.provenance.identity``) holds those values.
    """
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except FileNotFoundError:  # pyarrow's message is the bare path
        raise FileNotFoundError(f"{path}: no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise reject(path, f"damaged or not a Parquet file ({exc})") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise reject(path, f"missing columns {missing}")
    meta = table.schema.metadata or {}
    recorded = meta.get(ROWS_KEY)
    if recorded is not None and int(recorded) != table.num_rows:
        raise reject(path, f"{table.num_rows} rows, its writer recorded {int(recorded)}")
    record = json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else None
    if expect is not None:
        why = identity_mismatch(record.get("identity") if record else None, expect)
        if why:
            raise reject(path, why)
    if params:
        made = record.get("params", {}) if record is not None else None
        for key, value in sorted(params.items()):
            now = json.loads(json.dumps(value))
            if made is not None and key in made and made[key] != now:
                raise reject(path, f"made with params.{key}={made[key]!r}, params now say {now!r}")
    return table.to_pandas()


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance record of a parquet artifact: embedded content joined with its sidecar, or None.

    A missing sidecar, or one written for other bytes, contributes nothing (``local_record``
    says which).
    """
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(PROVENANCE_KEY)
    if not raw:
        return None
    content = json.loads(raw)
    side = sidecar_path(path)
    local = read_json(side) if side.is_file() else None
    if local is None or local.get("artifact_sha256") != sha256_file(path):
        return {**content, "local_record": "missing" if local is None else "stale"}
    return join_provenance(content, local)


def numeric_columns(df: pd.DataFrame, path: str | os.PathLike, columns) -> pd.DataFrame:
    """``df`` with ``columns`` (those present) as numbers; a cell that is no number is named by
    file, line, column and value (pandas alone would say only "could not convert ...")."""
    df = df.copy()
    for col in columns:
        if col not in df.columns or pd.api.types.is_numeric_dtype(df[col]):
            continue
        numbers = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & numbers.isna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{path}: line {i + 2}, column {col!r}: {df[col].iloc[i]!r} is not a number")
        df[col] = numbers
    return df


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """CSV with a stable float format and Unix line endings."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
