"""The Confidence Trap's library: everything but the entry points (experiments/), the attack and
probe registries (attacks/, probes/) and the data (configs/, data/, models/tiny-llava/, results/).

    runner/    the engine: config, sweep, pipeline, the run folder (records, run.json), scale-out
    tasks/     inputs: image sets, benchmark datasets and their YAML tasks, answer scoring, scenes
    models/    load a model, prepare its inputs, generate, size batches
    analysis/  records -> summary.json -> verdicts, tables, report, figures (no torch)
    docs/      README, docs/RESULTS.md and the paper rendered from results/

docs/DESIGN.md is the map.
"""
