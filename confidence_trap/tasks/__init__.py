"""Inputs: bundled image sets and manifests, benchmark datasets and their YAML tasks, the scoring of
answers against references, and the synthetic scenes the embedded model was trained on."""
