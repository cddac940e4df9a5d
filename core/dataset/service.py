"""Wires a dataset run to a workspace: the knowledge base, its search, the teacher, the
student's tokenizer; and the dataset flows a caller asks for (list, import, edit, export).
The CLI and the Dataset tab both start here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agent import prompts
from core.dataset import export as exporting
from core.dataset.editing import ResultEntry, edited, replace_example
from core.dataset.generate import Generator
from core.dataset.pairs import ImportedPair
from core.dataset.rewrite import writer_of
from core.dataset.sampling import SampleEvent, Sampler, SampleSettings, sample_dataset, undecided
from core.dataset.spec import GenerateSpec, spec_dict
from core.dataset.storage import Dataset, DatasetStore
from core.dataset.teacher import (
    BackendTeacher,
    HttpTeacher,
    Teacher,
    api_key_for,
    store_api_key,
)
from core.errors import CotragError

if TYPE_CHECKING:
    from core.workspace import Workspace

log = logging.getLogger(__name__)

TEACHER_NONE = "none"
TEACHER_BUNDLED = "bundled"


def datasets(ws: Workspace) -> DatasetStore:
    return DatasetStore(ws.layout.datasets)


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    examples: int
    kb: str


def summaries(ws: Workspace) -> list[DatasetSummary]:
    """Each dataset with its number of examples and the knowledge base it was made from."""
    store = datasets(ws)
    out = []
    for name in store.names():
        dataset = store.open(name)
        out.append(DatasetSummary(name, len(dataset.examples()), str(dataset.meta.get("kb", ""))))
    return out


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


def endpoint_teacher(url: str, model: str, api_key: str) -> Teacher:
    """A teacher at an OpenAI-compatible endpoint typed into a form; a key typed with it is
    kept in the OS keyring for the next run (a keyring that refuses is only logged)."""
    if api_key:
        try:
            store_api_key(url, api_key)
        except CotragError as exc:
            log.warning("%s", exc)
    return HttpTeacher(url, model or "default", api_key=api_key)


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
    if spec.rewrite:
        writer_of(teacher)  # before anything is created: a sentence when there is none
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
    sampler = None
    if spec.samples > 0:
        settings = SampleSettings(
            spec.samples,
            spec.sample_temperature,
            spec.sample_model,
            spec.sample_fallback,
            spec.seed,
        )
        sampler = sampler_for(ws, spec.kb, settings, cancel=cancel)
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
        sampler=sampler,
    )
    return gen, dataset, created


def sampler_for(
    ws: Workspace,
    kb: str,
    settings: SampleSettings,
    *,
    cancel: threading.Event | None = None,
    reuse_prefix: bool = True,
) -> Sampler:
    """The model to be tuned (``settings.model``, "" = the configured one) running the real
    loop on knowledge base ``kb``, seeded first with the question, as the app runs it."""
    agent = ws.agent(kb, model=settings.model or None, first_query="question")
    return Sampler(agent, settings, cancel=cancel, reuse_prefix=reuse_prefix)


@dataclass(frozen=True)
class SamplePass:
    dataset: Dataset
    sampler: Sampler
    todo: int
    """Questions not decided by an earlier pass."""

    def run(self) -> Iterator[SampleEvent]:
        return sample_dataset(self.dataset, self.sampler, self.sampler.cancel)


def sample_pass(
    ws: Workspace,
    name: str,
    *,
    samples: int = 5,
    temperature: float = 0.7,
    model: str = "",
    fallback: str = "constructed",
    cancel: threading.Event | None = None,
) -> SamplePass:
    """A pass over dataset ``name`` in which the model to be tuned samples each question
    not decided before (its ``run()`` yields the events; a re-run goes on)."""
    dataset = datasets(ws).open(name)
    kb = str(dataset.meta.get("kb", ""))
    if not kb:
        raise CotragError(f"Dataset {name!r} does not say which knowledge base it was made from.")
    settings = SampleSettings(
        samples, temperature, model, fallback, int(dataset.meta.get("seed", 0))
    )
    sampler = sampler_for(ws, kb, settings, cancel=cancel)
    return SamplePass(dataset, sampler, len(undecided(dataset)))


def importer(
    ws: Workspace,
    name: str,
    kb: str,
    pairs: list[ImportedPair],
    *,
    cancel: threading.Event | None = None,
) -> tuple[Generator, Dataset]:
    """A generator that traces ``pairs`` through knowledge base ``kb`` into dataset ``name``
    (its ``run_pairs(pairs)`` yields the events)."""
    gen, dataset, _ = generator(
        ws, name, GenerateSpec(kb=kb, count=len(pairs)), None, cancel=cancel
    )
    return gen, dataset


def save_edit(
    ws: Workspace,
    name: str,
    example: dict[str, Any],
    *,
    question: str,
    answer: str,
    cited: str,
    results: list[ResultEntry] | None = None,
) -> dict[str, Any]:
    """Replace ``example`` in dataset ``name`` by its hand edit (EditRejected: it would break
    the example; nothing is written)."""
    dataset = datasets(ws).open(name)
    new = edited(
        example, question=question, answer=answer, cited=cited, results=results, meta=dataset.meta
    )
    replace_example(dataset, new)
    return new


def export_to(
    dataset: Dataset, fmt: str, out: Path, split: str = "", *, card: bool = True
) -> tuple[int, Path | None]:
    """Write the dataset's training rows in ``fmt`` to ``out`` and, with ``card``, its
    dataset card beside it (``.md``): the number of rows and the card's path."""
    written = exporting.export(dataset, fmt, out, split)
    if not card:
        return written, None
    card_path = out.with_suffix(".md")
    card_path.write_text(exporting.card(dataset, exporting.report(dataset)), "utf-8")
    return written, card_path
