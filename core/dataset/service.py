"""Wires a dataset run to a workspace: the knowledge base, its search, the teacher, the
student's tokenizer. The CLI and the Dataset tab both start here."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agent import prompts
from core.dataset.generate import GenerateSpec, Generator, spec_dict
from core.dataset.storage import Dataset, DatasetStore
from core.dataset.teacher import BackendTeacher, HttpTeacher, Teacher, api_key_for
from core.errors import CotragError

if TYPE_CHECKING:
    from core.workspace import Workspace

TEACHER_NONE = "none"
TEACHER_BUNDLED = "bundled"


def datasets(ws: Workspace) -> DatasetStore:
    return DatasetStore(ws.layout.datasets)


def make_teacher(ws: Workspace, ref: str, model_name: str = "") -> Teacher | None:
    """``none`` (questions from templates only), ``bundled``, a ``.gguf`` path or a model name
    from `cotrag models list`, or the base
    URL of an OpenAI-compatible endpoint (``http://localhost:8080/v1``) with its model name."""
    ref = ref.strip()
    if ref in ("", TEACHER_NONE):
        return None
    if ref.startswith(("http://", "https://")):
        if not model_name:
            raise CotragError(
                "An endpoint teacher needs the model name it serves (--teacher-model NAME)."
            )
        return HttpTeacher(ref, model_name, api_key=api_key_for(ref))
    if ref == TEACHER_BUNDLED:
        return BackendTeacher(ws.backend(None), name="bundled SmolLM2-135M-Instruct")
    path = Path(ref).expanduser()
    return BackendTeacher(ws.backend(str(path)), name=path.name, writes_pairs=True)


def generator(
    ws: Workspace,
    name: str,
    spec: GenerateSpec,
    teacher: Teacher | None,
    *,
    cancel: threading.Event | None = None,
) -> tuple[Generator, Dataset, bool]:
    """A generator writing into dataset ``name`` (created, or continued when it exists and
    was made from the same knowledge base)."""
    kb = ws.store.get(spec.kb)
    store = datasets(ws)
    meta: dict[str, Any] = {
        "kb": kb.name,
        "kb_id": kb.id,
        "embedder": kb.embedder_name,
        "teacher": teacher.name if teacher is not None else "templates only",
        "seed": spec.seed,
        "validation_share": spec.validation_share,
        "template_version": prompts.template_version(),
        "spec": spec_dict(spec),
        "retrieval": {"method": ws.config.retrieval.method, "k": ws.config.retrieval.k},
    }
    dataset, created = store.open_or_create(name, meta)
    if not created and dataset.meta.get("kb_id") not in (None, kb.id):
        raise CotragError(
            f"Dataset {name!r} was made from knowledge base {dataset.meta.get('kb')!r}; "
            "choose another name for a dataset of this one."
        )
    retriever = ws.retriever(spec.kb)
    method = ws.config.retrieval.method
    student = ws.backend(None)  # the model a dataset is for: its tokenizer sets the bounds
    gen = Generator(
        spec,
        dataset,
        chunks=list(kb.iter_chunks()),
        search=lambda q, n: kb.search(q, k=n, method=method),
        retriever=retriever,
        teacher=teacher,
        config=ws.config,
        count_tokens=student.count_tokens,
        cancel=cancel,
    )
    return gen, dataset, created
