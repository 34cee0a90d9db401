"""A failed SLURM job's reason reaches the message (culteval.cluster)."""

from culteval.cluster import explain_failures, failed_slurm_logs

STEPD = ("slurmstepd-node7: error: StepId=93.0 exceeded memory limit (414199808 > 314572800), being killed\n"
         "slurmstepd-node7: error: Exceeded job memory limit\n"
         "slurmstepd-node7: error: *** STEP 93.0 ON node7 CANCELLED AT 2026-12-05T17:11:11 ***\n")


def _snakemake_log(slurm_logs) -> str:
    out = ["Building DAG of jobs..."]
    for p in slurm_logs:
        out += [f"Job 0 has been submitted with SLURM jobid {p.stem} (log: {p}).",
                "Error in rule infer:",
                f"    message: SLURM-job '{p.stem}' failed, SLURM status is: 'FAILED'. Reason: Unknown.",
                f"    log: logs/infer/hi/m/t/s.log, {p} (check log file(s) for error details)"]
    return "\n".join(out)


def test_a_job_killed_for_memory_is_explained_with_its_log(tmp_path):
    folder = tmp_path / ".snakemake" / "slurm_logs" / "rule_infer" / "hi_m_t_s"
    folder.mkdir(parents=True)
    killed, failed = folder / "93.log", folder / "94.log"
    killed.write_text("SNAKEMAKE\nrule infer:\n" + STEPD + STEPD)
    failed.write_text("SNAKEMAKE\nrule infer:\nculteval: error: something else\n")
    text = _snakemake_log([killed, failed])
    assert failed_slurm_logs(text) == [("93", killed), ("94", failed)]
    lines = explain_failures(text)
    assert lines[0] == ("culteval: SLURM job 93: exceeded memory limit (414199808 > 314572800), "
                        "being killed; Exceeded job memory limit; CANCELLED AT 2026-12-05T17:11:11 "
                        f"(SLURM log: {killed})")
    assert lines[1].startswith("culteval: SLURM job 94: the scheduler gave no reason")
    assert str(failed) in lines[1]


def test_a_local_failure_names_no_slurm_job():
    assert explain_failures("Error in rule infer:\n    log: logs/infer/a.log (check log file(s))\n") == []
