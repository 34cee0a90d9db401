rule prepare:
    input:
        task_datasets,
        itemset=task_itemset,
        code=phase_code("prepare"),
    output:
        "data/items/{culture}/{task}.parquet",
    log:
        "logs/prepare/{culture}/{task}.log",
    threads: 1
    resources:
        mem_mb=2048,
    params:
        cli=CLI,
        settings=settings("prepare"),
    shell:
        "{params.cli} prepare --culture {wildcards.culture} --task {wildcards.task} --out {output} 2> {log}"


rule all_items:
    input:
        ALL_ITEMS,
