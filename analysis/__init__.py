"""Statistics, report and figures of an entropy run, from records.jsonl alone (no torch).

    python experiments/analyze.py --out results/

Public surface: summarize(records) -> summary dict, render_report(summary, run_info) -> str,
render_figures(summary, out_dir, run_info) -> [paths], token_position_profile(records), eps_key(x).
"""
from analysis.figures import render_figures
from analysis.report import render_report
from analysis.stats import eps_key
from analysis.summary import PROBE_KEYS, summarize, token_position_profile

__all__ = ["PROBE_KEYS", "eps_key", "render_figures", "render_report", "summarize",
           "token_position_profile"]
