"""Time from process start to the first painted main window.

Spawns ``python -m desktop --quit-after-paint`` on a throwaway data dir and settings
file several times; the app prints a wall-clock stamp after its first paint and exits.

Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/startup.py [--runs 9]

A shared or busy machine moves every figure: ``--against DIR`` times another source
tree of the app (say ``git worktree add /tmp/old <commit>``) in the same run, its runs
interleaved with this tree's, and prints both medians and their ratio.
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


def one_run(tree: Path, data_dir: Path, config_dir: Path) -> float:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["PYTHONPATH"] = str(tree)
    # As installed: compiled bytecode is cached (the warm-up run writes it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The app's QSettings (window state, last tab) go to a throwaway folder, not the user's.
    env["XDG_CONFIG_HOME"] = str(config_dir)
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "--data-dir", str(data_dir), "--quit-after-paint"],
        cwd=tree,
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


def summary(name: str, times: list[float]) -> str:
    return (
        f"{name}: process start → first painted window: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another source tree, timed in the same run")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    if args.against is not None:
        trees["against"] = args.against.resolve()
    times: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="cotrag-startup-") as tmp:
        dirs = {
            name: (Path(tmp) / f"data-{n}", Path(tmp) / f"config-{n}")
            for n, name in enumerate(trees)
        }
        for name, tree in trees.items():
            one_run(tree, *dirs[name])  # the first run warms the OS file cache
        for _ in range(args.runs):
            for name, tree in trees.items():  # interleaved: both see the same load
                times[name].append(one_run(tree, *dirs[name]))
    for name, tree in trees.items():
        print(summary(f"{name} ({tree})", times[name]))
    if args.against is not None:
        ratio = statistics.median(times["this tree"]) / statistics.median(times["against"])
        print(f"ratio of medians (this tree / against): {ratio:.2f}")


if __name__ == "__main__":
    main()
