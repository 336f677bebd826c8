"""The experiment: one module per stage of the notebooks, each writing under results/<exp>/.

    runs        the runs of a params file: RunSpec, parsed from a run name ("teachclip:xclip+ts2net")
    data        01: synthetic data (demo), annotations, the frame cache, the backbone (demo)
    teachers    02: each teacher trained or loaded per seed, its feature cache on the training set
    students    03: CLIP4Clip baselines and TeachCLIP students per seed (over several processes with torchrun)
    evaluation  04: metrics of every model and seed -> metrics.csv, table.md, ranks.csv
    attention   05: AFA weights vs teacher relevance vs ground truth -> attention_correlation.csv, attention.png
    report      the Markdown tables of 04 and of the paper's tables (07)
    plan        every stage folder a params file reads or writes (for `tclib clean` and the notebooks)

Each stage's inputs are one frozen dataclass (tclib.stages.StageInputs) whose record names its folder;
a stage whose folder has a record is done and is skipped.
"""
