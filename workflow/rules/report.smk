rule report:
    input:
        summary="results/metrics/summary.csv",
        items=ALL_ITEMS,
        raw=ALL_RAW,
        maps="data/raw/ivs_map/PROVENANCE.json",
    output:
        "results/report.html",
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=4096,
    shell:
        "{CLI} report --summary {input.summary} --raw {input.raw} --out-dir results 2> {log}"
