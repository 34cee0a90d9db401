rule report:
    input:
        summary="results/metrics/summary.csv",
        item_tables=ALL_ITEMS,
        prompts=ALL_PROMPTS,
        raw=ALL_RAW,
        maps="data/raw/ivs_map/PROVENANCE.json",
        code=phase_code("report"),
    output:
        html="results/report.html",
        figures=directory("results/figures"),
        item_pages=directory("results/items"),
        provenance="results/provenance.json",
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=4096,
    params:
        cli=CLI,
        settings=settings("report"),
    shell:
        "{params.cli} report --summary {input.summary} --raw {input.raw} --items {input.item_tables} "
        "--prompts {input.prompts} --out-dir results 2> {log}"
