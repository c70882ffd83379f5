"""How a data set is held in memory: decoded images (small inputs) or file paths read on demand (large ones)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Inputs up to this size decode once into one uint8 tensor and augment in batches on the training device; larger
# ones stream from disk through a DataLoader.
IN_MEMORY_MAX_SIZE = 64


@dataclass
class ImageSet:
    """Images decoded once: uint8 [N, C, H, W] and int64 labels [N]."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass
class FileSet:
    """Images read from disk on demand (large inputs)."""
    paths: list[str]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "FileSet":
        index = [int(i) for i in index]
        return FileSet([self.paths[i] for i in index], self.labels[torch.as_tensor(index, dtype=torch.long)])


@dataclass
class DataBundle:
    train: ImageSet | FileSet
    val: ImageSet | FileSet | None
    test: ImageSet | FileSet
    classes: list[str]
    info: dict = field(default_factory=dict)  # how the splits were made, recorded in model.json
