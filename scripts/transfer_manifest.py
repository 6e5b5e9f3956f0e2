"""Write a cross-modal transfer manifest from a class-folder dataset.

    python scripts/transfer_manifest.py sample_data runs/transfer.csv

Every other pair becomes a labeled image (no sound); the rest become unlabeled image+sound pairs
(empty label). No sound carries a label anywhere, so a model trained on this manifest learns to
classify sounds only through the pairs. Paths are written relative to the manifest's folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crossmodal.data.scan import scan_folder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("manifest", type=Path)
    args = parser.parse_args()
    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    base = args.manifest.parent.resolve()

    def rel(path: str) -> str:
        return os.path.relpath(Path(path).resolve(), base)

    rows = ["image,audio,label"]
    pairs = [s for s in scan_folder(args.data).samples if s.image and s.audio]
    for k, sample in enumerate(pairs):
        if k % 2 == 0:
            rows.append(f"{rel(sample.image)},,{sample.label}")
        else:
            rows.append(f"{rel(sample.image)},{rel(sample.audio)},")
    args.manifest.write_text("\n".join(rows) + "\n")
    print(
        f"wrote {args.manifest}: {len(pairs) - len(pairs) // 2} labeled images, "
        f"{len(pairs) // 2} unlabeled pairs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
