rule translate:
    input:
        item_tables=culture_items,
        translator=translator_models,
        table=translation_table,
        code=phase_code("translate"),
        glossary=glossary,
    output:
        "data/translations/{culture}.parquet",
    log:
        "logs/translate/{culture}.log",
    threads: config["inference"]["n_threads"]
    resources:
        mem_mb=4096,
    params:
        cli=CLI,
        settings=settings("translate"),
    shell:
        "{params.cli} translate --culture {wildcards.culture} --items {input.item_tables} --threads {threads} "
        "--out {output} 2> {log}"


rule all_translations:
    input:
        ALL_TRANSLATIONS,
