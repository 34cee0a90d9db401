rule metrics:
    input:
        item_tables=ALL_ITEMS,
        raw=ALL_RAW,
        prompts=ALL_PROMPTS,
        maps="data/raw/ivs_map/PROVENANCE.json",
        code=phase_code("metrics"),
    output:
        summary="results/metrics/summary.csv",
        metrics="results/metrics/metrics.json",
        provenance="results/metrics/provenance.json",
    log:
        "logs/metrics.log",
    threads: 1
    resources:
        mem_mb=4096,
    params:
        cli=CLI,
        settings=settings("metrics"),
    shell:
        "{params.cli} metrics --items {input.item_tables} --raw {input.raw} --prompts {input.prompts} --out-dir results/metrics 2> {log}"
