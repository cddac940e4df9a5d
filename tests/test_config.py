from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.config import AppConfig, ChunkingConfig, LoopConfig, load_config, save_config
from core.errors import ConfigError
from core.paths import ENV_DATA_DIR, DataLayout, resolve_data_dir


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "nope.toml")
    assert config.chunking.size == 1000 and config.chunking.overlap == 150
    assert config.chunking.min_chars == 30


def test_round_trip_keeps_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config = AppConfig()
    config.loop.max_rounds = 5
    config.retrieval.method = "bm25"
    config.model = "/models/x.gguf"
    save_config(config, path)
    again = load_config(path)
    assert again.loop.max_rounds == 5
    assert again.retrieval.method == "bm25"
    assert again.model == "/models/x.gguf"
    assert "schema_version = 1" in path.read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_invalid_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"chunking\.overlap"):
        ChunkingConfig(size=200, overlap=150)
    with pytest.raises(ConfigError, match=r"loop\.max_rounds"):
        LoopConfig(max_rounds=0)


def test_bad_toml_and_unknown_keys_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("this is = = not toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_text("[loop]\nmax_rounds = 2\nwarp = 9\n")
    with pytest.raises(ConfigError, match="warp"):
        load_config(path)
    path.write_text("schema_version = 99\n")
    with pytest.raises(ConfigError, match="newer"):
        load_config(path)


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "from-env"))
    assert resolve_data_dir() == (tmp_path / "from-env").resolve()
    assert resolve_data_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    layout = DataLayout.at(tmp_path / "explicit")
    assert layout.chroma.parent == layout.root and layout.chroma.is_dir()


def test_cli_import_stays_light() -> None:
    """`cotrag --help` must not pay for torch, chromadb or llama.cpp."""
    code = (
        "import sys, core.cli, core.workspace;"
        "print(','.join(m for m in ('torch','chromadb','llama_cpp','sentence_transformers',"
        "'PySide6') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_two_writers_at_once_never_share_a_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    failures: list[BaseException] = []

    def save_many(rounds: int) -> None:
        config = AppConfig()
        config.loop.max_rounds = rounds
        try:
            for _ in range(50):
                save_config(config, path)
        except BaseException as exc:  # a shared temp file fails one of the renames
            failures.append(exc)

    threads = [threading.Thread(target=save_many, args=(n,)) for n in (2, 3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert load_config(path).loop.max_rounds in (2, 3, 4, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
