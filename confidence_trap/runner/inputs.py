"""A run's model inputs: the items' pixels made once, or a dataset's decoded batch by batch.

    images = Pixels(pil_images, size=336, mean=CLIP_MEAN, device="cuda")
    images.pixels([0, 3])     # float [2,3,336,336] in [0,1], a copy (attacks may write into it)

confidence_trap/runner/pipeline.py picks one for a run (LazyPixels for a --task run).
"""
from __future__ import annotations

from dataclasses import dataclass


class Pixels:
    """The items' model inputs, made once: pixels(indices) -> float [B,3,S,S] in [0,1]."""

    def __init__(self, images, size: int, mean, device):
        import torch

        from confidence_trap.models.images import to_model_input

        self.tensor = torch.stack([to_model_input(im, size, mean) for im in images]).to(device)

    @classmethod
    def of(cls, tensor):
        """Pixels already made: float [N,3,S,S] in [0,1]."""
        self = cls.__new__(cls)
        self.tensor = tensor
        return self

    def pixels(self, indices):
        return self.tensor[list(indices)]  # a copy: attacks may write into it


@dataclass
class DatasetImages:
    """A dataset run's images: rows[i] is item i's row, decoded only when a batch needs it."""
    data: object           # confidence_trap.tasks.datasets.TaskData
    rows: list[int]


class LazyPixels:
    """pixels(indices) for a dataset run: each batch's images decoded when it runs, never all at
    once (9,000 COCO images do not fit in memory as tensors); the last CACHE are kept, so the
    clean answers a gradient attack needs are not decoded twice in a row."""
    CACHE = 64

    def __init__(self, images: DatasetImages, size: int, mean, device):
        self.images, self.size, self.mean, self.device = images, size, mean, device
        self.cache: dict = {}

    def pixels(self, indices):
        import torch

        from confidence_trap.models.images import to_model_input

        out = []
        for i in indices:
            if i not in self.cache:
                if len(self.cache) >= self.CACHE:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[i] = to_model_input(self.images.data.image(self.images.rows[i]), self.size, self.mean)
            out.append(self.cache[i])
        return torch.stack(out).to(self.device)
