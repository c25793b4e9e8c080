"""Assemble the shipped tinygpt corpus from CPython's standard-library sources (run once).

    python -m bilevel.objectives.tinygpt.build_corpus [--stdlib DIR] [--out DIR]

The corpus is every top-level `Lib/*.py` module of at most MAX_FILE_BYTES, in sorted file-name
order, each preceded by a one-line header naming the file. Every VAL_EVERY-th file (0-based index
VAL_EVERY - 1, 2 * VAL_EVERY - 1, ...) goes to the held-out validation text, the rest to training,
so validation code is never seen in training yet is drawn from the whole alphabet, not one corner.
The output was built from CPython 3.11.7; `data.py` pins the SHA-256 of what this script wrote,
so a rebuild from another Python version is caught at load time rather than silently used.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import sys
import sysconfig
from pathlib import Path

MAX_FILE_BYTES = 40_000  # skips the few huge modules (_pydecimal, turtle...) that would dominate
VAL_EVERY = 10  # 1 file in 10 (~10%) is held out
# Generated or machine-specific modules: their bytes depend on the build, not on CPython's source.
EXCLUDE_PREFIXES = ("_sysconfigdata",)
HEADER = "# ==== Lib/{name} ====\n"
DEFAULT_OUT = Path(__file__).resolve().parent / "data"
# gzip with a fixed mtime and no file name, so the compressed files are byte-identical on rebuild.
GZIP_LEVEL = 9


def select_files(stdlib: Path) -> list[Path]:
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    return [
        p
        for p in files
        if not p.name.startswith(EXCLUDE_PREFIXES) and p.stat().st_size <= MAX_FILE_BYTES
    ]


def assemble(files: list[Path]) -> tuple[bytes, bytes]:
    train, val = bytearray(), bytearray()
    for index, path in enumerate(files):
        text = HEADER.format(name=path.name).encode() + path.read_bytes()
        if not text.endswith(b"\n"):
            text += b"\n"
        (val if index % VAL_EVERY == VAL_EVERY - 1 else train).extend(text)
    return bytes(train), bytes(val)


def write(out: Path, name: str, data: bytes) -> str:
    (out / name).write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    files = select_files(args.stdlib)
    train, val = assemble(files)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.stdlib / "LICENSE.txt", args.out / "LICENSE-PSF.txt")
    print(f"python {sys.version.split()[0]}  files {len(files)}")
    print(f"train.txt.gz  bytes {len(train)}  sha256 {write(args.out, 'train.txt.gz', train)}")
    print(f"val.txt.gz    bytes {len(val)}  sha256 {write(args.out, 'val.txt.gz', val)}")


if __name__ == "__main__":
    main()
