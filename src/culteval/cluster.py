"""Why the scheduler ended a failed job, in the message a user reads (docs/cluster.md).

SLURM writes the reason it killed a job (over its memory, out of time, cancelled) into the
job's own log, not into the state Snakemake's SLURM executor reports (a job step killed for
memory without cgroups leaves the job FAILED, "Reason: Unknown"). At a failed run's end the
Snakefile's ``onerror`` prints, for each failed SLURM job, slurmstepd's lines from that log.
"""

from __future__ import annotations

import re
from pathlib import Path

# Snakemake's failure record names the rule's logs, the SLURM log last: ".../slurm_logs/.../<jobid>.log"
_SLURM_LOG = re.compile(r"(\S+/slurm_logs/\S+?/(\d+)\.log)")
# what slurmstepd and slurmd say when they end a job or step
_REASON = re.compile(r"(exceeded memory limit.*|oom[-_ ]kill.*|DUE TO TIME LIMIT.*|CANCELLED AT.*|"
                     r"Exceeded job memory limit.*|out of memory.*)", re.IGNORECASE)


def failed_slurm_logs(snakemake_log: str) -> list[tuple[str, Path]]:
    """(SLURM job id, its log) of every job Snakemake reported failed, in the order reported."""
    out: list[tuple[str, Path]] = []
    in_error = False
    for line in snakemake_log.splitlines():
        if line.startswith("Error in rule "):
            in_error = True
        elif in_error and line.strip().startswith("log:"):
            out += [(m.group(2), Path(m.group(1))) for m in _SLURM_LOG.finditer(line)]
            in_error = False
    return list(dict.fromkeys(out))


def reasons(slurm_log: Path) -> list[str]:
    """slurmstepd's reasons for ending the job, each once, as the log says them."""
    if not slurm_log.is_file():
        return [f"its SLURM log {slurm_log} is missing"]
    found = []
    for line in slurm_log.read_text(errors="replace").splitlines():
        if "slurmstepd" in line or "slurmd" in line:
            m = _REASON.search(line)
            if m:
                found.append(m.group(1).strip().rstrip("*").strip())
    return list(dict.fromkeys(found))


def explain_failures(snakemake_log: str) -> list[str]:
    """One line per failed SLURM job: its id, what the scheduler said, and its log."""
    lines = []
    for job_id, path in failed_slurm_logs(snakemake_log):
        said = reasons(path)
        why = "; ".join(said) if said else "the scheduler gave no reason (the job's own command failed)"
        lines.append(f"culteval: SLURM job {job_id}: {why} (SLURM log: {path})")
    return lines
