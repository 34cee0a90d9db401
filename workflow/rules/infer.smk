# One job per (culture, model, task, strategy): the model loads once per job, and the
# engine checkpoints chunks beside the output so a killed job resumes.
rule infer:
    input:
        model="data/models/{model}.json",
        prompts="data/prompts/{culture}/{task}/{strategy}.parquet",
        code=phase_code("infer"),
    output:
        "results/raw/{culture}/{model}/{task}/{strategy}.parquet",
    log:
        "logs/infer/{culture}/{model}/{task}/{strategy}.log",
    benchmark:
        "logs/benchmarks/infer/{culture}/{model}/{task}/{strategy}.tsv"
    threads: config["inference"]["n_threads"]
    # longest jobs first (predicted seconds, culteval.costmodel), so a run does not end on one
    # long job with the other cores idle
    priority: lambda wc: job_priority(config, wc.culture, wc.model, wc.task, wc.strategy)
    # what the scheduler sees, from the work (culteval.resources, docs/cluster.md): memory from the
    # model file and n_ctx as preflight counts them (doubled on a retry after a kill), minutes from
    # the cost model's prediction, a GPU exactly when the model offloads layers
    resources:
        mem_mb=lambda wc, input, attempt: model_mem_mb(input.model, config, attempt),
        runtime=lambda wc: infer_runtime_min(config, wc.culture, wc.model, wc.task, wc.strategy),
        gpu=lambda wc: gpus(config["models"][wc.model]),
    params:
        cli=CLI,
        settings=settings("infer"),
    shell:
        "{params.cli} infer --culture {wildcards.culture} --model-json {input.model} --task {wildcards.task} "
        "--strategy {wildcards.strategy} "
        "--prompts {input.prompts} --threads {threads} --out {output} --mem-mb {resources.mem_mb} 2> {log}"


rule all_raw:
    input:
        ALL_RAW,
