"""What a summary row is: the ``kind`` column of summary.csv (docs/contracts.md).

Set where each row is made (never parsed back from the model name), so that the report's tables
and the claims can tell a model's number from a baseline, a group mean, a comparison or a value
that holds by construction:

* ``model``: a metric of one evaluated model under one strategy;
* ``baseline``: a survey baseline scored like a model (``baseline:*``, strategy ``none``);
* ``reference``: a fact of the reference data or a value true by construction, not an estimate:
  the reference country's respondents compared with themselves (``sim_reference`` = 1,
  ``ncad`` = -1, ``alignment_reference`` = 1), the published map distance between the two
  countries, the map projection's fit; no interval;
* ``group``: the plain mean of a group's models (``group:<group>``; n = models);
* ``comparison``: a difference with its CI and the p-values of the test behind it
  (``delta:<model>-vs-<base>``, ``delta:<model>-vs-baseline:<reference>``,
  ``group:<a>-vs-<b>``, and their ``<metric>:p_*`` rows);
* ``fit``: a statistic fitted across models (``mixed_effects`` coefficients, the
  ``correlation:consistency-alignment`` rank correlations).
"""

from __future__ import annotations

MODEL, BASELINE, REFERENCE = "model", "baseline", "reference"
GROUP, COMPARISON, FIT = "group", "comparison", "fit"
KINDS = (MODEL, BASELINE, REFERENCE, GROUP, COMPARISON, FIT)
#: the kinds the report tables per model x strategy (a comparison is never one of them)
TABLED = (MODEL, BASELINE, REFERENCE, GROUP)


def require_kind(summary, where: str = "summary"):
    """``summary`` when it has the ``kind`` column; else an error saying how to get one."""
    if "kind" not in summary.columns:
        raise ValueError(f"{where} has no 'kind' column: it was written before summary rows carried "
                         "their kind; rerun the metrics stage (culteval metrics) to rewrite it")
    return summary


def with_kind(rows: list[dict], kind: str) -> list[dict]:
    """``rows`` with ``kind`` set (an unknown kind is a programming error, named)."""
    if kind not in KINDS:
        raise ValueError(f"summary row kind {kind!r} is not one of {KINDS}")
    return [{**r, "kind": kind} for r in rows]
