"""Datasets from a small real knowledge base (real Chroma, embedder and retrieval).

Question writers here: none (templates), the FAKE ScriptedBackend where a test is about
how the generator treats a teacher's output, and the real HTTP client against a
loopback server that speaks the OpenAI chat-completions protocol.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import ScriptedBackend
from small_docs import DOCS, indexed_workspace

from core.agent import prompts
from core.agent.loop import Agent
from core.agent.parser import trace_errors
from core.agent.record import RunRecord
from core.dataset import export as exporting
from core.dataset.candidates import candidates
from core.dataset.draws import _draw, plan_splits, split_of
from core.dataset.generate import Generator
from core.dataset.pairs import ImportedPair
from core.dataset.progress import Accepted, Rejected
from core.dataset.questions import template_question
from core.dataset.service import datasets, generator
from core.dataset.spec import EmptyKnowledgeBase, GenerateSpec
from core.dataset.storage import DatasetStore
from core.dataset.teacher import BackendTeacher
from core.dataset.validate import validate
from core.training.data import dataset_rows
from core.training.spec import TrainSpec
from core.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = indexed_workspace(tmp_path_factory.mktemp("ds"))
    assert isinstance(workspace, Workspace)
    workspace.store.create("empty")
    yield workspace
    workspace.close()


def run(
    ws: Workspace,
    name: str,
    spec: GenerateSpec,
    teacher: object = None,
    cancel: threading.Event | None = None,
) -> list[object]:
    gen, _, _ = generator(ws, name, spec, teacher, cancel=cancel)  # type: ignore[arg-type]
    return list(gen.run())


def test_generate_yields_verified_examples_in_the_exact_protocol(ws: Workspace) -> None:
    events = run(
        ws, "basic", GenerateSpec(kb="docs", count=6, validation_share=0.34, unanswerable_share=0.0)
    )
    dataset = datasets(ws).open("basic")
    examples = dataset.examples()
    assert 3 <= len(examples) <= 6
    assert len([e for e in events if isinstance(e, Accepted)]) == len(examples)
    for example in examples:
        record = RunRecord.from_dict(example["record"])
        assert example["answer"].casefold() not in example["question"].casefold()
        assert trace_errors(record.trace) == [] and not record.protocol_errors
        assert "".join(s.text for s in record.spans) == record.trace
        gold = example["gold_numbers"][0]
        assert gold in record.results and record.passages[gold].id == example["chunk_id"]
        assert f"[{gold}]" in record.answer
        assert example["answer"].strip("`").casefold() in record.answer.casefold().replace("`", "")
        assert "<!--" not in record.trace and "timers.md#settimeout" not in record.trace
    assert validate(dataset) == []
    # Split by document: no document in both.
    by_split: dict[str, set[str]] = {}
    for example in examples:
        by_split.setdefault(example["split"], set()).add(example["source"])
    assert not (by_split.get("train", set()) & by_split.get("validation", set()))
    assert split_of("a.md", 0, 0.5) == split_of("a.md", 0, 0.5)


def test_a_small_knowledge_base_still_holds_a_document_out_and_training_follows_it(
    ws: Workspace,
) -> None:
    # The documents as the knowledge base names them (absolute paths: they draw their split).
    sources = sorted(ws.store.get("docs").manifest().documents)
    assert len(sources) == 3
    share = 0.1
    # A seed where no document's draw falls under the share (the case that made a
    # 10-example dataset without validation examples).
    seed = next(s for s in range(100) if all(split_of(d, s, share) == "train" for d in sources))
    run(
        ws,
        "small-split",
        GenerateSpec(kb="docs", count=6, validation_share=share, unanswerable_share=0.0, seed=seed),
    )
    dataset = datasets(ws).open("small-split")
    examples = dataset.examples()
    held = {e["source"] for e in examples if e["split"] == "validation"}
    assert len(held) == 1 and dataset.meta["held_out"] == sorted(held)
    assert {e["source"] for e in examples if e["split"] == "train"}.isdisjoint(held)
    # Training's rows split as the dataset does: one split, one truth.
    rows = dataset_rows(dataset, TrainSpec(dataset="small-split", validation_share=0.5))
    assert {r.id for r in rows if r.split == "validation"} == {
        e["id"] for e in examples if e["split"] == "validation"
    }
    assert exporting.report(dataset)["splits"]["validation"] == len(
        [e for e in examples if e["split"] == "validation"]
    )
    # Continuing the dataset keeps every document where it was.
    run(
        ws,
        "small-split",
        GenerateSpec(kb="docs", count=9, validation_share=share, unanswerable_share=0.0, seed=seed),
    )
    again = datasets(ws).open("small-split").examples()
    assert {e["source"] for e in again if e["split"] == "validation"} == held


def test_the_split_rule() -> None:
    docs = ["a.md", "b.md", "c.md"]
    seed = next(s for s in range(100) if all(split_of(d, s, 0.1) == "train" for d in docs))
    splits = plan_splits(docs, seed, 0.1)
    assert len(splits.held) == 1 and splits.lead in splits.held
    assert sum(splits.of(d) == "validation" for d in docs) == 1
    assert not plan_splits(["a.md"], seed, 0.1).held  # one document: nothing to hold out
    assert not plan_splits(docs, seed, 0.0).held  # no share asked for
    # Documents with examples keep their split; one held out already is enough.
    kept = plan_splits(docs, seed, 0.1, existing={d: "train" for d in docs})
    assert not kept.held and all(kept.of(d) == "train" for d in docs)
    more = plan_splits([*docs, "d.md"], seed, 0.1, existing={"a.md": "validation"})
    assert not more.held and more.lead == "" and more.of("a.md") == "validation"
    # The documents an earlier run held out stay held out.
    assert plan_splits(docs, seed, 0.1, held=["b.md"]).of("b.md") == "validation"


def test_a_document_too_short_to_ask_about_is_never_the_one_held_out(
    ws: Workspace, tmp_path: Path
) -> None:
    """The held-out document must be one a question can come from: a note shorter than a
    seed drawn lowest left a templates-only dataset with no validation example."""
    from core.knowledge import service as kb_service

    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, "utf-8")
    (folder / "short.md").write_text("# A note\n\nToo short to ask about.\n", "utf-8")
    kb, _ = kb_service.open_kb(ws, "with-short")
    list(kb_service.index(ws, kb, [folder]))
    sources = sorted(ws.store.get("with-short").manifest().documents)
    short = next(d for d in sources if d.endswith("short.md"))
    share = 0.1
    # A seed where the short note draws lowest and no document falls under the share.
    seed = next(
        s
        for s in range(500)
        if all(split_of(d, s, share) == "train" for d in sources)
        and min(sources, key=lambda d: _draw(d, s)) == short
    )
    spec = GenerateSpec(
        kb="with-short", count=6, validation_share=share, unanswerable_share=0.0, seed=seed
    )
    run(ws, "short-split", spec)
    dataset = datasets(ws).open("short-split")
    held = {e["source"] for e in dataset.examples() if e["split"] == "validation"}
    assert len(held) == 1 and short not in held
    assert dataset.meta["held_out"] == sorted(held)


def test_a_held_out_document_that_gives_no_example_passes_the_hold_out_on() -> None:
    docs = ["a.md", "b.md", "c.md"]
    seed = next(s for s in range(100) if all(split_of(d, s, 0.1) == "train" for d in docs))
    splits = plan_splits(docs, seed, 0.1)
    others = [d for d in docs if d != splits.lead]
    moved = splits.moved(splits.lead, others)
    assert moved.lead in others and moved.held == {moved.lead}
    assert moved.of(splits.lead) == "train"
    # Never the last document left for training, nor a document it did not hold out.
    assert splits.moved(splits.lead, others[:1]) is splits
    assert splits.moved(splits.lead, others[:1], trained=True).lead == others[0]
    assert splits.moved(others[0], docs) is splits


def test_a_constructed_trace_is_what_the_loop_renders_for_a_model(ws: Workspace) -> None:
    """Train/infer parity: the model's spans, replayed by a model through the real loop on
    the same knowledge base, give the identical search turn and answer-stage prompt."""
    run(ws, "parity", GenerateSpec(kb="docs", count=2, unanswerable_share=0.0))
    example = datasets(ws).open("parity").examples()[0]
    record = RunRecord.from_dict(example["record"])
    assert record.messages["search"] == prompts.loop_messages(
        example["question"], max_rounds=ws.config.loop.max_rounds
    )
    model_turns = [s.text for s in record.spans if s.author == "model"]
    backend = ScriptedBackend([*model_turns, record.answer])
    agent = Agent(backend, ws.retriever("docs"), ws.config, first_query="model")
    again = RunRecord(example["question"])
    for event in agent.run(example["question"]):
        again.add(event)
    assert again.trace == record.trace
    assert again.messages["answer"] == record.messages["answer"]
    assert again.answer == record.answer


def test_a_rerun_continues_and_a_cancel_loses_nothing(ws: Workspace) -> None:
    cancel = threading.Event()
    spec = GenerateSpec(kb="docs", count=5)
    gen, dataset, created = generator(ws, "resume", spec, None, cancel=cancel)
    assert created
    for event in gen.run():
        if isinstance(event, Accepted):
            cancel.set()  # the user pressed Cancel after the first example
    kept = dataset.examples()
    assert len(kept) == 1
    run(ws, "resume", spec)
    again = datasets(ws).open("resume").examples()
    assert again[0] == kept[0] and len(again) > 1
    assert len({e["seed_key"] for e in again}) == len(again)


def test_a_torn_line_and_a_hand_edited_line_are_named_and_nothing_else_is_lost(
    ws: Workspace,
) -> None:
    run(ws, "damaged", GenerateSpec(kb="docs", count=3))
    dataset = datasets(ws).open("damaged")
    count = len(dataset.examples())
    lines = dataset.examples_file.read_text("utf-8").splitlines(keepends=True)
    lines.insert(1, "{not json\n")
    dataset.examples_file.write_text("".join(lines) + '{"id": "torn', "utf-8")
    assert len(dataset.examples()) == count  # the bad line and the torn tail are skipped
    problems = validate(dataset)
    assert any("line 2: not JSON" in p for p in problems)
    assert any("cut short" in p for p in problems)
    dataset.append_example({"id": "x", "question": "q"})  # cuts the torn tail first
    assert dataset.examples_file.read_text("utf-8").endswith('"q"}\n')
    assert len(dataset.examples()) == count + 1


def test_an_empty_knowledge_base_is_a_sentence(ws: Workspace) -> None:
    with pytest.raises(EmptyKnowledgeBase, match="no documents"):
        run(ws, "nothing", GenerateSpec(kb="empty", count=3))


def test_a_teacher_that_copies_its_example_or_rambles_falls_back_to_the_template(
    ws: Workspace,
) -> None:
    outputs = [
        "How many copies does the nightly backup job keep?",  # the prompt's example
        "What is the meaning of life and everything in the universe",  # no "?" / off topic
    ] * 20
    teacher = BackendTeacher(ScriptedBackend(outputs, supports_grammar=False), name="fake")
    run(ws, "fallback", GenerateSpec(kb="docs", count=3), teacher)
    examples = datasets(ws).open("fallback").examples()
    assert examples and all(e["question_origin"] == "template" for e in examples)
    assert {e["teacher_failure"] for e in examples} <= {"copied_example", "off_topic"}


def test_a_good_teacher_question_is_kept(ws: Workspace) -> None:
    class Echo:
        """A FAKE teacher that asks about the sentence's own words (a sane question)."""

        name = "echo"
        writes_pairs = False

        def question(self, candidate: object) -> str:
            sentence = candidate.sentence
            answer = candidate.answer
            words = [w for w in sentence.replace(answer, " ").split() if w.isalpha()][:8]
            return "Which value goes with " + " ".join(words) + "?"

        def pair(self, passage: str, heading: str, kind: str) -> tuple[str, str]:
            raise NotImplementedError

    run(ws, "teacher", GenerateSpec(kb="docs", count=3), Echo())
    examples = datasets(ws).open("teacher").examples()
    assert any(e["question_origin"] == "teacher" for e in examples)


def test_exports_mask_what_the_loop_wrote(ws: Workspace, tmp_path: Path) -> None:
    run(ws, "export", GenerateSpec(kb="docs", count=2, unanswerable_share=0.0))
    dataset = datasets(ws).open("export")
    out = tmp_path / "chat.jsonl"
    rows = exporting.export(dataset, "chat", out)
    assert rows == 2 * len(dataset.examples())
    search = next(json.loads(line) for line in out.read_text("utf-8").splitlines())
    assert search["stage"] == "search"
    content = search["messages"][-1]["content"]
    trained = "".join(content[a:b] for a, b in search["train_spans"])
    assert "<query>" in trained and "<results>" in trained
    assert "<query_res>" not in trained and "</query_res>" not in trained
    shown = content.split("<query_res>")[1].split("</query_res>")[0]
    assert shown.strip() and shown.strip() not in trained
    text_rows = [json.loads(x) for x in _export_lines(dataset, "chatml", tmp_path)]
    text = text_rows[0]["text"]
    assert "".join(text[a:b] for a, b in text_rows[0]["train_spans"]) == trained
    qa = [json.loads(x) for x in _export_lines(dataset, "qa", tmp_path)]
    assert qa[0]["answer"] and qa[0]["context"]
    inst = [json.loads(x) for x in _export_lines(dataset, "instruction", tmp_path)]
    assert inst[0]["output"] == content
    report = exporting.report(dataset)
    assert report["examples"] == len(dataset.examples())
    assert "## Rejections" in exporting.card(dataset, report)


def _export_lines(dataset: object, fmt: str, folder: Path) -> list[str]:
    out = folder / f"{fmt}.jsonl"
    exporting.export(dataset, fmt, out)  # type: ignore[arg-type]
    return out.read_text("utf-8").splitlines()


def test_candidates_are_literals_defaults_and_terms_from_the_text() -> None:
    found = {(c.kind, c.answer) for c in candidates(DOCS["backup.md"])}
    assert ("default", "14") in found
    assert ("howto", "appctl restore --from ARCHIVE") in found
    assert ("behaviour", "--verify") in found
    proxy = {(c.kind, c.answer) for c in candidates(DOCS["proxy.md"])}
    assert ("definition", "reverse proxy") in proxy and ("lookup", "8443") in proxy


def test_store_names_and_deletion(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "datasets")
    store.create("a set", {"kb": "x"})
    assert store.names() == ["a set"]
    with pytest.raises(Exception, match="not a usable dataset name"):
        store.create("../escape", {})
    store.delete("a set")
    assert store.names() == []


def test_the_generator_checks_its_spec() -> None:
    with pytest.raises(Exception, match="Unknown question kind"):
        GenerateSpec(kb="docs", kinds={"poetry": 1.0})
    with pytest.raises(Exception, match="validation share"):
        GenerateSpec(kb="docs", validation_share=1.5)
    assert Generator  # the class the service builds


def test_imported_pairs_get_traces_through_the_real_retrieval(ws: Workspace) -> None:
    pairs = [
        ImportedPair("Which port does the reverse proxy listen on by default?", "8443"),
        ImportedPair("Which signal reloads the proxy routes?", "SIGHUP"),
        ImportedPair("What colour is the sky on Mars?", "butterscotch"),
    ]
    gen, dataset, _ = generator(
        ws, "imported", GenerateSpec(kb="docs", count=3, unanswerable_share=0.0), None
    )
    events = list(gen.run_pairs(pairs))
    assert [e.reason for e in events if isinstance(e, Rejected)] == ["answer_not_found"]
    examples = dataset.examples()
    assert {e["answer"] for e in examples} == {"8443", "SIGHUP"}
    assert all(
        e["question_origin"] == "import" and e["source"].endswith("proxy.md") for e in examples
    )
    assert validate(dataset) == []


def test_the_cli_generates_shows_validates_and_exports(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    root = str(ws.layout.root)
    assert (
        main(
            [
                "--data-dir",
                root,
                "dataset",
                "generate",
                "--kb",
                "docs",
                "--name",
                "cli",
                "--count",
                "2",
                "--teacher",
                "none",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert ("examples (" in out and "rejections" in out) or "acceptance" in out
    assert main(["--data-dir", root, "dataset", "list"]) == 0
    assert "cli" in capsys.readouterr().out
    assert main(["--data-dir", root, "dataset", "validate", "cli"]) == 0
    target = tmp_path / "cli.jsonl"
    assert (
        main(["--data-dir", root, "dataset", "export", "cli", "--out", str(target), "--card"]) == 0
    )
    assert target.read_text("utf-8").count("\n") >= 2 and target.with_suffix(".md").exists()
    assert main(["--data-dir", root, "dataset", "show", "nope"]) == 1
    assert "No dataset named 'nope'" in capsys.readouterr().err
    assert main(["--data-dir", root, "dataset", "delete", "cli", "--yes"]) == 0


def test_template_questions_take_the_sentence_shape_and_never_hold_the_answer() -> None:
    made = {
        c.answer: template_question(c, "Backups > Schedule")
        for text in DOCS.values()
        for c in candidates(text)
    }
    assert made["14"] in ("What is the default retention?",) or "fills the blank" in made["14"]
    assert made["/var/backups/app"] == "What does `backup_dir` default to?"
    assert made["appctl restore --from ARCHIVE"] == "How do I restore an archive?"
    assert made["reverse proxy"].startswith("What is the name for a server that forwards")
    for answer, question in made.items():
        assert answer.casefold() not in question.casefold().replace("___", "")
        assert question.endswith("?")


def test_an_endpoint_teacher_writes_question_and_answer_and_bad_replies_fall_back(
    ws: Workspace,
) -> None:
    """The real HTTP client against a loopback OpenAI-style server: for the proxy passage it
    writes a pair; for every other passage it answers with broken JSON."""
    from openai_stub import completion, serve

    from core.dataset.teacher import HttpTeacher

    def answer(request: dict[str, object], headers: dict[str, str]) -> tuple[int, str, float]:
        text = str(request["messages"])  # type: ignore[index]
        if "8443" in text and "JSON only" in text:
            pair = (
                '{"question": "Which port does the proxy listen on unless told?", "answer": "8443"}'
            )
            return 200, completion(pair), 0.0
        return 200, completion('{"question": "broken'), 0.0

    with serve(answer) as url:
        teacher = HttpTeacher(url, "stub-7b")
        gen, dataset, _ = generator(
            ws, "endpoint", GenerateSpec(kb="docs", count=4, unanswerable_share=0.0), teacher
        )
        list(gen.run())
    examples = dataset.examples()
    by_teacher = [e for e in examples if e["question_origin"] == "teacher"]
    assert [e["answer"] for e in by_teacher] == ["8443"]
    assert by_teacher[0]["question"] == "Which port does the proxy listen on unless told?"
    assert gen.teacher_errors["invalid_json"] >= 1
    assert len(examples) > 1  # the other chunks went the answer-first way


def test_a_teacher_that_repeats_itself_forever_is_cut_and_replaced() -> None:
    from core.dataset.candidates import Candidate
    from core.dataset.teacher import TeacherError

    teacher = BackendTeacher(ScriptedBackend(["again " * 200], supports_grammar=False))
    with pytest.raises(TeacherError) as exc:
        teacher.question(Candidate("The proxy listens on port 8443 by default.", "8443", "lookup"))
    assert exc.value.reason == "unclosed_output"


def test_unanswerable_examples_leave_the_document_out_and_say_so(ws: Workspace) -> None:
    from core.dataset.construct import UNANSWERED

    run(ws, "unanswerable", GenerateSpec(kb="docs", count=6, unanswerable_share=0.5))
    dataset = datasets(ws).open("unanswerable")
    examples = dataset.examples()
    missing = [e for e in examples if e["unanswerable"]]
    assert missing and len(missing) < len(examples)
    for example in missing:
        record = RunRecord.from_dict(example["record"])
        assert example["answer"] == UNANSWERED and example["gold_answer"]
        assert record.results == [] and record.results_source == "none"
        assert "<results>\nnone\n</results>" in record.trace
        assert example["source"] not in {h.source for h in record.passages.values()}
        assert not record.protocol_errors
    assert validate(dataset) == []
    assert exporting.report(dataset)["unanswerable"] == len(missing)


def test_a_teacher_trace_is_kept_when_right_and_constructed_when_wrong(ws: Workspace) -> None:
    good = [
        "<think>I need the port.</think>\n<query>reverse proxy port default</query>",
        "<think>Passage 1 says it.</think>\n<results>\n[1] gives the port\n</results>",
        "The proxy listens on port 8443 by default [1].",
    ]
    wrong = [
        "<think>I need the signal.</think>\n<query>reload routes signal</query>",
        "<think>Found.</think>\n<results>\n[1] the signal\n</results>",
        "Restart the server [1].",  # does not give SIGHUP: constructed instead
    ]
    teacher = BackendTeacher(ScriptedBackend([*good, *wrong], supports_grammar=False))
    spec = GenerateSpec(kb="docs", count=2, unanswerable_share=0.0, teacher_traces=True)
    gen, dataset, _ = generator(ws, "teacher-traces", spec, teacher)
    list(
        gen.run_pairs(
            [
                ImportedPair("Which port does the reverse proxy listen on by default?", "8443"),
                ImportedPair("Which signal makes the proxy reload its routes?", "SIGHUP"),
            ]
        )
    )
    origins = {e["answer"]: e["trace_origin"] for e in dataset.examples()}
    assert origins == {"8443": "teacher", "SIGHUP": "constructed"}
    assert gen.teacher_errors["trace:wrong_answer"] == 1
    assert validate(dataset) == []


def test_a_rerun_does_not_ask_the_pair_teacher_about_chunks_already_decided(
    ws: Workspace,
) -> None:
    class Counting:
        """A FAKE pair-writing teacher that only counts how often it is asked."""

        name = "counting"
        writes_pairs = True

        def __init__(self) -> None:
            self.pairs = 0

        def question(self, candidate: object) -> str:
            from core.dataset.teacher import TeacherError

            raise TeacherError("empty_output", "no question")

        def pair(self, passage: str, heading: str, kind: str) -> tuple[str, str]:
            from core.dataset.teacher import TeacherError

            self.pairs += 1
            raise TeacherError("invalid_json", "no pair")

    spec = GenerateSpec(kb="docs", count=50, unanswerable_share=0.0)
    first = Counting()
    run(ws, "pair-resume", spec, first)
    assert first.pairs > 0
    again = Counting()
    run(ws, "pair-resume", spec, again)
    assert again.pairs == 0
