"""Check a frozen bundle the way a user meets it: ``bash packaging/build.sh --smoke``.

Runs the bundle's two programs from a clean data folder, a clean home and an empty
working directory, with no Python of the source tree on any path, and prints what it
measured: sizes, ``cotrag index`` + ``search`` + ``ask`` with the bundled model, a 2-step
training run through the frozen worker that exports a GGUF which then answers, a Colab
notebook, the window on Xvfb (a picture of the screen), and the cold start to a painted
window against the source install's, interleaved in the same run.
With ``--install`` (root or sudo) it also installs the .deb, starts the app from its
menu entry's Exec line under Xvfb for a new user (the welcome, as a screenshot), makes
the sample knowledge base and asks it a suggested question with the installed CLI, then
removes the package and checks that the user's data folder is left alone.

    .venv/bin/python packaging/smoke.py dist/cotrag-studio [--deb FILE [--install]] [--runs 5]

Exits 1 on the first check that fails, naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = {
    "kettle.md": (
        "# The kettle\n\n## Boiling\n\nThe kettle boils one litre of water in 90 seconds. "
        "It switches off by itself when the water boils; the default keep-warm time is "
        "`30` minutes, and the `--keep-warm` option sets another. Never fill it above the "
        "maximum line of 1.7 litres.\n\n## Cleaning\n\nDescale the kettle once a month with "
        "white vinegar: fill it half way, let it stand for an hour, then boil fresh water "
        "twice and pour it away. The filter in the spout lifts out and can be rinsed.\n"
    ),
    "backup.md": (
        "# Backups\n\n## Schedule\n\nThe backup service runs every night at 02:00 and keeps "
        "14 copies before it deletes the oldest archive. Set `retention` to change the "
        "number of copies; the default retention is `14`. Archives are written to the "
        "folder named by `backup_dir`, which defaults to `/var/backups/app` on Linux.\n\n"
        "## Restore\n\nTo restore an archive, run `appctl restore --from ARCHIVE` while the "
        "service is stopped. The `--verify` option checks every file's checksum after the "
        "restore and reports the files that differ.\n"
    ),
    "proxy.md": (
        "# Proxy\n\nA reverse proxy is a server that forwards client requests to one of "
        "several backend servers and returns their answers. The proxy listens on port 8443 "
        "by default and reads its routes from `routes.yaml` at start. Send the process "
        "`SIGHUP` to reload the routes without dropping the open connections.\n\nHealth "
        "checks run every 10 seconds; a backend that fails 3 checks in a row is taken out "
        "of rotation until it passes again.\n"
    ),
}


class SmokeFailed(RuntimeError):
    pass


class Bundle:
    def __init__(self, folder: Path, work: Path) -> None:
        self.folder = folder
        self.work = work
        self.data = work / "data"
        self.home = work / "home"
        self.cwd = work / "cwd"
        for path in (self.home, self.cwd):
            path.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: no PYTHONPATH, no virtualenv, nothing of the checkout."""
        env = {
            "HOME": str(self.home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
        }
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 600) -> str:
        command = [str(self.folder / "cotrag"), "--data-dir", str(self.data), *args]
        started = time.perf_counter()
        out = subprocess.run(
            command,
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        took = time.perf_counter() - started
        if out.returncode != 0:
            raise SmokeFailed(
                f"`cotrag {' '.join(args)}` exited {out.returncode} after {took:.1f} s:\n"
                f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        print(f"  ok  cotrag {' '.join(args)[:90]}  ({took:.1f} s)")
        return out.stdout


def file_sizes(folder: Path) -> list[tuple[int, str]]:
    """Every file under ``folder`` (links not followed) with its size, largest first."""
    files = [
        (p.stat().st_size, str(p.relative_to(folder)))
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    return sorted(files, reverse=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def check_sizes(bundle: Path, deb: Path | None) -> None:
    files = file_sizes(bundle)
    print(f"bundle: {bundle}  {mib(sum(size for size, _ in files))}")
    print("  the 15 largest files:")
    for size, name in files[:15]:
        print(f"    {mib(size):>10}  {name}")
    if deb is not None:
        print(f".deb: {deb.name}  {mib(deb.stat().st_size)}")


def check_cli(b: Bundle) -> None:
    docs = b.work / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    print("the CLI, from a clean data folder:")
    b.cli("index", "--kb", "smoke", str(docs))
    hits = json.loads(
        b.cli("search", "--kb", "smoke", "--json", "how often should the kettle be descaled")
    )
    top = hits[0] if isinstance(hits, list) else hits["hits"][0]
    if "kettle.md" not in json.dumps(top):
        raise SmokeFailed(f"search found the wrong passage first: {top}")
    answer = b.cli(
        "ask", "--kb", "smoke", "--color", "never", "Which port does the proxy listen on?"
    )
    if "── answer ──" not in answer:
        raise SmokeFailed(f"ask printed no answer:\n{answer[-2000:]}")
    print("    answer: " + answer.split("── answer ──", 1)[1].strip().splitlines()[0][:120])


def check_training(b: Bundle) -> None:
    print("training through the frozen worker:")
    b.cli("dataset", "generate", "--kb", "smoke", "--name", "smoke", "--count", "8",
          "--teacher", "none", "--validation", "0")  # fmt: skip
    b.cli("train", "--dataset", "smoke", "--name", "smoke-tuned", "--set", "max_steps=2",
          "--set", "batch_size=1", "--set", "guard=false", "--set", "exports=q8_0",
          timeout=1200)  # fmt: skip
    listing = b.cli("models", "list")
    if "smoke-tuned" not in listing:
        raise SmokeFailed(f"the tuned model is not registered:\n{listing}")
    answer = b.cli("ask", "--kb", "smoke", "--model", "smoke-tuned", "--color", "never",
                   "How often should the kettle be descaled?")  # fmt: skip
    if "── answer ──" not in answer:
        raise SmokeFailed(f"the tuned model printed no answer:\n{answer[-2000:]}")
    out = b.work / "colab"
    b.cli("train", "export-colab", "--dataset", "smoke", "--out", str(out))
    notebook = out / "train.ipynb"
    if not notebook.is_file():
        raise SmokeFailed(f"export-colab wrote no notebook into {out}")
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    print(f"    notebook: {len(cells)} cells, {mib(notebook.stat().st_size)}")


def xvfb(command: list[str]) -> list[str]:
    if shutil.which("xvfb-run") is None:
        raise SmokeFailed("xvfb-run is missing (apt-get install xvfb xauth)")
    return ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *command]


def check_window(b: Bundle, shot: Path) -> None:
    """The window on a real X server (Xvfb): started on the data folder the CLI filled, it
    paints the Knowledge base tab with the smoke documents; the screen is saved."""
    print("the window under Xvfb:")
    command = [str(b.folder / "cotrag-studio"), "--data-dir", str(b.data), "--grab", str(shot)]
    out = subprocess.run(
        xvfb(command), cwd=b.cwd, env=b.env(QT_QPA_PLATFORM="xcb"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if out.returncode != 0 or not shot.is_file():
        raise SmokeFailed(
            f"the window did not paint (exit {out.returncode}):\n{out.stderr[-3000:]}"
        )
    print(f"  ok  {out.stdout.strip()}")


def paint_time(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.time()
    out = subprocess.run(
        xvfb(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith("first-paint-at "):
            return float(line.split()[1]) - started
    raise SmokeFailed(f"{command[0]} did not report a paint:\n{out.stdout}\n{out.stderr[-2000:]}")


def check_cold_start(b: Bundle, source_app: Path, runs: int) -> None:
    """Frozen and source start, interleaved, each on a throwaway data folder: the start
    time of an app that opens a window, not a benchmark of a warm cache alone."""
    print(f"cold start to a painted window (under Xvfb, {runs} runs each, interleaved):")
    frozen: list[float] = []
    source: list[float] = []
    for i in range(runs + 1):
        for name, program, times in (("frozen", b.folder / "cotrag-studio", frozen),
                                     ("source", source_app, source)):  # fmt: skip
            data = Path(tempfile.mkdtemp(prefix=f"start-{name}-", dir=b.work))
            env = b.env(QT_QPA_PLATFORM="xcb")
            if name == "source":
                env["PATH"] = f"{source_app.parent}:{env['PATH']}"
            took = paint_time(
                [str(program), "--data-dir", str(data), "--quit-after-paint"], env, b.cwd
            )
            if i:  # the first round warms the page cache for both
                times.append(took)
    f, s = statistics.median(frozen), statistics.median(source)
    print(f"  frozen: median {f:.2f} s (min {min(frozen):.2f}, max {max(frozen):.2f})")
    print(f"  source: median {s:.2f} s (min {min(source):.2f}, max {max(source):.2f})")
    print(f"  frozen / source: {f / s:.2f}×  (goal ≤ 1.5×)")


def root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


def run_checked(
    command: list[str], what: str, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise SmokeFailed(
            f"{what} failed (exit {out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        )
    return out


def desktop_exec(entry: Path) -> list[str]:
    for line in entry.read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            return shlex.split(line.removeprefix("Exec="))
    raise SmokeFailed(f"{entry} has no Exec line")


WINDOW_CLASS = """
"$@" & app=$!
for _ in $(seq 60); do
  sleep 1
  for id in $(xwininfo -root -children | grep -o '^ *0x[0-9a-f]*'); do
    xprop -id "$id" WM_CLASS 2>/dev/null | grep -q 'CoT-RAG' && { xprop -id "$id" WM_CLASS; kill $app; exit 0; }
  done
done
kill $app; exit 1
"""


def check_window_class(command: list[str], entry: Path, user: Bundle) -> None:
    """The window says it is the launcher's app: its WM_CLASS is the StartupWMClass, so
    the taskbar shows the launcher's icon and name."""
    if shutil.which("xprop") is None or shutil.which("xwininfo") is None:
        print("  --  WM_CLASS not checked (xprop and xwininfo are in x11-utils)")
        return
    wanted = next(
        line.split("=", 1)[1]
        for line in entry.read_text(encoding="utf-8").splitlines()
        if line.startswith("StartupWMClass=")
    )
    out = run_checked(xvfb(["bash", "-c", WINDOW_CLASS, "check", *command]), "reading the window's WM_CLASS",
                      env=user.env(QT_QPA_PLATFORM="xcb"), cwd=user.cwd, timeout=120)  # fmt: skip
    if f'"{wanted}"' not in out.stdout:
        raise SmokeFailed(
            f"the window's {out.stdout.strip()} does not match StartupWMClass={wanted}"
        )
    print(f"  ok  {out.stdout.strip()} matches the launcher's StartupWMClass")


def check_package(deb: Path, work: Path) -> None:
    """Install, launch from the menu entry, use, remove: as a new user would."""
    print("the package:")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_checked(
        root(["apt-get", "install", "-y", "-qq", str(deb.resolve())]),
        "installing the .deb",
        env=env,
    )
    print(f"  ok  installed {deb.name}")
    entry = Path("/usr/share/applications/cotrag-studio.desktop")
    if not entry.is_file():
        raise SmokeFailed(f"the package installed no menu entry at {entry}")
    icon = Path("/usr/share/icons/hicolor/256x256/apps/cotrag-studio.png")
    if not icon.is_file():
        raise SmokeFailed(f"the package installed no icon at {icon}")
    user = Bundle(Path("/opt/cotrag-studio"), work / "new-user")
    shot = work / "welcome.png"
    command = [*desktop_exec(entry), "--grab", str(shot)]
    run_checked(xvfb(command), f"the menu entry's Exec line ({' '.join(command[:1])})",
                env=user.env(QT_QPA_PLATFORM="xcb"), cwd=user.cwd, timeout=300)  # fmt: skip
    print(f"  ok  the menu entry opens the app: {shot}")
    check_window_class(command[:-2], entry, user)
    cli = ["/usr/bin/cotrag"]
    made = run_checked(
        [*cli, "kb", "sample"], "`cotrag kb sample`", env=user.env(), cwd=user.cwd, timeout=900
    )
    question = next(
        (
            line.split("cotrag ask", 1)[1]
            for line in made.stdout.splitlines()
            if "cotrag ask" in line
        ),
        "",
    )
    if not question:
        raise SmokeFailed(f"`cotrag kb sample` suggested no question:\n{made.stdout}")
    answer = run_checked(
        [*cli, "ask", *shlex.split(question), "--color", "never"], "asking the sample a suggested question",
        env=user.env(), cwd=user.cwd, timeout=900,
    )  # fmt: skip
    if "── answer ──" not in answer.stdout:
        raise SmokeFailed(f"no answer from the sample knowledge base:\n{answer.stdout[-2000:]}")
    print(f"  ok  asked the sample knowledge base:{question[:80]}")
    print("    answer: " + answer.stdout.split("── answer ──", 1)[1].strip().splitlines()[0][:120])
    data = user.home / ".local" / "share" / "cotrag-studio"
    run_checked(
        root(["apt-get", "remove", "-y", "-qq", "cotrag-studio"]), "removing the package", env=env
    )
    left = [
        path
        for path in (Path("/opt/cotrag-studio"), entry, Path("/usr/bin/cotrag"))
        if path.exists() or path.is_symlink()
    ]
    if left:
        raise SmokeFailed(f"the package left these behind: {left}")
    if not data.is_dir() or not any(data.iterdir()):
        raise SmokeFailed(f"removing the package touched the user's data folder {data}")
    print("  ok  removed; the user's data folder is still there")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "bundle", type=Path, help="the folder PyInstaller made (dist/cotrag-studio)"
    )
    parser.add_argument("--deb", type=Path, help="the .deb made from it, to report its size")
    parser.add_argument(
        "--install", action="store_true", help="install, use and remove the .deb (root or sudo)"
    )
    parser.add_argument("--runs", type=int, default=5, help="cold starts of each kind")
    parser.add_argument("--source-app", type=Path, default=ROOT / ".venv" / "bin" / "cotrag-studio")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    bundle = args.bundle.resolve()
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="cotrag-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    b = Bundle(bundle, work)
    try:
        check_sizes(bundle, args.deb)
        check_cli(b)
        check_training(b)
        check_window(b, work / "window.png")
        check_cold_start(b, args.source_app, args.runs)
        if args.install:
            if args.deb is None:
                raise SmokeFailed("--install needs --deb FILE")
            check_package(args.deb, work)
    except (SmokeFailed, subprocess.TimeoutExpired) as exc:
        print(f"SMOKE FAILED: {exc}", file=sys.stderr)
        print(f"(work folder kept: {work})", file=sys.stderr)
        return 1
    pictures = bundle.parent / "smoke"
    pictures.mkdir(exist_ok=True)
    for png in work.glob("*.png"):
        shutil.copy2(png, pictures / png.name)
    print(f"smoke passed; the screen pictures are in {pictures}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
