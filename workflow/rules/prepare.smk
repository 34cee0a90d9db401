rule prepare:
    input:
        task_datasets,
    output:
        "data/items/{task}.parquet",
    log:
        "logs/prepare/{task}.log",
    threads: 1
    resources:
        mem_mb=2048,
    params:
        cli=CLI,
        settings=settings("tasks", "target", "reference", "country_aliases"),
    conda:
        ENV
    shell:
        "{params.cli} prepare --task {wildcards.task} --out {output} 2> {log}"


rule all_items:
    input:
        ALL_ITEMS,
