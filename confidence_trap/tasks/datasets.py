"""Benchmark tasks: a YAML file says which columns of a Hugging Face dataset hold what, what to
append to each question and how to score the answer; `open_dataset` checks a dataset against it
and hands out rows lazily (text up front, one image at a time).

    from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows
    task = load_task("configs/tasks/pope.yaml")          # or load_task("pope")
    data = open_dataset(args.dataset, args.split, task)  # None, None -> the task's own defaults
    indices = select_rows(data, args.limit, args.seed)   # seeded, stratified by category
    for rows, images in data.batches(indices, 8):        # images decoded per batch only
        for row, image in zip(rows, images):
            ... row.key, row.query, row.references, row.category, image (PIL RGB)
    data.info()   # {"task", "metric", "dataset", "split", "revision", "rows", "task_file"}

A dataset is a hub id (org/name), a folder written by `datasets` `save_to_disk` (a Dataset or a
DatasetDict), or a folder of parquet files, the split taken from the file names as `datasets`
does (data/test-00000-of-00003.parquet, validation.parquet, …; files naming none are "train").
Every check — the folder or hub id, the split, the columns, the rows — runs in `open_dataset`,
so a script that calls it first fails before it writes anything or loads a model. Errors a user
can fix are `confidence_trap.errors.InputError`s with a one-line message.

Hub ids: only the requested split's parquet files are fetched (huggingface_hub snapshot into the
usual hub cache), so `--split validation` of lmms-lab/VQAv2 fetches its ~7 GB of validation
parquet, not the ~38 GB of testdev and test as well (sizes from its dataset card), and a later
offline run finds them in the cache. Parquet is read in place with pyarrow, never copied into
an Arrow cache. Offline (HF_HUB_OFFLINE or
HF_DATASETS_OFFLINE set, or huggingface.co unreachable by one quick TCP probe) a hub id is read
from that cache or refused with a line saying how to fetch it elsewhere.
"""
from __future__ import annotations

import io
import json
import os
import random
import re
from dataclasses import dataclass, field, fields

from confidence_trap.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS_DIR = os.path.join(REPO, "configs", "tasks")
TASK_KEYS = ("task", "dataset", "split", "columns", "prompt_suffix", "metric", "prompt_format")
REQUIRED_KEYS = ("task", "split", "columns", "metric")
COLUMN_ROLES = ("id", "image", "question", "answer", "answers", "category")
# confidence_trap/models/prompts.py builds llava_v1 and chat_template; vicuna_v1 is LLaVA's conv_vicuna_v1 (the
# conv mode of LLaVA-1.5's benchmark scripts): llava_v1 with "user" for "human" in the system.
TASK_PROMPT_FORMATS = ("llava_v1", "vicuna_v1", "chat_template")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ------------------------------------------------------------------------------- the task

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
    metric: str                      # confidence_trap.analysis.scoring.METRICS
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

    from confidence_trap.analysis.scoring import METRICS

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
    if metric == "pope" and not columns.answer:
        raise InputError(f"task {path}: metric pope needs columns.answer (the yes/no label)")
    if metric == "vqa" and not columns.answers:
        raise InputError(f"task {path}: metric vqa needs columns.answers (the human answers)")
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

    from confidence_trap.models.images import _to_8bit   # also sets load_image's Image.MAX_IMAGE_PIXELS

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
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit(im)
    if im.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    return im if im.mode == "RGB" else im.convert("RGB")


class _DatasetSource:
    """A datasets.Dataset (from load_from_disk: memory-mapped Arrow) read as Arrow tables."""

    def __init__(self, ds, image_col: str):
        self._ds, self._image_col, self._image = ds, image_col, None
        self.schema = ds.data.schema
        self.num_rows = len(ds)

    def table(self, columns):
        return self._ds.select_columns(list(columns)).with_format("arrow")[:]

    def image_value(self, i: int):
        if self._image is None:
            self._image = self._ds.select_columns([self._image_col]).with_format("arrow")
        return self._image[i].column(0)[0].as_py()


class _ParquetSource:
    """Parquet files read in place with pyarrow: no Arrow copy in the datasets cache (parquet
    files often share one image's bytes between rows; an Arrow copy of lmms-lab/VQAv2's
    validation split would be ~34 GB for its 7 GB of parquet). The image column is streamed
    `STREAM_ROWS` rows at a time through the row group that holds the row asked for, moving
    forward; a row before the current position restarts that row group. So increasing indices
    (select_rows' order) read each row group once, and memory holds a few images, not a row
    group (datasets writes row groups of up to ~100 MB)."""

    STREAM_ROWS = 8

    def __init__(self, files, image_col: str):
        import pyarrow.parquet as pq

        self._files = list(files)
        self._image_col = image_col
        self.schema = pq.read_schema(self._files[0])
        self._groups = []                   # (first row, file index, row group)
        start = 0
        for f_i, f in enumerate(self._files):
            meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if rows:
                    self._groups.append((start, f_i, g))
                    start += rows
        self.num_rows = start
        self._starts = [g[0] for g in self._groups]
        self._stream = None                 # [group key, iterator, first row of batch, batch]

    def table(self, columns):
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pa.concat_tables([pq.ParquetFile(f).read(columns=list(columns))
                                 for f in self._files])

    def image_value(self, i: int):
        import bisect

        import pyarrow.parquet as pq

        start, f_i, g = self._groups[bisect.bisect_right(self._starts, i) - 1]
        local, st = i - start, self._stream
        if st is None or st[0] != (f_i, g) or local < st[2]:
            self._stream = st = None        # let the old stream go before opening another
            # pre_buffer=False with a read buffer: read pages as they are decoded, not the
            # whole column chunk up front (pyarrow pre-buffers by default).
            reader = pq.ParquetFile(self._files[f_i], buffer_size=1 << 20, pre_buffer=False)
            batches = reader.iter_batches(
                batch_size=self.STREAM_ROWS, row_groups=[g], columns=[self._image_col],
                use_threads=False)
            st = self._stream = [(f_i, g), batches, 0, None]
        while st[3] is None or local >= st[2] + len(st[3]):
            if st[3] is not None:
                st[2] += len(st[3])
            st[3] = None
            st[3] = next(st[1]).column(0)
        return st[3][local - st[2]].as_py()


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


# ------------------------------------------------------------------------ opening data

def _where(dataset: str, split: str) -> str:
    return f"split {split!r} of {dataset}"


def _check_columns(names, task: Task, dataset: str, split: str) -> None:
    for role, col in task.columns.named().items():
        if col not in names:
            raise InputError(f"{_where(dataset, split)} has no column {col!r} (columns.{role} of "
                             f"task {task.name}); its columns: {', '.join(names)}")


def _parquet_splits(base: str) -> dict[str, list[str]]:
    """{split: parquet files} under a folder (or an hf:// base), split names inferred from file
    names by `datasets`' own rules; {} where there are no data files."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        patterns = get_data_patterns(base)
        found = DataFilesDict.from_patterns(patterns, base_path=base)
    except FileNotFoundError:   # datasets' EmptyDatasetError is one
        return {}
    out = {}
    for split, files in found.items():
        parquet = sorted(str(f) for f in files if str(f).endswith(".parquet"))
        if parquet:
            out[str(split)] = parquet
    return out


def _split_list(splits) -> str:
    return ", ".join(sorted(map(str, splits))) or "none"


def _load_saved(folder: str, split: str, dataset: str):
    """datasets.load_from_disk of one Dataset folder (memory-mapped, nothing copied)."""
    import datasets

    try:
        with open(os.path.join(folder, "state.json"), encoding="utf-8") as f:
            empty = not json.load(f).get("_data_files")
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {folder} (datasets save_to_disk): "
                         f"{' '.join(str(e).split())}") from None
    if empty:   # save_to_disk writes no shard for 0 rows, and load_from_disk then fails
        raise InputError(f"{_where(dataset, split)} is empty (0 rows)")
    try:
        return datasets.load_from_disk(folder)
    except Exception as e:
        raise InputError(f"cannot read {folder} (datasets save_to_disk): "
                         f"{' '.join(str(e).split())}") from None


def _load_folder(folder: str, split: str, task: Task, dataset: str):
    """A local folder -> a source for the split (save_to_disk: memory-mapped; parquet: in place)."""
    image_col = task.columns.image
    dict_file = os.path.join(folder, "dataset_dict.json")
    if os.path.isfile(dict_file):
        # One split of a DatasetDict: read its list of splits, then load only that split's folder.
        try:
            with open(dict_file, encoding="utf-8") as f:
                splits = [str(x) for x in json.load(f)["splits"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"cannot read {dict_file}: {' '.join(str(e).split())}") from None
        _has_split(splits, split, dataset)
        ds = _load_saved(os.path.join(folder, split), split, dataset)
    elif os.path.isfile(os.path.join(folder, "state.json")):
        ds = _load_saved(folder, split, dataset)
        if ds.split is not None and str(ds.split) != split:
            raise InputError(f"{dataset} holds split {str(ds.split)!r}, not {split!r}; "
                             f"pass --split {ds.split}")
    else:
        splits = _parquet_splits(folder)
        _has_split(splits, split, dataset, f"{folder} is not a dataset folder: no dataset_dict.json "
                   "or state.json (datasets' save_to_disk) and no parquet files",
                   " (its parquet files name them; files naming no split are 'train')")
        try:
            return _ParquetSource(splits[split], image_col)
        except Exception as e:
            raise InputError(f"cannot read the parquet files of {_where(dataset, split)}: "
                             f"{' '.join(str(e).split())}") from None
    return _DatasetSource(ds, image_col)


def _has_split(splits, split: str, where: str, none: str = "", hint: str = "") -> None:
    """Nothing, when `split` is among `splits` (names, or a dict by name); else one line saying
    what there is: `none` when there is no split at all."""
    if not splits and none:
        raise InputError(none)
    if split not in splits:
        raise InputError(f"{where} has no split {split!r}; its splits: {_split_list(splits)}{hint} (--split)")


def _env_offline() -> bool:
    return any(os.environ.get(v, "0").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_online() -> bool:
    if _env_offline():
        return False
    from confidence_trap.models import _hub_reachable

    return _hub_reachable()


def _snapshot(name: str, allow_patterns=None, local_files_only: bool = False) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(name, repo_type="dataset", allow_patterns=allow_patterns,
                             local_files_only=local_files_only)


def _cached_snapshot(name: str) -> str | None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return _snapshot(name, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def _remote_split_files(name: str) -> dict[str, list[str]]:
    """{split: parquet paths relative to the repo} of a hub dataset (lists its files; no data)."""
    base = f"hf://datasets/{name}"
    out = {}
    for split, files in _parquet_splits(base).items():
        rel = []
        for f in files:
            tail = f.split(f"datasets/{name}", 1)[1]          # "@sha/data/x" or "/data/x"
            rel.append(tail.split("/", 1)[1])
        out[split] = rel
    return out


def _fetch_hint(name: str, split: str) -> str:
    return (f"on a networked machine run: hf download --repo-type dataset {name} "
            f"--include 'data/{split}-*' --local-dir DIR (or save_to_disk DIR from "
            f"datasets.load_dataset), copy DIR here and pass --dataset DIR")


def _hub_folder(name: str, split: str) -> str:
    """The local snapshot folder holding the split's files of hub dataset `name`."""
    if not _hub_online():
        folder = _cached_snapshot(name)
        if folder is None:
            raise InputError(f"dataset {name!r} is no local folder, and as a hub id it is not "
                             f"in the local Hugging Face cache and cannot be downloaded here "
                             f"(offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE set or huggingface.co "
                             f"unreachable); {_fetch_hint(name, split)}")
        cached = _parquet_splits(folder)
        if split not in cached:
            raise InputError(f"split {split!r} of {name} is not in the local Hugging Face cache "
                             f"(cached: {_split_list(cached)}) and cannot be downloaded here "
                             f"(offline); {_fetch_hint(name, split)}")
        return folder
    try:
        remote = _remote_split_files(name)
    except Exception as e:
        raise InputError(f"cannot list hub dataset {name!r}: {' '.join(str(e).split())[:300]}"
                         ) from None
    _has_split(remote, split, f"hub dataset {name}", f"hub dataset {name!r} has no parquet data "
               "files; download it, save_to_disk a folder and pass --dataset FOLDER")
    try:
        return _snapshot(name, allow_patterns=remote[split])
    except Exception as e:
        raise InputError(f"cannot download split {split!r} of {name}: "
                         f"{' '.join(str(e).split())[:300]}") from None


def _label(path: str) -> str:
    from confidence_trap.tasks.imagesets import image_key

    return image_key(path.rstrip("/\\") or path)


def _check_types(schema, task: Task, dataset: str, split: str) -> None:
    """Column types, from the Arrow schema: list answers, an image column that holds images."""
    import pyarrow as pa

    c = task.columns
    if c.answers:
        t = schema.field(c.answers).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise InputError(f"column {c.answers!r} (columns.answers) of {_where(dataset, split)} "
                             f"must hold a list per row, it holds {t}; name a single-answer "
                             f"column as columns.answer")
    t = schema.field(c.image).type
    ok = (pa.types.is_struct(t) and any(t.get_field_index(k) >= 0 for k in ("bytes", "path"))) \
        or pa.types.is_binary(t) or pa.types.is_large_binary(t) \
        or pa.types.is_string(t) or pa.types.is_large_string(t)
    if not ok:
        raise InputError(f"column {c.image!r} (columns.image) of {_where(dataset, split)} holds "
                         f"{t}, not images (datasets' Image struct, image bytes or paths)")


def _check_rows(data: TaskData) -> None:
    """The checks that read whole text columns: unique ids, yes/no POPE labels."""
    c, where = data.task.columns, _where(data.dataset, data.split)
    if len(set(data.ids)) != len(data.ids):
        seen = {}
        for i, v in enumerate(data.ids):
            if v in seen:
                raise InputError(f"column {c.id!r} (columns.id) is not unique in {where}: rows "
                                 f"{seen[v]} and {i} share {v!r}; name a unique column as "
                                 f"columns.id")
            seen[v] = i
    if data.task.metric == "pope":
        for i, v in enumerate(data._text.column(c.answer).to_pylist()):
            if v is None or str(v).strip().lower() not in ("yes", "no"):
                raise InputError(f"column {c.answer!r} must hold yes/no for the pope metric; row "
                                 f"{i} of {where} has {v!r}")


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
    revision = None
    if os.path.isdir(name):
        dataset, folder = _label(name), name
    elif os.path.exists(name):
        raise InputError(f"--dataset {name} is a file; pass the folder that holds the dataset")
    elif _HUB_ID.match(name):
        dataset, folder = name, _hub_folder(name, split)
        base = os.path.basename(os.path.normpath(folder))
        revision = base if re.fullmatch(r"[0-9a-f]{40}", base) else None
    else:
        raise InputError(f"no dataset folder {name!r}, and it is not a hub id (org/name)")
    source = _load_folder(folder, split, task, dataset)
    _check_columns(source.schema.names, task, dataset, split)
    if source.num_rows == 0:
        raise InputError(f"{_where(dataset, split)} is empty (0 rows)")
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
        raise InputError(f"--limit {limit} is larger than {_where(data.dataset, data.split)} "
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
