"""Where a split of a dataset lives, and how its rows are read: local folders (datasets'
save_to_disk, or parquet files) and Hugging Face hub ids.

    dataset, folder, revision = locate("lmms-lab/POPE", "test")   # or a local folder
    src = reader(folder, "test", task, dataset)                   # .schema, .num_rows, .table(cols), .image_value(i)

A folder is a `datasets` save_to_disk folder (a Dataset or a DatasetDict) or a folder of parquet
files, the split taken from the file names as `datasets` does (data/test-00000-of-00003.parquet,
validation.parquet, ...; files naming none are "train").

Hub ids: only the requested split's parquet files are fetched (huggingface_hub snapshot into the
usual hub cache), so `--split validation` of lmms-lab/VQAv2 fetches its ~7 GB of validation
parquet, not the ~38 GB of testdev and test as well (sizes from its dataset card), and a later
offline run finds them in the cache. Parquet is read in place with pyarrow, never copied into
an Arrow cache. Offline (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set, or huggingface.co
unreachable by one quick TCP probe, confidence_trap.models.hub_reachable) a hub id is read from
that cache or refused with a line saying how to fetch it elsewhere.
"""
from __future__ import annotations

import json
import os
import re

from confidence_trap import models
from confidence_trap.errors import InputError
from confidence_trap.tasks.imagesets import image_key

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class DatasetReader:
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


class ParquetReader:
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


# ------------------------------------------------------------------------ opening data

def where(dataset: str, split: str) -> str:
    return f"split {split!r} of {dataset}"


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
        raise InputError(f"{where(dataset, split)} is empty (0 rows)")
    try:
        return datasets.load_from_disk(folder)
    except Exception as e:
        raise InputError(f"cannot read {folder} (datasets save_to_disk): "
                         f"{' '.join(str(e).split())}") from None


def reader(folder: str, split: str, task: Task, dataset: str):
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
            return ParquetReader(splits[split], image_col)
        except Exception as e:
            raise InputError(f"cannot read the parquet files of {where(dataset, split)}: "
                             f"{' '.join(str(e).split())}") from None
    return DatasetReader(ds, image_col)


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
    return models.hub_reachable()


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


def hub_folder(name: str, split: str) -> str:
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


def label(path: str) -> str:
    """A local dataset folder's name in records: relative to the repository where inside it."""
    return image_key(path.rstrip("/\\") or path)


def locate(name: str, split: str) -> tuple[str, str, str | None]:
    """(the dataset's name in records, the local folder holding it, its hub revision or None)
    for a local folder or a hub id (its split fetched into the hub cache, or found there offline)."""
    if os.path.isdir(name):
        return label(name), name, None
    if os.path.exists(name):
        raise InputError(f"--dataset {name} is a file; pass the folder that holds the dataset")
    if not _HUB_ID.match(name):
        raise InputError(f"no dataset folder {name!r}, and it is not a hub id (org/name)")
    folder = hub_folder(name, split)
    base = os.path.basename(os.path.normpath(folder))
    return name, folder, base if re.fullmatch(r"[0-9a-f]{40}", base) else None


__all__ = ["DatasetReader", "ParquetReader", "hub_folder", "label", "locate", "reader", "where"]
