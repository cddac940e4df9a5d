"""A question asked in the chat becomes a dataset example (the chat's "Add to dataset").

The user gives the short answer (and may correct the cited answer); the example then
goes through the same checks and the same real retrieval as every imported pair. Imports
the dataset service and the conversations; never the CLI or the desktop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from core.conversations import set_correction
from core.dataset import service
from core.dataset.editing import edited, replace_example
from core.dataset.pairs import ImportedPair
from core.dataset.progress import Accepted, Rejected
from core.dataset.spec import GenerateSpec
from core.workspace import Workspace


@dataclass(frozen=True)
class TurnToDataset:
    """What became of a turn sent to a dataset."""

    added: bool
    reason: str = ""
    """Why it was not added: a rejection reason of the generator, or ``duplicate``."""
    detail: str = ""


DUPLICATE = "duplicate"


def add_turn_to_dataset(
    ws: Workspace,
    turn: dict[str, Any],
    *,
    kb: str,
    dataset: str,
    answer: str,
    cited: str,
    cancel: threading.Event | None = None,
) -> TurnToDataset:
    """Trace the turn's question through knowledge base ``kb`` into ``dataset``, with the
    user's short ``answer`` (and ``cited`` answer, when it differs from the traced one).

    The example goes through the same checks and real retrieval as an imported pair. When
    it is added, the turn records the dataset and the user's answer as its correction (so
    a later import of the conversation uses it too); the caller saves the conversation.
    """
    question = str(turn.get("question", ""))
    spec = GenerateSpec(kb=kb, count=1, unanswerable_share=0.0)
    gen, target, _ = service.generator(ws, dataset, spec, None, cancel=cancel)
    for event in gen.run_pairs([ImportedPair(question, answer)]):
        if isinstance(event, Rejected):
            return TurnToDataset(False, event.reason, event.detail)
        if isinstance(event, Accepted):
            example = event.example
            if cited and cited != example["record"]["answer"]:
                example = edited(example, question=question, answer=answer, cited=cited)
                replace_example(target, example)
            turn["dataset"] = dataset
            set_correction(turn, answer, cited)
            return TurnToDataset(True)
    return TurnToDataset(False, DUPLICATE)
