"""python scripts/render_docs.py [--check] [--root DIR] [--results DIR]

Renders README.md's generated blocks and paper/paper.tex from results/ (paper/docs.py does the
work and documents the flags).
"""
import sys

from paper.docs import main

if __name__ == "__main__":
    sys.exit(main())
