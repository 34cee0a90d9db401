rule translate:
    input:
        item_tables=ALL_ITEMS,
        translator=translator_models,
        table=translation_table,
        code=phase_code("translate"),
        glossary=lambda wc: [str(p) for p in [Path(workflow.basedir, "workflow/translations", f"glossary.{wc.lang}.jsonl")] if p.is_file()],
    output:
        "data/translations/{lang}.parquet",
    log:
        "logs/translate/{lang}.log",
    threads: config["inference"]["n_threads"]
    resources:
        mem_mb=4096,
    params:
        cli=CLI,
        settings=settings("translate"),
    shell:
        "{params.cli} translate --items {input.item_tables} --threads {threads} --out {output} 2> {log}"
