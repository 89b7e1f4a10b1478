"""Benchmark datasets: one split of a dataset checked against a task (confidence_trap/tasks/task.py),
its rows handed out lazily (text up front, one image at a time).

    from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows
    task = load_task("configs/tasks/pope.yaml")          # or load_task("pope")
    data = open_dataset(args.dataset, args.split, task)  # None, None -> the task's own defaults
    indices = select_rows(data, args.limit, args.seed)   # seeded, stratified by category
    for rows, images in data.batches(indices, 8):        # images decoded per batch only
        for row, image in zip(rows, images):
            ... row.key, row.query, row.references, row.category, image (PIL RGB)
    data.info()   # {"task", "metric", "dataset", "split", "revision", "rows", "task_file"}

A dataset is a hub id (org/name), a folder written by `datasets` `save_to_disk`, or a folder of
parquet files (confidence_trap/tasks/storage.py says where each is read from). Every check — the
folder or hub id, the split, the columns, the rows — runs in `open_dataset`, so a script that
calls it first fails before it writes anything or loads a model. Errors a user can fix are
`confidence_trap.errors.InputError`s with a one-line message.
"""
from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, field

from confidence_trap.errors import InputError
from confidence_trap.models.images import to_rgb
from confidence_trap.tasks.scoring import METRICS
from confidence_trap.tasks.storage import locate, reader, where
from confidence_trap.tasks.task import COLUMN_ROLES, TASK_PROMPT_FORMATS, Columns, Task, available_tasks, load_task


# -------------------------------------------------------------------------------- rows

@dataclass(frozen=True)
class Row:
    """One dataset row without its image."""
    index: int                       # row index in the split (what select_rows returns)
    id: str                          # the task's id column, as a string
    key: str                         # "{dataset}:{split}:{id}": names the row in records
    category: str | None
    question: str                    # as in the dataset
    query: str                       # question + the task's suffix: what build_prompt gets
    references: tuple[str, ...] = field(default=())   # () where the split has none


def decode_image(value, base_dir: str | None = None):
    """A stored image (datasets' {"bytes", "path"} dict, raw bytes, a path) -> 8-bit PIL RGB.

    Bytes first, else the path (relative paths tried against base_dir first), as `datasets.Image`
    decodes; then the rules of confidence_trap.models.images.load_image, so a dataset image and the same file in
    an image folder give the same pixels: EXIF rotation applied, 16-bit scaled to 8, alpha
    composited on white, anything else converted to RGB. (lmms-eval's `.convert("RGB")` agrees
    except on transparent pixels, which it turns black; COCO's JPEGs have none.)"""
    import warnings

    from PIL import Image, ImageOps

    if isinstance(value, Image.Image):
        im = value
    else:
        data, path = None, None
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, str):
            path = value
        if data is None and not path:
            raise ValueError(f"no image bytes or path in {type(value).__name__} value")
        if data is None:
            inside = os.path.join(base_dir, path) if base_dir and not os.path.isabs(path) else None
            path = inside if inside and os.path.exists(inside) else path
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if data is not None else path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
    if im.width < 1 or im.height < 1:
        raise ValueError("the image is empty")
    return to_rgb(im)


class TaskData:
    """A checked split of a dataset for a task. `len(data)` rows; `row(i)` / `rows(indices)`
    read text only (all text columns are read once, up front); `image(i)` decodes one image.
    Made by `open_dataset`."""

    def __init__(self, source, task: Task, dataset: str, split: str, folder: str,
                 revision: str | None = None):
        self.task, self.dataset, self.split = task, dataset, split
        self.source, self.revision = folder, revision
        self._src = source
        self.columns = list(source.schema.names)
        c = task.columns
        self._ref_col = c.answer or c.answers
        text = list(dict.fromkeys(x for x in (c.id, c.question, self._ref_col, c.category) if x))
        self._text = source.table(text)
        self.ids = [str(v) for v in self._text.column(c.id).to_pylist()]
        self.categories = ([None if v is None else str(v)
                            for v in self._text.column(c.category).to_pylist()]
                           if c.category else None)
        self._n = source.num_rows

    def __len__(self) -> int:
        return self._n

    def key(self, i: int) -> str:
        """The row's stable name in records: "{dataset}:{split}:{id}"."""
        return f"{self.dataset}:{self.split}:{self.ids[i]}"

    def _references(self, value) -> tuple[str, ...]:
        if value is None:
            return ()
        if self.task.columns.answer:
            return (str(value),)
        out = []
        for v in value:
            v = v.get("answer") if isinstance(v, dict) else v
            if v is not None:
                out.append(str(v))
        return tuple(out)

    def _row(self, i: int, values: dict) -> Row:
        question = str(values[self.task.columns.question])
        return Row(index=i, id=self.ids[i], key=self.key(i),
                   category=self.categories[i] if self.categories else None,
                   question=question, query=self.task.query(question),
                   references=self._references(values[self._ref_col]))

    def _check_index(self, i) -> int:
        i = int(i)
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} out of range for {self._n} rows")
        return i

    def row(self, i: int) -> Row:
        i = self._check_index(i)
        return self._row(i, self._text.slice(i, 1).to_pylist()[0])

    def rows(self, indices) -> list[Row]:
        """Rows for many indices in one read (text columns only)."""
        indices = [self._check_index(i) for i in indices]
        if not indices:
            return []
        return [self._row(i, v) for i, v in zip(indices, self._text.take(indices).to_pylist())]

    def image(self, i: int):
        """Decode row i's image -> PIL RGB. Nothing else is decoded or kept."""
        i = self._check_index(i)
        try:
            return decode_image(self._src.image_value(i), base_dir=self.source)
        except Exception as e:  # a corrupt or missing image names its row
            raise InputError(f"cannot decode the image of row {i} ({self.key(i)}): "
                             f"{' '.join(str(e).split())}") from None

    def batches(self, indices, size: int):
        """Yield (rows, images) for consecutive chunks of `indices`; images decoded per chunk."""
        indices = list(indices)
        for start in range(0, len(indices), size):
            chunk = indices[start:start + size]
            yield self.rows(chunk), [self.image(i) for i in chunk]

    def info(self) -> dict:
        """What a run records about its data source."""
        return {"task": self.task.name, "metric": self.task.metric, "dataset": self.dataset,
                "split": self.split, "revision": self.revision, "rows": self._n,
                "task_file": self.task.path}


# ------------------------------------------------------------------------ checks

def _check_columns(names, task: Task, dataset: str, split: str) -> None:
    for role, col in task.columns.named().items():
        if col not in names:
            raise InputError(f"{where(dataset, split)} has no column {col!r} (columns.{role} of "
                             f"task {task.name}); its columns: {', '.join(names)}")


def _check_types(schema, task: Task, dataset: str, split: str) -> None:
    """Column types, from the Arrow schema: list answers, an image column that holds images."""
    import pyarrow as pa

    c = task.columns
    if c.answers:
        t = schema.field(c.answers).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise InputError(f"column {c.answers!r} (columns.answers) of {where(dataset, split)} "
                             f"must hold a list per row, it holds {t}; name a single-answer "
                             f"column as columns.answer")
    t = schema.field(c.image).type
    ok = (pa.types.is_struct(t) and any(t.get_field_index(k) >= 0 for k in ("bytes", "path"))) \
        or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
        or pa.types.is_string(t) or pa.types.is_large_string(t)
    if not ok:
        raise InputError(f"column {c.image!r} (columns.image) of {where(dataset, split)} holds "
                         f"{t}, not images (datasets' Image struct, image bytes or paths)")


def _check_rows(data: TaskData) -> None:
    """The checks that read whole text columns: unique ids, and references among the metric's
    labels where it has them (POPE's yes/no)."""
    c, place = data.task.columns, where(data.dataset, data.split)
    if len(set(data.ids)) != len(data.ids):
        seen = {}
        for i, v in enumerate(data.ids):
            if v in seen:
                raise InputError(f"column {c.id!r} (columns.id) is not unique in {place}: rows "
                                 f"{seen[v]} and {i} share {v!r}; name a unique column as "
                                 f"columns.id")
            seen[v] = i
    labels = METRICS[data.task.metric].labels
    if labels:
        column = getattr(c, METRICS[data.task.metric].column)
        for i, v in enumerate(data._text.column(column).to_pylist()):
            if v is None or str(v).strip().lower() not in labels:
                raise InputError(f"column {column!r} must hold {'/'.join(labels)} for the "
                                 f"{data.task.metric} metric; row {i} of {place} has {v!r}")


def open_dataset(name_or_path: str | None, split: str | None, task: Task) -> TaskData:
    """Open and check one split of a dataset for `task` -> TaskData.

    name_or_path: a local folder (save_to_disk Dataset/DatasetDict, or parquet files) or a hub
    id; None -> task.dataset. split: None -> task.split. Raises InputError (one line) for a
    missing folder, a hub id offline and not in the cache, an unknown split, a missing column,
    an empty split, a column of the wrong type, duplicate ids or non-yes/no POPE labels. Reads
    no image; writes nothing (a hub id's split is downloaded into the Hugging Face hub cache)."""
    name = name_or_path or task.dataset
    if not name:
        raise InputError(f"no dataset: pass --dataset (task {task.name} names no default)")
    split = str(split or task.split)
    dataset, folder, revision = locate(name, split)
    source = reader(folder, split, task, dataset)
    _check_columns(source.schema.names, task, dataset, split)
    if source.num_rows == 0:
        raise InputError(f"{where(dataset, split)} is empty (0 rows)")
    _check_types(source.schema, task, dataset, split)
    data = TaskData(source, task, dataset, split, os.path.abspath(folder), revision)
    _check_rows(data)
    return data


# ----------------------------------------------------------------------- row selection

def _quotas(sizes: dict, limit: int, total: int) -> dict:
    """Largest-remainder (Hamilton) allocation of `limit` over groups of the given sizes;
    ties in remainder go to the larger group, then to the group whose name sorts first."""
    quota = {k: limit * s // total for k, s in sizes.items()}
    left = limit - sum(quota.values())
    order = sorted(sizes, key=lambda k: (-(limit * sizes[k] % total), -sizes[k], str(k)))
    for k in order[:left]:
        quota[k] += 1
    return quota


def select_rows(data: TaskData, limit: int | None = None, seed: int = 0) -> list[int]:
    """Row indices to run, sorted. None -> all rows. Otherwise a seeded subset of `limit` rows,
    stratified by the task's category column where it has one: each category gets its
    proportional share (largest remainders, so within one of limit * share), its rows drawn by
    a Random seeded with (seed, category) — deterministic for a seed, independent of the other
    categories. Raises InputError for a limit that is not a positive integer or is larger than
    the split."""
    n = len(data)
    if limit is None:
        return list(range(n))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"--limit must be a positive integer, got {limit!r}")
    if limit > n:
        raise InputError(f"--limit {limit} is larger than {where(data.dataset, data.split)} "
                         f"({n} rows)")
    if limit == n:
        return list(range(n))
    groups: dict = {}
    for i, cat in enumerate(data.categories or [None] * n):
        groups.setdefault(cat, []).append(i)
    quota = _quotas({k: len(v) for k, v in groups.items()}, limit, n)
    picked = []
    for cat in sorted(groups, key=str):
        idx = groups[cat][:]
        random.Random(f"{seed}:{cat}").shuffle(idx)
        picked.extend(idx[:quota[cat]])
    return sorted(picked)


__all__ = ["COLUMN_ROLES", "Columns", "Row", "TASK_PROMPT_FORMATS", "Task", "TaskData",
           "available_tasks", "decode_image", "load_task", "open_dataset", "select_rows"]
