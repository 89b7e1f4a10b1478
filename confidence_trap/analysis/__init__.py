"""Statistics, report and figures of a run, from records.jsonl alone (no torch, no models).

    python experiments/analyze.py --out results/

summary.summarize(records) -> the summary.json dict; report.render_report(summary, run_info) ->
the text report; figures.render_figures(summary, out_dir, run_info) -> the PNGs, drawn with
plot's helpers; levels says which records are what and names their levels; stats, calibration,
selective and scoring hold the plain statistics they use, clusters the unit they resample (an
item), noise the null control's floor and verdicts the rule that reads Δ. Nothing is imported
here, so importing one module does not pay for matplotlib.
"""
