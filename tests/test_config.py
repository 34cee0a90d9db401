"""params.yaml validation: bad params are rejected with the key path named."""

import copy

import pytest
import yaml

from culteval.config import ROOT, ConfigError, load_params, validate


@pytest.fixture()
def cfg():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_are_valid():
    cfg = load_params(ROOT / "params.yaml")
    assert cfg["target"]["country"] == "India"
    assert cfg["reference"]["country"] == "United States"
    assert "gemma-3-270m" in cfg["models"]
    # the mixed model's labels, as the model cards state them
    assert {m: (e["family"], e["multilingual"]) for m, e in cfg["models"].items()} == {
        "gemma-3-270m": ("gemma-3", {"en": 1, "hi": 1}),
        "smollm2-135m-instruct": ("smollm2", {"en": 1, "hi": 0})}


def test_overlay_deep_merges(tmp_path):
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text("tasks:\n  normad: {limit: 3}\n")
    cfg = load_params(f"{ROOT / 'params.yaml'}:{overlay}")
    assert cfg["tasks"]["normad"]["limit"] == 3
    assert cfg["tasks"]["normad"]["contexts"] == ["none", "country", "value", "rot"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(unknown_key=1), "Additional properties are not allowed ('unknown_key'"),
        (lambda c: c["sampling"].update(trials="three"), "params.sampling.trials"),
        (lambda c: c.update(strategies=["default", "telepathic"]), "params.strategies.1"),
        (lambda c: c["tasks"].update(astrology={}), "params.tasks"),
        (lambda c: c["models"]["gemma-3-270m"].pop("package"), "params.models.gemma-3-270m"),
        (lambda c: c.update(models={}), "params.models"),
        (lambda c: c["models"]["gemma-3-270m"].update(sha256="abc"), "params.models.gemma-3-270m.sha256"),
        (lambda c: c["models"]["gemma-3-270m"].update(base="nonexistent"), "params.models.gemma-3-270m.base"),
        (lambda c: c["translation"].update(translator_model="ghost"), "params.translation.translator_model"),
        (lambda c: [t.update(enabled=False) for t in c["tasks"].values()], "no task is enabled"),
        (lambda c: c["models"]["gemma-3-270m"].update(multilingual={"en": 1.5, "hi": 1}),
         "params.models.gemma-3-270m.multilingual.en"),
        (lambda c: c["models"]["gemma-3-270m"].update(multilingual="yes"),
         "params.models.gemma-3-270m.multilingual"),
        # one label for every language is not accepted: the mixed model needs one per language
        (lambda c: c["models"]["gemma-3-270m"].update(multilingual=1),
         "params.models.gemma-3-270m.multilingual: 1 is not of type 'object'"),
        (lambda c: c["models"]["gemma-3-270m"].update(multilingual={"en": 1}),
         "params.models.gemma-3-270m.multilingual: no score for language 'hi' (the run's languages: en, hi)"),
        (lambda c: c["models"]["gemma-3-270m"].update(family=""), "params.models.gemma-3-270m.family"),
    ],
)
def test_bad_params_name_the_key(cfg, mutate, needle):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate(bad)
    assert needle in str(err.value)


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(evil)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
