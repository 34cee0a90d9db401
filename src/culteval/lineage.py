"""Trace a result back to its data, model, prompts, params and code.

Parquet artifacts carry the content part of their provenance record in the file
metadata and the commit/machine part in ``<artifact>.provenance.json``
(culteval.io.split_provenance); other
outputs (summary.csv, metrics.json, figures, the report) have a
``provenance.json`` beside them. ``lineage`` follows each record's inputs
recursively down to the raw dataset files, whose origin (mirror path or URL fetched) it reads
from their ``PROVENANCE.json`` sidecar.
"""

from __future__ import annotations

from pathlib import Path

from culteval.io import read_provenance, read_record, sha256_file
from culteval.provenance import raw_origin

SIDECAR = "provenance.json"


def provenance_of(path: Path) -> dict | None:
    """The provenance record of an artifact, embedded or in its folder's sidecar."""
    if path.suffix == ".parquet":
        return read_provenance(path)
    sidecar = path.parent / SIDECAR
    return read_record(sidecar) if sidecar.is_file() else None


def _model_line(model: dict) -> str:
    g = model.get("gguf", {})
    return (f"model {model['name']}: {model.get('path', '(path in sidecar)')} sha256 {model['sha256']} "
            f"[{g.get('architecture')}, {g.get('quantization')}, {g.get('name')}] "
            f"chat template {model.get('chat_template')}")


def _is_raw(inp: dict) -> bool:
    """Whether a provenance input is a raw dataset file (its manifest's URL; older records: origin)."""
    return "url" in inp or bool(inp.get("origin"))


def _origin(inp: dict, path: Path) -> str:
    """Where a raw file came from: its manifest's sidecar (mirror path or URL fetched), if current."""
    local = raw_origin(path) if path.is_file() else None
    if local:
        return f"{local.get('origin')} {local.get('source')} (pinned by {local.get('pin')})"
    return inp.get("origin") or "an unknown origin (no current PROVENANCE.json sidecar)"


def lineage(target: Path, root: Path | None = None) -> str:
    """A readable tree of everything behind ``target``."""
    root = root or Path.cwd()
    lines: list[str] = []
    seen: set[str] = set()

    def visit(path: Path, depth: int) -> None:
        pad = "  " * depth
        rel = path.as_posix()
        if not path.is_file():
            lines.append(f"{pad}{rel} (missing)")
            return
        digest = sha256_file(path)
        rec = provenance_of(path)
        if rel in seen:
            lines.append(f"{pad}{rel} sha256 {digest} (see above)")
            return
        seen.add(rel)
        if rec is None:
            lines.append(f"{pad}{rel} sha256 {digest}")
            return
        git = rec.get("git") or {}
        lines.append(f"{pad}{rel} sha256 {digest}")
        if rec.get("local_record"):  # the sidecar with commit and machine is missing or for other bytes
            lines.append(f"{pad}  commit and machine unknown (provenance sidecar {rec['local_record']})")
        else:
            lines.append(f"{pad}  made by culteval {rec.get('culteval_version')} "
                         f"at commit {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}")
        if rec.get("model"):
            lines.append(f"{pad}  {_model_line(rec['model'])}")
        for tpath, tsha in sorted((rec.get("templates") or {}).items()):
            lines.append(f"{pad}  template {tpath} sha256 {tsha}")
        if rec.get("engine"):
            eng = {k: v for k, v in rec["engine"].items() if k != "system_info"}
            lines.append(f"{pad}  engine {eng}")
            if rec["engine"].get("system_info"):
                lines.append(f"{pad}  llama.cpp build: {rec['engine']['system_info']}")
        if rec.get("params"):
            lines.append(f"{pad}  params {rec['params']}")
        for inp in rec.get("inputs", []):
            ipath = Path(inp["path"])
            ipath = ipath if ipath.is_absolute() else root / ipath
            if _is_raw(inp):
                note = f" SUBSET: {inp['subset']}" if inp.get("subset") else ""
                lines.append(f"{pad}  data {inp['path']} sha256 {inp['sha256']} from {_origin(inp, ipath)} "
                             f"({inp.get('url')}){note}")
            elif ipath.suffix == ".parquet" or provenance_of(ipath) is not None:
                visit(Path(inp["path"]), depth + 1)
            else:
                lines.append(f"{pad}  input {inp['path']} sha256 {inp['sha256']}")

    visit(target, 0)
    return "\n".join(lines)


def data_inputs(paths: list[str | Path]) -> list[dict]:
    """Every raw dataset file (with sha256, URL, subset note) behind ``paths``, deduplicated.

    Content facts only (they feed the report): where each file came from is :func:`_origin`'s.
    """
    found: dict[str, dict] = {}
    seen: set[str] = set()
    stack = [Path(p) for p in paths]
    while stack:
        path = stack.pop()
        if path.as_posix() in seen or not path.is_file():
            continue
        seen.add(path.as_posix())
        rec = provenance_of(path) or {}
        for inp in rec.get("inputs", []):
            if _is_raw(inp):
                found[inp["path"]] = {"path": inp["path"], "sha256": inp["sha256"],
                                      "url": inp.get("url"), "subset": inp.get("subset")}
            else:
                stack.append(Path(inp["path"]))
    return [found[k] for k in sorted(found)]
