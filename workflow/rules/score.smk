rule metrics:
    input:
        items=ALL_ITEMS,
        raw=ALL_RAW,
        maps="data/raw/ivs_map/PROVENANCE.json",
    output:
        summary="results/metrics/summary.csv",
        metrics="results/metrics/metrics.json",
    log:
        "logs/metrics.log",
    threads: 1
    resources:
        mem_mb=4096,
    shell:
        "{CLI} metrics --items {input.items} --raw {input.raw} --out-dir results/metrics 2> {log}"
