"""Pack an image-folder data set into one blob + index (and unpack it), to move it to a machine as one file.

    python scripts/pack_image_folder.py pack ../shared/data/cifar10-jpg .gpu/cifar10
    python scripts/pack_image_folder.py unpack .gpu/cifar10 /tmp/cifar10-jpg
The bytes of every image are kept as they are (no re-encoding), so the unpacked tree is identical.
"""
import json
import sys
from pathlib import Path


def pack(root: Path, prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    index, offset = [], 0
    with open(f"{prefix}.blob", "wb") as blob:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            data = path.read_bytes()
            blob.write(data)
            index.append([str(path.relative_to(root)), offset, len(data)])
            offset += len(data)
    Path(f"{prefix}.index.json").write_text(json.dumps(index))
    print(f"packed {len(index)} files, {offset / 1e6:.1f} MB")


def unpack(prefix: Path, root: Path) -> None:
    index = json.loads(Path(f"{prefix}.index.json").read_text())
    with open(f"{prefix}.blob", "rb") as blob:
        for rel, offset, length in index:
            blob.seek(offset)
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.read(length))
    print(f"unpacked {len(index)} files into {root}")


if __name__ == "__main__":
    action, a, b = sys.argv[1:4]
    (pack if action == "pack" else unpack)(Path(a), Path(b))
