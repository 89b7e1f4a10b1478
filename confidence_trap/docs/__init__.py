"""README.md's generated blocks, docs/RESULTS.md and paper/paper.tex, rendered from results/ through
the jinja2 templates in paper/."""
