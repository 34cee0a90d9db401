rule render:
    input:
        unpack(render_inputs),
        templates=templates,
        code=phase_code("render"),
    output:
        "data/prompts/{culture}/{task}/{strategy}.parquet",
    log:
        "logs/render/{culture}/{task}/{strategy}.log",
    threads: 1
    resources:
        mem_mb=2048,
    params:
        cli=CLI,
        settings=settings("render"),
        translations=lambda wc, input: f"--translations {input.translations}" if "translations" in input.keys() else "",
    shell:
        "{params.cli} render --culture {wildcards.culture} --task {wildcards.task} --strategy {wildcards.strategy} "
        "--items {input.item_table} {params.translations} --out {output} 2> {log}"


rule all_prompts:
    input:
        ALL_PROMPTS,
