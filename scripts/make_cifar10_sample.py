"""Write the CIFAR-10 test sample the app ships (assets/cifar10-sample/): 5 test images per class, one PNG sheet.

    python scripts/make_cifar10_sample.py ../shared/data/cifar10-jpg

The images are the project's test split (`DIR/test/<class>/*.jpg`, classes and files in sorted order, as
`boostnet_core.data.load_test_split("folder", DIR)` reads them and as the shipped CIFAR-10 models' evaluation caches
index them), decoded to 32x32 RGB and stored losslessly, so the app's cached predictions for these test indices
describe exactly these pixels. Index k of class c (1,000 test images per class) is test index 1000 c + 200 k.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from boostnet_core.data import load_test_split

OUT = Path(__file__).resolve().parents[1] / "assets" / "cifar10-sample"
PER_CLASS, STRIDE = 5, 200


def main(root: str) -> None:
    test = load_test_split("folder", root, 32, 3)
    labels = test.labels.numpy()
    classes = sorted(p.name for p in (Path(root) / "test").iterdir() if p.is_dir())
    files = {c: sorted(p.name for p in (Path(root) / "test" / c).iterdir()) for c in classes}
    indices = [int(np.flatnonzero(labels == c)[k * STRIDE]) for c in range(len(classes)) for k in range(PER_CLASS)]
    pixels = test.images.numpy()[indices]                              # [50, 3, 32, 32] uint8
    sheet = pixels.reshape(len(classes), PER_CLASS, 3, 32, 32).transpose(0, 3, 1, 4, 2).reshape(len(classes) * 32, PER_CLASS * 32, 3)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(OUT / "images.png", optimize=True)
    index = {"source": "CIFAR-10 test split, as DIR/test/<class>/<file>.jpg in sorted order (10,000 images)",
             "sheet": "images.png", "tile": 32, "columns": PER_CLASS,
             "order": "row r, column k = images[r * columns + k]",
             "classes": classes, "test_size": int(len(labels)),
             "images": [{"test_index": i, "class": classes[int(labels[i])],
                         "file": f"test/{classes[int(labels[i])]}/{files[classes[int(labels[i])]][i - int(np.flatnonzero(labels == labels[i])[0])]}"}
                        for i in indices]}
    head = json.dumps({k: v for k, v in index.items() if k != "images"}, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(entry) for entry in index["images"])
    (OUT / "index.json").write_text(f'{head},\n "images": [\n  {rows}\n ]\n}}\n')


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-jpg")
