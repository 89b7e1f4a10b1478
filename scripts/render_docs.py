"""python scripts/render_docs.py [--check] [--root DIR] [--results DIR]

Renders README.md's generated blocks and paper/paper.tex from results/ (confidence_trap/docs/build.py does the
work and documents the flags).
"""
import sys

from confidence_trap.docs.build import main

if __name__ == "__main__":
    sys.exit(main())
