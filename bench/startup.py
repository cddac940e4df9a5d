"""Time from process start to the first painted main window.

Spawns ``python -m desktop --quit-after-paint`` on a throwaway data dir several
times; the app prints a wall-clock stamp after its first paint and exits.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(data_dir: str) -> float:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "--data-dir", data_dir, "--quit-after-paint"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("first-paint-at "):
            return float(line.split()[1]) - started
    raise RuntimeError(f"the app did not report a paint:\n{out.stdout}\n{out.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one_run(tmp)  # the first run warms the OS file cache
        times = [one_run(tmp) for _ in range(args.runs)]
    print(
        f"process start → first painted window: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
