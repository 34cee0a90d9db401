"""The README's measured numbers are the published run's: run_time.txt and precision.txt.

``make publish`` writes ``results/published/run_time.txt`` (benchmarks/run_time.py, with the run's
header: its machine and the wall seconds of ``dvc repro`` and ``make setup``) and
``results/published/precision.txt`` (benchmarks/precision.py). The README quotes both; these tests
read each quoted number and fail when it is not what the published file says, so a republished
run that moves a time or a count fails until the README follows. A reworded README sentence fails
too (the test names what it could not find): update the sentence's pattern here with it.
"""

from __future__ import annotations

import re

import pytest

from culteval.config import ROOT

PUBLISHED = ROOT / "results" / "published"


def _text(path) -> str:
    return re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))  # sentences wrap anywhere


def _find(pattern: str, text: str, where: str) -> re.Match:
    m = re.search(pattern, text)
    if m is None:
        pytest.fail(f"{where}: no sentence matching {pattern!r}: the README and this test must say the same")
    return m


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def run_time() -> dict:
    """The published run's measured numbers (results/published/run_time.txt)."""
    text = _text(PUBLISHED / "run_time.txt")
    where = "results/published/run_time.txt"
    header = _find(r"dvc repro, every stage: (\d+) s \(make setup with the llama\.cpp build, "
                   r"fresh clone: (\d+) s\)", text, where)
    jobs = _find(r"(\d+) inference jobs: ([\d.]+) min wall \(sum over jobs\), ([\d.]+) min CPU, ([\d,]+) "
                 r"prompts, ([\d,]+) prompt tokens, ([\d,]+) sampled answers", text, where)
    predicted = _find(r"predicted by the cost model: ([\d.]+) min wall", text, where)
    return {"repro_min": f"{int(header[1]) / 60:.1f}", "setup_min": f"{int(header[2]) / 60:.1f}",
            "jobs": int(jobs[1]), "wall_min": jobs[2], "prompts": _int(jobs[4]), "tokens": _int(jobs[5]),
            "sampled": _int(jobs[6]), "predicted_min": predicted[1]}


def readme_run_time() -> dict:
    """The same numbers as the README states them."""
    text = _text(ROOT / "README.md")
    two = _find(r"setup with the llama\.cpp build ([\d.]+) minutes, the default run ([\d.]+) minutes "
                r"\(`dvc repro`, every stage", text, "README.md 'Two commands'")
    size = _find(r"The default run: (\d+) inference jobs .*?, ([\d,]+) prompts, ([\d,]+) prompt tokens and "
                 r"([\d,]+) sampled answers; its jobs' wall times sum to ([\d.]+) minutes .*? against "
                 r"([\d.]+) minutes predicted by the cost model", text, "README.md 'Size of a run'")
    return {"setup_min": two[1], "repro_min": two[2], "jobs": int(size[1]), "prompts": _int(size[2]),
            "tokens": _int(size[3]), "sampled": _int(size[4]), "wall_min": size[5], "predicted_min": size[6]}


def test_readme_times_and_counts_are_the_published_runs():
    published, readme = run_time(), readme_run_time()
    drift = {k: f"README {readme[k]}, run_time.txt {published[k]}"
             for k in readme if readme[k] != published[k]}
    assert not drift, f"README.md quotes numbers results/published/run_time.txt does not say: {drift}"


def precision() -> dict[str, tuple[float, float, float]]:
    """family -> (median items, half-width, projected full-set half-width) of precision.txt."""
    out = {}
    for line in (PUBLISHED / "precision.txt").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\s*(\w+)\s+(.+?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m and not line.startswith("#"):
            out[m[2]] = (float(m[4]), float(m[5]), float(m[7]))
    return out


def test_readme_precision_is_the_published_runs():
    fam, text = precision(), _text(ROOT / "README.md")
    where = "README.md 'What the default run shows'"
    m = _find(r"GlobalOpinionQA similarity ([\d.]+) .*?, CAD ([\d.]+) and nCAD ([\d.]+) "
              r"\((\d+) questions with national samples of both countries.*?"
              r"CulturalBench Easy accuracy ([\d.]+) \((\d+) questions\), "
              r"NormAd accuracy per context ([\d.]+) \((\d+) stories\), "
              r"BLEnD ([\d.]+) \((\d+) questions per country\)\. "
              r"The full mirror set .*? would narrow the first to about ([\d.]+) "
              r"and the practice accuracies to about ([\d.]+) \(CulturalBench Easy\) and ([\d.]+) \(NormAd\)",
              text, where)
    stated = {"similarity 1 - JSD": (None, m[1]), "CAD": (m[4], m[2]), "nCAD": (m[4], m[3]),
              "Easy accuracy, sampled": (m[6], m[5]), "accuracy per context, sampled": (m[8], m[7]),
              "share of matching answers, per country": (m[10], m[9])}
    drift = []
    for family, (items, half_width) in stated.items():
        n, hw, _ = fam[family]
        if f"{hw:.3f}" != half_width or (items is not None and f"{n:g}" != items):
            drift.append(f"{family}: README {half_width} ({items} items), "
                         f"precision.txt {hw:.3f} ({n:g} items)")
    full = f"{fam['similarity 1 - JSD'][2]:.3f}"
    if full != m[11]:
        drift.append(f"similarity, full set: README {m[11]}, precision.txt {full}")
    # the practice tasks' projections (CulturalBench Easy, NormAd), each at the precision stated
    for family, stated in (("Easy accuracy, sampled", m[12]), ("accuracy per context, sampled", m[13])):
        digits = len(stated.split(".")[1])
        if f"{fam[family][2]:.{digits}f}" != stated:
            drift.append(f"{family}, full set: README about {stated}, precision.txt {fam[family][2]:.3f}")
    assert not drift, f"README.md quotes numbers results/published/precision.txt does not say: {drift}"
