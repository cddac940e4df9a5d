"""A remote run's results on this computer: the archive unpacked and checked against its
manifest, the tuned model registered with its lineage."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from core.colab.errors import DamagedResults
from core.colab.manifest import MANIFEST_NAME, file_sha256
from core.llm.engines import default_model_path


def extract_results(
    archive: Path,
    into: Path,
    *,
    files: dict[str, Any] | None = None,
    model: str | None = None,
) -> Path:
    """The tuned model folder from a results tar (downloaded by the app, or by hand from
    Colab), every file checked against its sha256 (the run's ``done`` event, else the
    manifest inside the tar). Returns ``into/<model>``; nothing is left on a failure."""
    into.mkdir(parents=True, exist_ok=True)
    tmp = into / f".{archive.stem}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise DamagedResults(f"{archive.name} cannot be read ({exc}).") from exc
        manifest = tmp / MANIFEST_NAME
        if files is None or model is None:
            if not manifest.is_file():
                raise DamagedResults(f"{archive.name} is not a CoT-RAG Studio results archive.")
            data = json.loads(manifest.read_text(encoding="utf-8"))
            files = files if files is not None else dict(data.get("files") or {})
            model = model or str(data.get("model") or "")
        extracted = tmp / model
        if not model or "/" in model or not extracted.is_dir():
            raise DamagedResults(f"{archive.name} does not hold the model {model!r}.")
        for rel, facts in files.items():
            path = extracted / rel
            if not path.is_file() or file_sha256(path) != facts.get("sha256"):
                raise DamagedResults(f"The file {rel} of {archive.name} is damaged.")
        target = into / model
        shutil.rmtree(target, ignore_errors=True)
        os.replace(extracted, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def register_remote_model(
    registry: Any, model_dir: Path, *, name: str | None = None, gpu: str = ""
) -> Any:
    """A downloaded tuned model into the registry (``ModelRegistry``), with its lineage:
    the remote model.json, plus where it trained; the remote paths of the base are
    replaced by this computer's when the base is the bundled model."""
    info = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    model_name = name or str(info.pop("name", model_dir.name))
    info.pop("name", None)
    part = registry.reserve(model_name)
    for child in model_dir.iterdir():
        if child.name != "model.json":
            shutil.move(str(child), str(part / child.name))
    trained = dict(info.get("trained_on") or {})
    trained.update({"where": "colab", "gpu": gpu})
    info["trained_on"] = trained
    base = dict(info.get("base") or {})
    info["remote_base"] = dict(base)
    if base.get("reference") == "default":
        with contextlib.suppress(Exception):
            local = str(default_model_path())
            base["gguf"] = local
            info["base_gguf"] = local
    info["base"] = base
    entry = registry.commit(part, model_name, info)
    shutil.rmtree(model_dir, ignore_errors=True)
    return entry
