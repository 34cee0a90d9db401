rule translate:
    input:
        items=ALL_ITEMS,
        translator=translator_models,
    output:
        "data/translations/{lang}.parquet",
    log:
        "logs/translate/{lang}.log",
    threads: config["inference"]["n_threads"]
    resources:
        mem_mb=4096,
    shell:
        "{CLI} translate --items {input.items} --out {output} 2> {log}"
