rule acquire_data:
    input:
        code=phase_code("acquire"),
    output:
        "data/raw/{dataset}/PROVENANCE.json",
    log:
        "logs/acquire/{dataset}.log",
    threads: 1
    resources:
        mem_mb=512,
    params:
        cli=CLI,
        settings=settings("acquire_data"),
    shell:
        "{params.cli} acquire-data --dataset {wildcards.dataset} --out data/raw/{wildcards.dataset} 2> {log}"


rule acquire_model:
    input:
        code=phase_code("acquire"),
    output:
        "data/models/{model}.json",
    log:
        "logs/acquire/model-{model}.log",
    threads: 1
    resources:
        mem_mb=2048,
    params:
        cli=CLI,
        settings=settings("acquire_model"),
    shell:
        "{params.cli} acquire-model --model {wildcards.model} --out {output} 2> {log}"


rule all_acquire:
    input:
        expand("data/raw/{dataset}/PROVENANCE.json", dataset=ALL_DATASETS),
        expand("data/models/{model}.json", model=MODELS),
