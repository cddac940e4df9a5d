"""Two-hop questions over two related chunks, on a small real knowledge base (real Chroma,
embedder and retrieval; questions from templates, no model).

The documents: a guide that mentions settings by name in backticks, a reference page
whose sections are headed by those names and state their defaults, and unrelated pages
as distractors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from small_docs import DOCS

from core.agent.parser import trace_errors
from core.agent.record import RunRecord
from core.dataset import export as exporting
from core.dataset import twohop
from core.dataset.candidates import KINDS, TWOHOP
from core.dataset.draws import split_of
from core.dataset.progress import Accepted, Rejected
from core.dataset.service import generator
from core.dataset.spec import GenerateSpec, kind_weights
from core.dataset.validate import validate
from core.dataset.verify import Verifier
from core.workspace import Workspace

TWOHOP_DOCS = {
    "settings.md": (
        "# Settings\n\n"
        "## `retention`\n\n"
        "* Default: 14\n* Type: Number\n\n"
        "How many archives the backup service keeps on disk before it deletes the "
        "oldest archive of the set.\n\n"
        "## `compress-level`\n\n"
        "* Default: 6\n* Type: Number\n\n"
        "The zstd level the backup service uses when it writes an archive; higher "
        "levels give smaller files but take longer.\n\n"
        "## `upload-window`\n\n"
        "* Default: 01:30\n* Type: String\n\n"
        "The time of night after which finished archives are copied to the remote "
        "bucket, so that uploads do not compete with daytime traffic.\n"
    ),
    "guide.md": (
        "# Running backups well\n\n"
        "## Small disks\n\n"
        "When the disk of a small machine fills up within a week, lower the `retention` "
        "setting so "
        "that the service removes old archives sooner and frees space for new ones. "
        "Watch the free space for a few nights after the change.\n\n"
        "## Slow machines\n\n"
        "On an old laptop with a slow processor, a nightly job can take hours; lower "
        "`compress-level` so that each archive is written faster, at the price of "
        "larger files on the disk.\n"
    ),
    "garden.md": (
        "# Garden\n\nTomatoes need six hours of sun a day and water at the roots, not on "
        "the leaves. Pinch the side shoots every week so the plant puts its strength "
        "into the fruit. Mulch keeps the soil moist through dry weeks in July.\n"
    ),
    "bread.md": (
        "# Bread\n\nA sourdough starter is fed with equal weights of flour and water "
        "every day. Bake the loaf at a high heat for the first twenty minutes with "
        "steam, then lower the heat so the crust browns without burning.\n"
    ),
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    from core.knowledge.indexer import Indexer

    base = tmp_path_factory.mktemp("twohop")
    docs = base / "docs"
    docs.mkdir()
    for name, text in {**DOCS, **TWOHOP_DOCS}.items():
        (docs / name).write_text(text, "utf-8")
    workspace = Workspace(base / "data")
    kb = workspace.store.create("docs")
    workspace.config.chunking.size = 400
    workspace.config.chunking.overlap = 0
    list(Indexer(kb, workspace.embedder, workspace.config.chunking).run([docs]))
    yield workspace
    workspace.close()


def _parts(ws: Workspace) -> list[twohop.Part]:
    return [
        twohop.Part(c, t, str(m["source"]), str(m.get("doc_hash", "")), str(m.get("heading", "")))
        for c, t, m in ws.store.get("docs").iter_chunks()
    ]


def _bridges(ws: Workspace, seed: int = 0) -> list[twohop.Bridge]:
    return twohop.bridges(
        _parts(ws), seed=seed, split=lambda s: split_of(s, 0, 0.0), common=lambda a: False
    )


def test_a_bridge_links_a_mention_to_the_section_the_term_heads(ws: Workspace) -> None:
    found = _bridges(ws)
    by_term = {b.bare_term: b for b in found}
    assert {"retention", "compress-level"} <= set(by_term)
    retention = by_term["retention"]
    assert retention.first.source.endswith("guide.md")
    assert retention.second.source.endswith("settings.md")
    assert retention.second.heading.endswith("`retention`")
    assert (retention.answer.kind, retention.answer.answer) == ("default", "14")
    # Unrelated pages never pair; the seed fixes the order.
    assert not any(b.first.source.endswith(("garden.md", "bread.md")) for b in found)
    assert [b.key for b in _bridges(ws)] == [b.key for b in found]
    question = twohop.template_question(retention)
    assert "retention" not in question and "14" not in question
    assert question.endswith("What is the default value of X?")


def test_generate_twohop_traces_two_real_searches_and_cites_both_chunks(
    ws: Workspace, tmp_path: Path
) -> None:
    spec = GenerateSpec(
        kb="docs", count=2, kinds={TWOHOP: 1.0}, validation_share=0.0, unanswerable_share=0.0
    )
    gen, dataset, _ = generator(ws, "twohop", spec, None)
    events = list(gen.run())
    examples = dataset.examples()
    assert examples, [e for e in events if isinstance(e, Rejected)]
    assert len([e for e in events if isinstance(e, Accepted)]) == len(examples)
    kb = ws.store.get("docs")
    for example in examples:
        assert example["kind"] == TWOHOP
        record = RunRecord.from_dict(example["record"])
        assert trace_errors(record.trace) == [] and not record.protocol_errors
        assert "".join(s.text for s in record.spans) == record.trace
        first_id, second_id = example["chunk_ids"]
        assert example["chunk_id"] == second_id != first_id
        first, second = example["gold_numbers"]
        # Two query rounds, each with the real passages the knowledge base returns.
        assert len(record.retrievals) >= 2 and record.trace.count("<query>") >= 2
        for retrieval in record.retrievals:
            real = kb.search(retrieval.query, k=ws.config.retrieval.k)
            assert [h.id for h in retrieval.hits] == [h.id for h in real]
        assert first_id in {h.id for h in record.retrievals[0].hits}
        assert record.passages[first].id == first_id and record.passages[second].id == second_id
        # The second query is the refined one, for the bridge term, which it found.
        term = example["bridge"]["term"].lstrip("-")
        assert term in record.retrievals[1].query
        assert second_id in {h.id for r in record.retrievals[1:] for h in r.hits}
        between = record.trace.split("</query_res>")[1]
        assert "Still missing" in between and term in between
        assert set(record.results) == {first, second}
        assert f"[{first}]" in record.answer and f"[{second}]" in record.answer
        assert example["answer"] in record.answer
        assert term not in example["question"] and example["answer"] not in example["question"]
    assert validate(dataset) == []
    report = exporting.report(dataset)
    assert report["kinds"] == {TWOHOP: len(examples)}
    out = tmp_path / "qa.jsonl"
    assert exporting.export(dataset, "qa", out) == len(examples)
    qa = json.loads(out.read_text("utf-8").splitlines()[0])
    assert qa["context"].count("\n\n") >= 1  # both gold passages
    assert exporting.export(dataset, "chat", tmp_path / "chat.jsonl") == 2 * len(examples)


def test_validate_names_a_twohop_example_that_lost_a_hop(ws: Workspace) -> None:
    spec = GenerateSpec(
        kb="docs", count=1, kinds={TWOHOP: 1.0}, validation_share=0.0, unanswerable_share=0.0
    )
    gen, dataset, _ = generator(ws, "twohop-broken", spec, None)
    list(gen.run())
    example = dataset.examples()[0]
    example["chunk_ids"] = [example["chunk_id"], example["chunk_id"]]
    dataset.examples_file.write_text(json.dumps(example) + "\n", "utf-8")
    assert any("the two chunks of chunk_ids" in p for p in validate(dataset))


def test_verification_rejects_a_broken_bridge_with_its_reason(ws: Workspace) -> None:
    kb = ws.store.get("docs")
    bridge = next(b for b in _bridges(ws) if b.bare_term == "compress-level")
    verifier = Verifier(lambda q, n: kb.search(q, k=n), k=2)

    def check(question: str, answer: str = "6", **changes: object) -> str:
        args: dict[str, object] = {
            "term": bridge.bare_term,
            "first_text": bridge.first.text,
            "second_text": bridge.second.text,
            "first_ids": bridge.first_ids,
            "second_ids": bridge.second_ids,
            "second_query": twohop.second_query(bridge),
            **changes,
        }
        rejection, _ = verifier.check_twohop(question, answer, **args)  # type: ignore[arg-type]
        return rejection.reason if rejection is not None else ""

    good = twohop.template_question(bridge)
    assert check(good) == ""
    assert check("What is the default compress-level?") == "bridge_in_question"
    assert check(good, answer="30") == "answer_not_in_source"
    assert check(good, first_text=bridge.second.text) == "answer_in_first"
    assert check(good, first_text="Nothing here mentions it at all.") == "bridge_not_in_first"
    assert check("How long should tomatoes be in the sun each day?") == "round_trip_first_hop"
    assert check(good, second_query="sourdough starter flour water") == "round_trip_second_hop"
    # A question that leads straight to the answer's section needs one search only.
    one_hop = (
        'Documentation says: "X is the zstd level the backup service uses when it writes an '
        'archive". What is the default value of X?'
    )
    verifier.k = 8  # both chunks found, the answer's first
    assert check(one_hop, first_text=bridge.first.text + " " + one_hop) == "one_hop"


def test_twohop_is_a_kind_the_spec_the_cli_and_the_tab_list(ws: Workspace) -> None:
    assert TWOHOP in KINDS
    assert GenerateSpec(kb="docs").kinds[TWOHOP] > 0  # on by default
    assert kind_weights("twohop") == {**{k: 0.0 for k in KINDS}, TWOHOP: 1.0}


def test_a_mixed_run_holds_twohop_and_single_chunk_examples(ws: Workspace) -> None:
    spec = GenerateSpec(kb="docs", count=6, validation_share=0.0, unanswerable_share=0.0)
    gen, dataset, _ = generator(ws, "mixed", spec, None)
    list(gen.run())
    kinds = {e["kind"] for e in dataset.examples()}
    assert TWOHOP in kinds and len(kinds) > 1
    assert validate(dataset) == []


def test_the_embedder_pairs_read_a_twohop_example(ws: Workspace) -> None:
    from core.training.embedder_data import pair_of

    spec = GenerateSpec(
        kb="docs", count=1, kinds={TWOHOP: 1.0}, validation_share=0.0, unanswerable_share=0.0
    )
    gen, dataset, _ = generator(ws, "twohop-pairs", spec, None)
    list(gen.run())
    example = dataset.examples()[0]
    pair = pair_of(example, ws.store.get("docs"))
    assert not isinstance(pair, str)
    assert set(example["chunk_ids"]) <= pair.gold_ids
    assert "Default: 14" in pair.positive or "Default: 6" in pair.positive


def test_retrace_makes_the_same_examples_again_through_todays_search(ws: Workspace) -> None:
    """The alternating rounds re-trace a dataset after a re-embed; with the same search the
    same verified questions come out with the same traces, two-hop ones included."""
    spec = GenerateSpec(kb="docs", count=6, validation_share=0.0, unanswerable_share=0.0)
    gen, source, _ = generator(ws, "mixed-source", spec, None)
    list(gen.run())
    examples = source.examples()
    assert TWOHOP in {e["kind"] for e in examples}
    again, target, _ = generator(ws, "mixed-retraced", spec, None)
    events = list(again.retrace(examples))
    assert not [e for e in events if isinstance(e, Rejected)]
    retraced = {e["seed_key"]: e for e in target.examples()}
    assert set(retraced) == {e["seed_key"] for e in examples}
    for example in examples:
        other = retraced[example["seed_key"]]
        assert other["question"] == example["question"] and other["kind"] == example["kind"]
        assert other["record"]["trace"] == example["record"]["trace"]
        assert other.get("chunk_ids") == example.get("chunk_ids")
    assert validate(target) == []
    # A re-run skips what is decided; a gold chunk that is gone is a rejection with a reason.
    assert list(again.retrace(examples)) == []
    gone = {
        **examples[0],
        "seed_key": "gone|lookup|x",
        "chunk_id": "no-such-chunk",
        "kind": "lookup",
    }
    (event,) = [e for e in again.retrace([gone]) if isinstance(e, Rejected)]
    assert event.reason == "gold_chunk_gone"
