"""Alternating rounds on a tiny knowledge base: real embedder and generator runs, real re-embed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from small_docs import hold_out_fewest, share_base_weights, tiny_workspace

from core.dataset.storage import DatasetStore
from core.training.events import Error
from core.training.rounds import (
    RoundsEvent,
    RoundsPlan,
    RoundStep,
    RunEvent,
    load_state,
    run_rounds,
)
from core.training.runs import RunStore
from core.workspace import Workspace

pytestmark = pytest.mark.model


def test_one_round_tunes_reembeds_retraces_and_tunes(tmp_path: Path, base_weights: Path) -> None:
    ws = tiny_workspace(tmp_path, examples=8)
    share_base_weights(ws, base_weights)
    hold_out_fewest(ws, "tiny", keep=2)  # the embedder step needs two training questions
    assert isinstance(ws, Workspace)
    plan = RoundsPlan(
        name="alt",
        dataset="tiny",
        rounds=1,
        embedder={"max_steps": 2, "batch_size": 4, "eval_passages": 30, "checkpoint_every": 0},
        generator={
            "max_steps": 2,
            "batch_size": 2,
            "lora_r": 4,
            "lora_alpha": 8,
            "eval_every": 0,
            "checkpoint_every": 0,
            "exports": ["lora"],
            "validation_share": 0.0,
        },
    )
    events: list[RoundsEvent] = []
    summaries = run_rounds(ws, plan, on_event=events.append)
    assert len(summaries) == 1, [
        e for e in events if isinstance(e, RunEvent) and isinstance(e.worker, Error)
    ]
    first = summaries[0]
    assert first["embedder"] == "alt-r1-embedder" and first["model"] == "alt-r1-generator"
    assert first["dataset"] == "alt-r1" and first["examples"] > 0
    steps = [e.step for e in events if isinstance(e, RoundStep)]
    assert steps == ["embedder", "reembed", "retrace", "generator"]
    # The knowledge base is served by the tuned embedder, and the new traces searched it.
    kb = ws.store.get("docs")
    assert kb.embedder_name == "alt-r1-embedder" and kb.active_version.number == 2
    retraced = DatasetStore(ws.layout.datasets).open("alt-r1").examples()
    assert {e["record"]["info"]["knowledge_base"]["embedder"] for e in retraced} == {
        "alt-r1-embedder"
    }
    original = {e["question"] for e in DatasetStore(ws.layout.datasets).open("tiny").examples()}
    assert {e["question"] for e in retraced} <= original
    # The generator trained on the re-traced dataset.
    spec = RunStore(ws.layout).get("alt-r1-generator").spec()
    assert spec.dataset == "alt-r1" and spec.kind == "generator"
    # Running the schedule again finds every step done and starts nothing.
    again: list[RoundsEvent] = []
    assert run_rounds(ws, plan, on_event=again.append) == summaries
    assert not [e for e in again if isinstance(e, RoundStep)]
    state = load_state(ws, "alt")
    assert state is not None and set(state.done) == {
        "1:embedder",
        "1:reembed",
        "1:retrace",
        "1:generator",
    }
    json.dumps(summaries)  # plain data, for the CLI's output
    ws.close()
