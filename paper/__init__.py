"""The paper and the README's generated blocks: jinja2 templates and what lays out their tables."""
