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
    resources:
        mem_mb=8192,
        gpu=lambda wc: 1 if config["models"][wc.model].get("n_gpu_layers", 0) != 0 else 0,
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
