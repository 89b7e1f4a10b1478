"""The engine: config (one dataclass, flags derived from it), the plan and the pipeline, the sweep,
the run folder (records.jsonl, run.json, shards, resume), scale-out and the commands' bodies."""
