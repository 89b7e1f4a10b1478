"""What to ask of which image: bundled sets, folders, files and manifest.json files.

A manifest is a JSON list of {"file", "question", "answers", "match", "category"} entries, with
files relative to the manifest; `match` is "exact" (the scenes) or "contains" (the photos: right
when a reference appears as a whole word in the answer). "answers" may be left out (an
open-ended question has no reference: its records carry no `correct`), and so may "category"
(the photos' question kind, "one-word" or "open-ended": every record of the item carries it, and
summary.json's by_category splits the run by it, as for a dataset's categories).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from confidence_trap.errors import InputError
from confidence_trap.models.images import IMAGE_EXTENSIONS, expand_paths

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SETS = {"photos": os.path.join(REPO, "data", "photos", "manifest.json"),
                "scenes": os.path.join(REPO, "data", "scenes", "manifest.json")}
DEFAULT_QUESTION = "Describe the image."


@dataclass(frozen=True)
class Item:
    key: str                        # how records name the image
    path: str
    question: str
    answers: tuple | None = None
    match: str | None = None        # the metric `answers` are scored by (confidence_trap.tasks.scoring)
    extra: tuple = ()               # (name, value) pairs every record of the item carries


def image_key(path: str) -> str:
    """Paths inside the repository are written relative to it, so records travel."""
    full = os.path.abspath(path)
    if full.startswith(REPO + os.sep):
        return os.path.relpath(full, REPO).replace(os.sep, "/")
    return os.path.normpath(path)


def read_manifest(path: str) -> list[Item]:
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read manifest {path}: {e}") from None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"manifest {path} must be a non-empty JSON list")
    folder = os.path.dirname(path)
    items = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "file" not in e or "question" not in e:
            raise InputError(f"manifest {path}: entry {i} needs 'file' and 'question'")
        p = os.path.join(folder, e["file"])
        answers = tuple(e["answers"]) if e.get("answers") else None
        extra = (("category", str(e["category"])),) if e.get("category") is not None else ()
        items.append(Item(image_key(p), p, e["question"], answers, e.get("match", "contains"), extra))
    return items


def resolve_items(images: list[str], prompt: str | None, default_set: str) -> list[Item]:
    """--images and --prompt -> the list of (image, question) items, in a stable order."""
    sources = images or [DEFAULT_SETS[default_set]]
    items: list[Item] = []
    for src in sources:
        manifest = os.path.join(src, "manifest.json") if os.path.isdir(src) else src
        if manifest.endswith(".json") and os.path.isfile(manifest):
            items.extend(read_manifest(manifest))
        elif src.lower().endswith(".json"):
            raise InputError(f"manifest not found: {src}")
        else:
            for p in expand_paths([src]):
                items.append(Item(image_key(p), p, DEFAULT_QUESTION))
    if prompt is not None:
        items = [Item(it.key, it.path, prompt) for it in items]
    seen, unique = set(), []
    for it in items:
        if (it.key, it.question) not in seen:
            seen.add((it.key, it.question))
            unique.append(it)
    return unique


__all__ = ["Item", "resolve_items", "IMAGE_EXTENSIONS", "DEFAULT_QUESTION"]
