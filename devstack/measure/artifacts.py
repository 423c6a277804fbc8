"""Sizes of what `sam build` produced, unzipped: the function's own code and each layer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devstack.template import ROOT

BUILD = ROOT / ".aws-sam" / "build"
# Targets, unzipped. They were 200 KiB and 15 MiB for sources alone; the bytecode that saves
# every cold start about 150 ms of compiling (make bench) doubles the function's code, and
# cryptography's is 3 MiB of its layer. Client authentication and token binding as types (a
# module each, issue 28) took the function just past the 512 KiB it was held to. What a byte
# costs is measured by make bench's cold start; this bound catches a package that ships what it
# should not.
# Lambda's own limit is 250 MB for a function and its layers.
FUNCTION_CODE_LIMIT = 576 * 1024
LAYER_LIMIT = 20 * 1024 * 1024


def size(folder: Path) -> int:
    """Bytes under `folder`, bytecode included: what is zipped and unpacked in Lambda."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def artifact_sizes() -> dict[str, int]:
    """What `make build` made, as it ships."""
    return {folder.name: size(folder) for folder in sorted(BUILD.iterdir()) if folder.is_dir()}


def main() -> None:
    if not BUILD.is_dir():
        sys.exit("no .aws-sam/build: run `make build` first")
    sizes = artifact_sizes()
    over = []
    for name, bytes_ in sizes.items():
        limit = FUNCTION_CODE_LIMIT if name.endswith("Function") else LAYER_LIMIT
        line = f"  {name:<28} {bytes_ / 1024:>9.1f} KiB unzipped  (target <= {limit / 1024:.0f} KiB)"
        if bytes_ > limit:
            over.append(name)
            line += "  OVER"
        print(line)
    print(json.dumps(sizes))
    if over:
        sys.exit(f"over their size targets: {', '.join(over)}")


if __name__ == "__main__":
    main()
