"""What a generation run is asked for: the knowledge base, how many examples, the mix of
question kinds, the documents, the splits (checked once, when it is made)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.dataset.candidates import KINDS
from core.errors import CotragError


class EmptyKnowledgeBase(CotragError, ValueError):
    pass


@dataclass
class GenerateSpec:
    kb: str
    count: int = 200
    seed: int = 0
    validation_share: float = 0.1
    """Share of documents whose examples go to the validation split."""
    kinds: dict[str, float] = field(default_factory=lambda: {k: 1.0 for k in KINDS})
    """Relative weight of each kind of question."""
    documents: list[str] = field(default_factory=list)
    """Only these documents (sources); empty: all."""
    exclude: list[str] = field(default_factory=list)
    """Leave these documents out."""
    teacher_traces: bool = False
    """Let a loaded-model teacher run the loop itself first; its trace is kept when it is
    clean, vets the source chunk and answers right (else the trace is constructed)."""
    unanswerable_share: float = 0.1
    """Share of examples traced with the source document left out of the search: they
    teach the model to say that the documents do not say."""
    k: int = 0
    """Round trip: the source chunk must be among the top k for the question (0: the
    loop's retrieval.k, so the question as a query shows the gold chunk in the trace)."""
    samples: int = 0
    """Runs of the model to be tuned per accepted question (0: off); the shortest run that
    vets the gold passage and answers right becomes the trace (``trace_origin`` sampled)."""
    sample_temperature: float = 0.7
    sample_model: str = ""
    """The model that samples ("" = the configured model, else the bundled one)."""
    sample_fallback: str = "constructed"
    """When no run is kept: keep the ``constructed`` trace, or ``drop`` the question."""
    rewrite: bool = False
    """The question writer restates each verified question in its own words; the rewrite
    is kept when it passes (:mod:`core.dataset.rewrite`), else the question as it was."""
    rewrite_max_overlap: float = 0.6
    """A rewrite whose share of content words found in the source sentence is above this
    copies the documents' wording and is not kept."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise CotragError("The number of examples must be 1 or more.")
        if not 0.0 <= self.unanswerable_share < 1.0:
            raise CotragError("The unanswerable share must be within 0 and 1 (e.g. 0.1).")
        if not 0.0 <= self.validation_share < 1.0:
            raise CotragError("The validation share must be within 0 and 1 (e.g. 0.1).")
        if not 0.0 < self.rewrite_max_overlap <= 1.0:
            raise CotragError("The rewrite's word overlap bound must be above 0 and at most 1.")
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise CotragError(f"Unknown question kind(s) {sorted(unknown)}; use {list(KINDS)}.")
        if not any(w > 0 for w in self.kinds.values()):
            raise CotragError("Give at least one kind of question a weight above 0.")
        if self.samples < 0:
            raise CotragError("The number of samples must be 0 (off) or more.")
        if self.samples and not 0.0 < self.sample_temperature <= 2.0:
            raise CotragError("The sampling temperature must be above 0 and at most 2.")
        if self.sample_fallback not in ("constructed", "drop"):
            raise CotragError(
                f"The sampling fallback is {self.sample_fallback!r}: use constructed or drop."
            )

    def chosen(self, source: str) -> bool:
        """Whether a document is among those the run asks about."""
        if self.documents and not any(same_document(source, d) for d in self.documents):
            return False
        return not any(same_document(source, d) for d in self.exclude)


def same_document(source: str, wanted: str) -> bool:
    return source == wanted or source.endswith("/" + wanted.lstrip("/"))


def kind_weights(text: str) -> dict[str, float]:
    """Kind weights from ``lookup=2,default=1,twohop`` (a bare name weighs 1, a kind not
    named weighs 0; empty: every kind weighs 1)."""
    if not text:
        return {k: 1.0 for k in KINDS}
    weights = {k: 0.0 for k in KINDS}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value or 1)
        except ValueError as exc:
            raise CotragError(f"--kinds: {part!r} is not NAME=WEIGHT") from exc
    return weights


def spec_dict(spec: GenerateSpec) -> dict[str, Any]:
    return asdict(spec)
