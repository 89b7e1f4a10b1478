"""Statistics, report and figures of a run, from records.jsonl alone (no torch, no models).

    python experiments/analyze.py --out results/

summary.summarize(records) -> the summary.json dict; report.render_report(summary, run_info) ->
the text report; figures.render_figures(summary, out_dir, run_info) -> the PNGs, drawn with
plot's helpers; levels says which records are what and names their levels; stats, calibration,
selective and scoring hold the plain statistics they use, clusters the unit they resample
(images and questions, crossed), noise the null control, verdicts the rule that reads Δ,
entropy_filter the filter's pass rates and its verdict, prior (with prior_rank) the language-prior
tests and prior_text / prior_contrast their words. Nothing is imported here, so importing one
module does not pay for matplotlib.
"""
