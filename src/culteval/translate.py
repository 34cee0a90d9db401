"""The tracked translation stage: English strings -> target language, with origin per string.

Sources, in order: the translation table (``translation.table``; the offline
mirror ships an LLM-made Hindi table), the project glossary
``workflow/translations/glossary.<lang>.jsonl`` (short strings the project words itself
or the table lacks, e.g. country names and answer words), then an optional
translator model (``translation.translator_model``). Strings without letters
(numbers, markers) pass through unchanged with origin ``identity``. Nothing is
ever silently left in English: gaps raise :class:`MissingTranslation`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from culteval import tasks
from culteval.config import ROOT, TRANSLATED_STRATEGIES

COLUMNS = ["source", "target", "origin", "translator_prompt_sha256", "machine_translated"]
#: the key (JSONL) or column (CSV) a translation table marks a human-reviewed entry with; an entry
#: without it is a machine translation (the shipped tables are machine-made, unreviewed)
REVIEWED = "reviewed"
# What the translate stage reads beside the table, kept apart from the task templates render reads.
TRANSLATION_DIR = Path("workflow") / "translations"
TRANSLATOR_TEMPLATE = TRANSLATION_DIR / "translator.j2"
_LETTER = re.compile(r"[^\W\d_]")  # any alphabetic character, any script


class MissingTranslation(KeyError):
    """Strings needed in the target language that the translations lack."""

    def __init__(self, missing: Iterable[str], language: str = "target language"):
        self.missing = sorted(set(missing))
        self.count = len(self.missing)
        self.language = language
        super().__init__(self.missing)

    def __str__(self) -> str:  # KeyError would print a repr of the whole list
        shown = "; ".join(repr(s[:80]) for s in self.missing[:10])
        return f"{self.count} string(s) lack a {self.language} translation (first 10: {shown})"


def item_strings(row) -> list[str]:
    """The English strings of one item that translated strategies must show in the target language."""
    context = tasks.json_object(row.context, "context", row.item_id)
    strings = [row.question, *[str(o) for o in row.options]]
    strings += [v for v in context.values() if isinstance(v, str)]
    return [s for s in strings if s != ""]


def strings_to_translate(items: pd.DataFrame, cfg: dict) -> list[str]:
    """Sorted unique English strings needed by cross_lingual/native prompts.

    Questions, options, string context values (statement, value, rot, country,
    scale) and the target and reference country names. Items of tasks that support no
    translated strategy (``Task.strategies``) need none.
    """
    out = {cfg["target"]["country"], cfg["reference"]["country"]}
    for row in items.itertuples(index=False):
        if set(tasks.get(row.task).strategies or TRANSLATED_STRATEGIES) & set(TRANSLATED_STRATEGIES):
            out.update(item_strings(row))
    return sorted(s for s in out if s)


def has_letters(text: str) -> bool:
    return bool(_LETTER.search(text))


def glossary_path(cfg: dict, root: Path = ROOT) -> Path:
    """The project's own glossary for the target language (may not exist)."""
    return Path(root) / TRANSLATION_DIR / f"glossary.{cfg['target']['language']}.jsonl"


def table_files(cfg: dict, table_path: str | Path | None, root: Path = ROOT) -> list[Path]:
    """The tables the translate stage reads, in order: the culture's table (when params name
    one), then the project's glossary (when it exists)."""
    glossary = glossary_path(cfg, root)
    tables = [Path(table_path)] if table_path is not None else []
    return tables + ([glossary] if glossary.is_file() else [])


def load_table(path: str | Path, language: str | None = None) -> dict[str, str]:
    """Read a translation table: JSONL ``{"en", <language>}`` or ``{"source", "target"}``, or CSV
    with columns ``source,target``; each entry may carry ``reviewed`` (:func:`reviewed_sources`).

    ``language`` names the JSONL target key (e.g. ``hi``); None accepts a single non-``en`` key.
    A source listed twice with different targets, or an empty target, is an error naming the line.
    """
    return {src: tgt for src, (tgt, _) in _entries(path, language).items()}


def reviewed_sources(path: str | Path, language: str | None = None) -> set[str]:
    """The sources whose entry says ``"reviewed": true`` (CSV: column ``reviewed`` = true/1/yes):
    translations a person checked. Every other entry counts as a machine translation."""
    return {src for src, (_, reviewed) in _entries(path, language).items() if reviewed}


def _reviewed(value, path: Path, n: int) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "false", "0", "no"):
        return False
    if text in ("true", "1", "yes"):
        return True
    raise ValueError(f"{path}:{n}: {REVIEWED!r} must be true or false, got {value!r}")


def _entries(path: str | Path, language: str | None,
             data: bytes | None = None) -> dict[str, tuple[str, bool]]:
    """A table's entries, parsed from ``data`` (the file's bytes, read once by the caller) when given."""
    path = Path(path)
    pairs: list[tuple[int, str, str, bool]] = []
    text = (path.read_bytes() if data is None else data).decode("utf-8")
    if path.suffix.lower() == ".csv":
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            if not {"source", "target"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}: CSV needs columns source,target; has {reader.fieldnames}")
            pairs = [(n, r["source"], r["target"], _reviewed(r.get(REVIEWED), path, n))
                     for n, r in enumerate(reader, start=2)]
    else:
        with io.StringIO(text) as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
                reviewed = _reviewed(obj.pop(REVIEWED, False), path, n)
                if "source" in obj and "target" in obj:
                    pairs.append((n, obj["source"], obj["target"], reviewed))
                    continue
                keys = [k for k in obj if k != "en"]
                key = language if language is not None else (keys[0] if len(keys) == 1 else None)
                if "en" not in obj or key not in obj:
                    raise ValueError(f"{path}:{n}: expected keys 'en' and {language or '<one language>'!r}, "
                                     f"got {sorted(obj)}")
                pairs.append((n, obj["en"], obj[key], reviewed))
    table: dict[str, tuple[str, bool]] = {}
    for n, src, tgt, reviewed in pairs:
        if not isinstance(src, str) or not isinstance(tgt, str) or not tgt.strip():
            raise ValueError(f"{path}:{n}: empty or non-string entry for {src!r}")
        if table.get(src, (tgt,))[0] != tgt:
            raise ValueError(f"{path}:{n}: {src!r} translated twice, differently")
        table[src] = (tgt, reviewed or table.get(src, ("", False))[1])
    return table


class TextGenerator(Protocol):
    """What the translator needs from an engine: greedy text continuation."""

    def generate_text(self, prompt: str, max_tokens: int) -> str: ...


@dataclass
class ModelTranslator:
    """A callable str -> str backed by a GGUF model; carries what provenance needs."""

    engine: TextGenerator
    language_name: str
    model_sha256: str
    prompt_template: str
    prompt_sha256: str
    _compiled: object = field(default=None, repr=False)

    def __call__(self, text: str) -> str:
        try:
            if self._compiled is None:
                env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
                self._compiled = env.from_string(self.prompt_template)
            prompt = self._compiled.render(text=text, language_name=self.language_name)
        except Exception as exc:  # the template's own code (sandboxed): whatever it raises is the template's
            raise ValueError(f"template {TRANSLATOR_TEMPLATE.as_posix()}: cannot render the translator "
                             f"prompt for {text!r}: {type(exc).__name__}: {exc}") from None
        # Room for scripts that tokenise long (Devanagari often > 2 tokens a word).
        out = self.engine.generate_text(prompt, max_tokens=min(1024, 8 * len(text.split()) + 32))
        return out.strip().split("\n", 1)[0].strip()


def make_model_translator(
    engine: TextGenerator, language_name: str, model_sha256: str, *, root: Path = ROOT
) -> ModelTranslator:
    """A translator calling ``engine.generate_text`` with the prompt in translator.j2
    (``TRANSLATOR_TEMPLATE``)."""
    path = Path(root) / TRANSLATOR_TEMPLATE
    raw = path.read_bytes()
    prompt_sha256 = hashlib.sha256(raw).hexdigest()
    return ModelTranslator(engine, language_name, model_sha256, raw.decode("utf-8"), prompt_sha256)


def build_translations(
    strings: Iterable[str],
    cfg: dict,
    *,
    table_path: str | Path | None,
    translator: Callable[[str], str] | None = None,
    root: Path = ROOT,
    used: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Translate ``strings`` (docs/contracts.md "Translations"), sorted by source.

    The table's sha256 is recorded in each string's origin; ``machine_translated`` is True for
    a translator model's output and a table entry not marked reviewed (:func:`reviewed_sources`),
    False for reviewed entries and ``identity`` strings. ``translator`` is a callable
    with attributes ``model_sha256`` and ``prompt_sha256`` (see :func:`make_model_translator`).
    Translator output that is empty, or identical to a source containing letters, is an error.
    Each table is read once and parsed from the bytes its sha256 is taken of; ``used`` (when
    given) receives path -> that sha256, for the stage's provenance.
    """
    from culteval.inputs import read_bytes

    lang = cfg["target"]["language"]
    sources: list[tuple[dict[str, tuple[str, bool]], str]] = []
    for path in table_files(cfg, table_path, root):
        data, actual = read_bytes(path)
        sources.append((_entries(path, lang, data), f"table:{actual}"))
        if used is not None:
            used[Path(path).as_posix()] = actual

    rows, untranslated = [], []
    for s in sorted(set(strings)):
        hit = next(((t[s], origin) for t, origin in sources if s in t), None)
        if hit is not None:
            (target, reviewed), origin = hit
            rows.append((s, target, origin, None, not reviewed))
        elif not has_letters(s):
            rows.append((s, s, "identity", None, False))
        else:
            untranslated.append(s)
    if untranslated and translator is None:
        raise MissingTranslation(untranslated, cfg["target"]["language_name"])
    if untranslated and not all(hasattr(translator, a) for a in ("model_sha256", "prompt_sha256")):
        raise TypeError("translator needs attributes model_sha256 and prompt_sha256 "
                        "(see make_model_translator)")
    for s in untranslated:
        out = translator(s)
        if not out or not out.strip() or out.strip() == s.strip():
            what = "nothing" if not out.strip() else "the source unchanged"
            raise ValueError(f"translator returned {what} for {s!r}")
        rows.append((s, out, f"model:{translator.model_sha256}", translator.prompt_sha256, True))
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"machine_translated": bool})
    return df.sort_values("source", kind="stable").reset_index(drop=True)


def machine_sources(df: pd.DataFrame) -> set[str]:
    """The sources of a translations table whose translation is machine-made (not reviewed)."""
    return set(df.loc[df["machine_translated"].astype(bool), "source"])


def translations_to_dict(df: pd.DataFrame) -> dict[str, str]:
    """source -> target from a translations table; a duplicated source is an error."""
    dup = df["source"][df["source"].duplicated()]
    if len(dup):
        raise ValueError(f"translations: duplicated source strings, e.g. {dup.iloc[0]!r}")
    return dict(zip(df["source"], df["target"], strict=True))


def check_sources(made_from: dict | None, paths: list[Path], translations_path: str | Path) -> None:
    """Stop unless each table the translate stage would read now (``paths``: the culture's
    translation table and the glossary) holds the bytes the translations were made from.

    ``made_from`` is the translations' provenance record: its inputs name each table file with
    the sha256 of the bytes translate used. A table edited after translate makes the graph
    translate again (it is the translate rule's and stage's input); this stops a render run by
    hand (or for another checkout's tables) from showing translations of the old table.
    """
    from culteval.inputs import InputChanged, read_bytes

    recorded = {Path(i["path"]).name: i["sha256"] for i in (made_from or {}).get("inputs", [])}
    fix = (f"translate again: remove {translations_path} and rerun the pipeline (dvc repro, or snakemake), "
           "or run culteval translate for this culture")
    for path in paths:
        if path.name not in recorded:
            raise InputChanged(f"translation table {path}: the translations {translations_path} were not "
                               f"made from it (they record {sorted(recorded) or 'no table'}); {fix}", path)
        read_bytes(path, recorded[path.name], f"translation table {path.name}",
                   recorded_by=f"the translations {translations_path}", fix=fix)
