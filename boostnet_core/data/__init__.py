"""Data sets, splits, transforms and images (arXiv 2211.16726, sections 3 and 4; docs/method.md).

- registry.py: the data sets by name and `load_dataset` / `load_test_split`;
- builtin.py: `digits` and `mnist5k`, shipped by pip packages, offline; cifar.py: `cifar10` / `cifar100` (the python
  release under --data-root, and `boostnet data download`); folder.py: root/<split>/<class>/<image>;
- sets.py: how a split is held (decoded, or file paths for large inputs); splits.py: the fixed test split and the
  seeded, stratified validation split; cache.py: decoded data and split indices kept between processes;
- images.py: opening one image file or upload safely; transforms.py: normalisation and augmentation.
"""
from ..errors import DataError
from .cifar import CIFAR_RELEASES, download_cifar
from .folder import folder_split
from .images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, decode_to_array, open_image
from .registry import DATASETS, load_dataset, load_test_split
from .sets import IN_MEMORY_MAX_SIZE, DataBundle, FileSet, ImageSet
from .splits import split_validation, stratified_split
from .transforms import FileImages, augment_batch, normalize, random_resized_crop, resize_center_crop

__all__ = ["CIFAR_RELEASES", "DATASETS", "IMAGE_EXTENSIONS", "IN_MEMORY_MAX_SIZE", "MAX_IMAGE_PIXELS", "DataBundle",
           "DataError", "FileImages", "FileSet", "ImageSet", "augment_batch", "decode_to_array", "download_cifar",
           "folder_split", "load_dataset", "load_test_split", "normalize", "open_image", "random_resized_crop",
           "resize_center_crop", "split_validation", "stratified_split"]
