"""What fills the README's generated blocks and the paper from results/: `scripts/render_docs.py`
runs it; markup.py writes markdown and LaTeX, results.py the run's tables, sections.py the rest."""
