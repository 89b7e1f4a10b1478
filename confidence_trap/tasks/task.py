"""A benchmark task: a YAML file saying which columns of a dataset hold what, what to append to
each question and how to score the answer.

    from confidence_trap.tasks.task import load_task
    task = load_task("configs/tasks/pope.yaml")          # or load_task("pope")
    task.columns.question, task.metric, task.query("Is there a dog?")

Keys: task (its name), dataset (the default --dataset), split (the default --split), columns
(role -> column name: id, image, question, answer or answers, category), prompt_suffix
(appended to the stripped question), metric (an entry of confidence_trap.tasks.scoring.METRICS,
whose `column` says which of answer/answers it needs) and prompt_format (TASK_PROMPT_FORMATS).
confidence_trap/tasks/datasets.py opens a dataset against it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields

from confidence_trap.errors import InputError
from confidence_trap.tasks.scoring import METRICS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS_DIR = os.path.join(REPO, "configs", "tasks")
TASK_KEYS = ("task", "dataset", "split", "columns", "prompt_suffix", "metric", "prompt_format")
REQUIRED_KEYS = ("task", "split", "columns", "metric")
COLUMN_ROLES = ("id", "image", "question", "answer", "answers", "category")
NEEDS = {"answer": "one reference a row, e.g. the yes/no label", "answers": "a list a row, e.g. the human answers"}
# confidence_trap/models/prompts.py builds llava_v1 and chat_template; vicuna_v1 is LLaVA's conv_vicuna_v1 (the
# conv mode of LLaVA-1.5's benchmark scripts): llava_v1 with "user" for "human" in the system.
TASK_PROMPT_FORMATS = ("llava_v1", "vicuna_v1", "chat_template")


@dataclass(frozen=True)
class Columns:
    """Dataset column names by role. Exactly one of `answer` (one reference per row) and
    `answers` (a list per row: strings, or dicts with an "answer" key as in VQA)."""
    id: str
    image: str
    question: str
    answer: str | None = None
    answers: str | None = None
    category: str | None = None

    def named(self) -> dict[str, str]:
        """{role: column} for the roles this task uses."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


@dataclass(frozen=True)
class Task:
    name: str
    split: str                       # the default --split
    columns: Columns
    metric: str                      # confidence_trap.tasks.scoring.METRICS
    dataset: str | None = None       # the default --dataset
    prompt_suffix: str = ""          # appended to the stripped question, e.g. "\nAnswer …"
    prompt_format: str | None = None  # TASK_PROMPT_FORMATS; None: the model's default
    path: str | None = None          # the YAML file it came from

    def query(self, question: str) -> str:
        """What the model is asked: the question, stripped, with the suffix appended — as
        lmms-eval's doc_to_text (f"{question.strip()}{post_prompt}") and LLaVA's question files
        ("Is there a chair in the image?\\nAnswer the question using a single word or phrase.")."""
        return str(question).strip() + self.prompt_suffix


def available_tasks() -> list[str]:
    """Names of the task files shipped in configs/tasks/."""
    if not os.path.isdir(TASKS_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(TASKS_DIR) if f.endswith(".yaml"))


def _task_file(path: str) -> str:
    if os.path.isfile(path):
        return path
    shipped = os.path.join(TASKS_DIR, f"{path}.yaml")
    if os.sep not in path and "/" not in path and os.path.isfile(shipped):
        return shipped
    raise InputError(f"task file not found: {path} (shipped tasks: "
                     f"{', '.join(available_tasks()) or 'none'}, in {TASKS_DIR})")


def _string(value, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"task {where}: {what} must be a non-empty string, got {value!r}")
    return value


def load_task(path: str) -> Task:
    """Read a task YAML (a path, or the name of a file in configs/tasks/) -> Task.

    Raises InputError (one line) for a missing file, bad YAML, an unknown or missing key, an
    unknown column role or metric or prompt format, or columns that do not suit the metric."""
    import yaml

    path = _task_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read task {path}: {' '.join(str(e).split())}") from None
    if not isinstance(spec, dict):
        raise InputError(f"task {path} must be a YAML mapping of {', '.join(TASK_KEYS)}")
    unknown = sorted(set(map(str, spec)) - set(TASK_KEYS))
    if unknown:
        raise InputError(f"task {path}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(TASK_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if spec.get(k) is None]
    if missing:
        raise InputError(f"task {path}: missing required key(s) {', '.join(missing)}")
    cols = spec["columns"]
    if not isinstance(cols, dict):
        raise InputError(f"task {path}: columns must map roles ({', '.join(COLUMN_ROLES)}) "
                         f"to column names")
    bad = sorted(set(map(str, cols)) - set(COLUMN_ROLES))
    if bad:
        raise InputError(f"task {path}: unknown column role(s) {', '.join(bad)}; "
                         f"allowed: {', '.join(COLUMN_ROLES)}")
    for role in ("id", "image", "question"):
        if cols.get(role) is None:
            raise InputError(f"task {path}: columns.{role} is required")
    if (cols.get("answer") is None) == (cols.get("answers") is None):
        raise InputError(f"task {path}: name exactly one of columns.answer (one reference per "
                         f"row) and columns.answers (a list per row)")
    columns = Columns(**{r: _string(v, f"columns.{r}", path) for r, v in cols.items()
                         if v is not None})
    metric = spec["metric"]
    if metric not in METRICS:
        raise InputError(f"task {path}: unknown metric {metric!r}; choose from "
                         f"{', '.join(METRICS)}")
    need = METRICS[metric].column
    if need and not getattr(columns, need):
        raise InputError(f"task {path}: metric {metric} needs columns.{need} ({NEEDS[need]})")
    fmt = spec.get("prompt_format")
    if fmt is not None and fmt not in TASK_PROMPT_FORMATS:
        raise InputError(f"task {path}: unknown prompt_format {fmt!r}; choose from "
                         f"{', '.join(TASK_PROMPT_FORMATS)}")
    suffix = spec.get("prompt_suffix") or ""
    if not isinstance(suffix, str):
        raise InputError(f"task {path}: prompt_suffix must be a string, got {suffix!r}")
    dataset = spec.get("dataset")
    return Task(name=_string(spec["task"], "task", path),
                split=_string(str(spec["split"]), "split", path), columns=columns, metric=metric,
                dataset=None if dataset is None else _string(dataset, "dataset", path),
                prompt_suffix=suffix, prompt_format=fmt, path=path)


__all__ = ["COLUMN_ROLES", "Columns", "TASK_PROMPT_FORMATS", "TASKS_DIR", "Task", "available_tasks", "load_task"]
