"""Load and validate ``params.yaml`` (the Snakemake config and DVC's params)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# The checkout the package's code comes from: its schema describes what this code accepts.
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
TEMPLATE_DIR = Path("workflow") / "templates"  # relative to the project root (project_root())
STRATEGIES = ("default", "demographic", "cross_lingual", "native")
# Strategies that show the item in the target language, so need the translation table.
TRANSLATED_STRATEGIES = ("cross_lingual", "native")


class ConfigError(ValueError):
    """params.yaml is invalid; the message names the key path."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return "params." + ".".join(str(p) for p in error.absolute_path) if error.absolute_path else "params"


def schema() -> dict:
    """The params schema with each declared task's own keys filled in under ``tasks.<name>``."""
    from culteval import tasks

    with open(SCHEMA, encoding="utf-8") as f:
        out = yaml.safe_load(f)
    common = {"enabled": {"type": "boolean"}, "limit": {"$ref": "#/$defs/limit"},
              "itemset": {"type": ["string", "null"], "minLength": 1}}
    out["properties"]["tasks"]["properties"] = {
        name: {"type": "object", "additionalProperties": False,
               "properties": {**common, **task.params_schema}}
        for name, task in tasks.registry().items()}
    return out


def validate(cfg: Any, source: str = "params.yaml") -> dict:
    """Validate a loaded config against the JSON schema and cross-references.

    Raises ConfigError naming the first offending key path (best match).
    """
    bad = _non_finite(cfg)
    if bad is not None:
        raise ConfigError(f"{source}: {bad[0]}: {bad[1]!r} is not a finite number (NaN and infinity are "
                          "refused everywhere in params)")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        path = list(best.absolute_path)
        if best.validator == "oneOf" and len(path) == 2 and path[0] == "models":
            raise ConfigError(
                f"{source}: {_key_path(best)}: give exactly one of path | url (with sha256) | "
                "hf (repo, file, revision) | package")
        raise ConfigError(f"{source}: {_key_path(best)}: {best.message}")
    cfg = normalise_cultures(cfg, source)
    translator = cfg["translation"]["translator_model"]
    if translator is not None and translator not in cfg["models"]:
        raise ConfigError(f"{source}: params.translation.translator_model: unknown model {translator!r}")
    for name, entry in cfg["models"].items():
        base = entry.get("base")
        if base is not None and base not in cfg["models"]:
            raise ConfigError(f"{source}: params.models.{name}.base: unknown model {base!r}")
    _check_multilingual(cfg, source)
    if not enabled_tasks(cfg):
        raise ConfigError(f"{source}: params.tasks: no task is enabled")
    return cfg


def mixed_languages(cfg: dict) -> list[str]:
    """The languages the mixed model fits (docs/metrics.md): ``en`` (the English default prompt) and,
    when a strategy shows the question in the culture's language, each culture's language."""
    langs = {"en"}
    if set(cfg.get("strategies") or ()) & set(TRANSLATED_STRATEGIES):
        langs |= {str(c["language"]) for c in cfg["cultures"].values()}
    return sorted(langs)


def _check_multilingual(cfg: dict, source: str) -> None:
    """A model that declares ``multilingual`` declares it for every language the mixed model fits."""
    need = mixed_languages(cfg)
    for name, entry in sorted(cfg["models"].items()):
        declared = entry.get("multilingual")
        if declared is None:
            continue
        missing = [lang for lang in need if lang not in declared]
        if missing:
            raise ConfigError(f"{source}: params.models.{name}.multilingual: no score for language "
                              f"{missing[0]!r} (the run's languages: {', '.join(need)}); give a score in "
                              "[0, 1] for each")


CULTURE_FIELDS = ("country", "language", "language_name", "persona")


def _target_of(culture: dict) -> dict:
    return {k: culture[k] for k in CULTURE_FIELDS}


def normalise_cultures(cfg: dict, source: str = "params.yaml") -> dict:
    """The cultures under test as ``cfg["cultures"]`` (key -> entry), whichever form params use.

    New form: ``cultures: {<key>: {country, language, language_name, persona, translation_table,
    aliases?, enabled?}}``. Old single-culture form: ``target:`` + ``translation.table`` (+ the
    target's ``country_aliases``), read as one culture keyed by its language code, so every old
    params file keeps working. Disabled cultures are dropped; a culture's ``aliases`` join
    ``country_aliases``. With one culture the config is also its own culture view
    (:func:`culture_cfg`): ``target`` and ``translation.table`` are that culture's.
    """
    cfg = dict(cfg)
    translation = dict(cfg.get("translation") or {"translator_model": None})
    if "cultures" in cfg:
        if "target" in cfg and not _is_own_view(cfg):
            raise ConfigError(f"{source}: params.target: the single-culture form (target:, "
                              "translation.table) cannot be combined with params.cultures; write the "
                              "culture as an entry of cultures:")
        if "target" not in cfg and "table" in translation:
            raise ConfigError(f"{source}: params.translation.table: with params.cultures each culture "
                              "names its own translation_table")
        cultures = {k: dict(v) for k, v in sorted(cfg["cultures"].items()) if v.get("enabled", True)}
    else:
        if "target" not in cfg:
            raise ConfigError(f"{source}: params: name the culture under test (cultures:, or target:)")
        if "table" not in translation:
            raise ConfigError(f"{source}: params.translation: 'table' is a required property")
        key = cfg["target"]["language"]
        cultures = {key: {**cfg["target"], "translation_table": translation["table"]}}
    if not cultures:
        raise ConfigError(f"{source}: params.cultures: no culture is enabled")
    aliases = {country: dict(per) for country, per in (cfg.get("country_aliases") or {}).items()}
    for key, culture in cultures.items():
        culture.pop("enabled", None)
        if key == "all":  # summary.csv's culture of rows about every culture at once
            raise ConfigError(f"{source}: params.cultures.all: 'all' is reserved; choose another key")
        if culture["country"] == cfg["reference"]["country"]:
            raise ConfigError(f"{source}: params.cultures.{key}.country: {culture['country']!r} is the "
                              "reference country")
        aliases.setdefault(culture["country"], {}).update(culture.get("aliases") or {})
        unknown = sorted(set(culture.get("itemsets") or {}) - set(cfg["tasks"]))
        if unknown:
            raise ConfigError(f"{source}: params.cultures.{key}.itemsets: no task {unknown[0]!r} in "
                              "params.tasks")
    countries = [c["country"] for c in cultures.values()]
    dup = next((c for c in countries if countries.count(c) > 1), None)
    if dup is not None:
        raise ConfigError(f"{source}: params.cultures: country {dup!r} appears twice")
    cfg.update(cultures=cultures, country_aliases=aliases,
               translation={"translator_model": translation.get("translator_model")})
    if len(cultures) == 1:
        cfg = culture_cfg(cfg, next(iter(cultures)))
    else:
        cfg.pop("target", None)
    return cfg


def _is_own_view(cfg: dict) -> bool:
    """True for an already normalised one-culture config (normalising twice changes nothing)."""
    cultures = cfg["cultures"]
    if len(cultures) != 1:
        return False
    only = next(iter(cultures.values()))
    return cfg["target"] == _target_of(only) and (cfg.get("translation") or {}).get(
        "table") == only.get("translation_table")


def described_cultures(cfg: dict) -> dict:
    """Each culture's entry without its translation table: what the scoring and report stages read
    of a culture (only the translate stage reads the table), so moving an identical table reruns
    neither."""
    return {k: {f: v for f, v in c.items() if f != "translation_table"} for k, c in cfg["cultures"].items()}


def culture_keys(cfg: dict) -> list[str]:
    """The cultures under test, sorted by key."""
    return sorted(cfg["cultures"])


def culture_cfg(cfg: dict, key: str) -> dict:
    """``cfg`` as one culture sees it: ``target`` and ``translation.table`` set to that culture's,
    so that stage code written for one target culture runs unchanged for each."""
    if key not in cfg["cultures"]:
        raise ConfigError(f"params.cultures: no culture {key!r} (have {', '.join(culture_keys(cfg))})")
    culture = cfg["cultures"][key]
    # a culture's own pinned item sets (its questions) replace the tasks' ones in its view
    own = culture.get("itemsets") or {}
    tasks = {t: ({**section, "itemset": own[t]} if t in own else section)
             for t, section in cfg["tasks"].items()}
    return {**cfg, "target": _target_of(culture), "tasks": tasks,
            "translation": {"table": culture.get("translation_table"),
                            "translator_model": cfg["translation"].get("translator_model")}}


def culture_of(cfg: dict) -> str:
    """The key of the culture a one-culture config or culture view is about."""
    target = cfg.get("target")
    for key, culture in cfg["cultures"].items():
        if target is not None and _target_of(culture) == target:
            return key
    raise ConfigError(f"params: several cultures ({', '.join(culture_keys(cfg))}): choose one (--culture)")


#: the most values a params file may expand to (params.yaml has about 600): aliases can make a
#: few hundred bytes of YAML expand to billions of values ("billion laughs"), which no reader
#: should build, validate or print
MAX_NODES = 100_000
#: the largest params file read at all
MAX_BYTES = 4 << 20


def _expanded_size(node: yaml.Node, seen: dict[int, int], limit: int) -> int:
    """How many values ``node`` expands to with every alias copied out; each node is counted once
    (``seen``), so the count costs the size of the file, not of the expansion."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = limit + 1  # a node inside itself (recursive alias): unbounded
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total = min(total + _expanded_size(child, seen, limit), limit + 1)
    seen[id(node)] = total
    return total


def _read_yaml(path: Path) -> Any:
    """A params file by ``yaml.SafeLoader``, composed to its node graph first and refused, without
    building or printing it, when its aliases expand beyond :data:`MAX_NODES` values."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes, more than a params file needs ({MAX_BYTES} at most)")
        with open(path, encoding="utf-8") as f:
            loader = yaml.SafeLoader(f)
            try:
                node = loader.get_single_node()
                if node is None:
                    return None
                n = _expanded_size(node, {}, MAX_NODES)
                if n > MAX_NODES:
                    raise ConfigError(f"{path}: its YAML aliases expand to more than {MAX_NODES} values "
                                      "(an alias bomb?); refused unread: write the values out")
                return loader.construct_document(node)
            finally:
                loader.dispose()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a params file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _non_finite(value: Any, path: str = "params") -> tuple[str, float] | None:
    """(key path, value) of the first NaN or infinity in ``value`` (YAML's ``.nan``, ``.inf``,
    ``-.inf`` are floats that JSON Schema's ``number`` accepts, but no setting means them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found = _non_finite(child, f"{path}.{key}")
        if found:
            return found
    return None


def merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` into ``base`` (mappings merge, everything else replaces)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return overlay


def load_params(spec: str | os.PathLike = "params.yaml") -> dict:
    """Read params safely and validate them.

    ``spec`` is one YAML file or several joined by ``:`` (later files are deep-merged
    over earlier ones, e.g. ``params.yaml:tests/params.tiny.yaml``); this is how the
    CI and the tests shrink the default run without a second copy of params.
    """
    paths = [Path(p) for p in str(spec).split(":") if p]
    cfg: Any = None
    for path in paths:
        layer = _read_yaml(path)
        cfg = layer if cfg is None else merge(cfg, layer)
    return validate(cfg, ":".join(str(p) for p in paths))


def project_root() -> Path:
    """The project a run is in, against which its project files resolve (templates, translation
    tables and glossaries, item sets, relative paths in params, sources.lock.yaml).

    ``CULTEVAL_PROJECT`` (the Snakefile sets it to its own folder for every job), else the nearest
    folder at or above the working directory holding a Snakefile or dvc.yaml (as ``dvc repro``
    and a hand-run command find it), else the checkout the package was installed from (ROOT).
    Two clones sharing one editable install thus each render their own templates.
    """
    value = os.environ.get("CULTEVAL_PROJECT")
    if value:
        return Path(value).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "Snakefile").is_file() or (folder / "dvc.yaml").is_file():
            return folder
    return ROOT


def project_file(path: str | os.PathLike) -> Path:
    """A path from params: absolute as given, else relative to :func:`project_root`."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


def params_spec() -> str:
    """The params files in force: CULTEVAL_PARAMS (``a.yaml:b.yaml``) or params.yaml.

    Relative paths resolve against the working directory, else the project root
    (:func:`project_root`, so ``snakemake -d elsewhere`` still finds the project's params.yaml).
    """
    parts = []
    for part in os.environ.get("CULTEVAL_PARAMS", "params.yaml").split(":"):
        path = Path(part)
        parts.append(part if path.is_absolute() or path.exists() else str(project_root() / path))
    return ":".join(parts)


def enabled_tasks(cfg: dict) -> list[str]:
    """Tasks switched on in params, sorted by name."""
    return sorted(t for t, section in cfg["tasks"].items() if (section or {}).get("enabled", True))


def export_params() -> str:
    """Resolve the params files and export them as CULTEVAL_PARAMS for the workflow's jobs."""
    spec = params_spec()
    os.environ["CULTEVAL_PARAMS"] = spec
    return spec


def override_params(spec: str, overrides: dict, folder: str | os.PathLike = ".snakemake/culteval") -> str:
    """Append Snakemake's --configfile/--config values to the params files as one more overlay.

    The overlay is written under ``folder`` (in the working directory) and the new spec is
    exported as CULTEVAL_PARAMS, so every job reads the values the workflow planned with.
    """
    if not overrides:
        return spec
    from culteval.io import write_text

    path = Path(folder).resolve() / "config-overrides.yaml"
    write_text(yaml.safe_dump(dict(overrides), sort_keys=True), path)
    spec = f"{spec}:{path}"
    os.environ["CULTEVAL_PARAMS"] = spec
    return spec


def data_mirror() -> Path | None:
    """The offline data mirror named by CULTEVAL_DATA_MIRROR, if set."""
    value = os.environ.get("CULTEVAL_DATA_MIRROR")
    return Path(value).resolve() if value else None
