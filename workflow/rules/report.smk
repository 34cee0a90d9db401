rule report:
    input:
        summary="results/metrics/summary.csv",
        item_tables=ALL_ITEMS,
        raw=ALL_RAW,
        maps="data/raw/ivs_map/PROVENANCE.json",
    output:
        html="results/report.html",
        figures=directory("results/figures"),
        provenance="results/provenance.json",
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=4096,
    params:
        cli=CLI,
        settings=settings("metrics", "cultural_map", "models", "target", "reference", "datasets"),
    conda:
        ENV
    shell:
        "{params.cli} report --summary {input.summary} --raw {input.raw} --out-dir results 2> {log}"
