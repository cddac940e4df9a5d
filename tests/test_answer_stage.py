"""Stage combination: one model searches, another writes the answer (two llama.cpp contexts
of the REAL bundled model), and the run still streams as one trace."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import KeywordRetriever

from core.agent.events import Answer, Finished, Prompt, Started, Token
from core.agent.loop import Agent
from core.agent.record import RunRecord
from core.cli import main
from core.config import AppConfig, GenerationConfig
from core.llm.engines import default_model_path
from core.llm.llamacpp import LlamaCppBackend
from core.workspace import Workspace

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed in this environment")

pytestmark = pytest.mark.model

PASSAGES = {
    "tea.md": "Green tea tastes bitter when the water is boiling; use water around 80 degrees.",
    "bikes.md": "A bicycle chain should be cleaned and oiled every few hundred kilometres.",
}


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[LlamaCppBackend, LlamaCppBackend]]:
    config = GenerationConfig(n_ctx=2048, n_threads=2, answer_max_tokens=16, temperature=0.0)
    pair = (
        LlamaCppBackend(default_model_path(), config),
        LlamaCppBackend(default_model_path(), config),
    )
    for backend in pair:
        backend.load()
    yield pair
    for backend in pair:
        backend.close()


def evaluated(backend: LlamaCppBackend) -> str:
    """The text whose tokens the backend's context holds now (what it last evaluated)."""
    llm = backend.llm
    return llm.detokenize(list(llm.input_ids[: llm.n_tokens])).decode("utf-8", "replace")


def test_the_answer_stage_runs_on_the_second_context_in_one_stream(
    backends: tuple[LlamaCppBackend, LlamaCppBackend],
) -> None:
    searcher, reader = backends
    config = AppConfig()
    config.generation = searcher.config
    config.loop.max_rounds = 1
    config.loop.max_total_tokens = 48  # a short search turn: the test is about the stages
    config.loop.max_block_tokens = 16
    agent = Agent(
        searcher,
        KeywordRetriever(PASSAGES),
        config,
        grammar=True,
        first_query="question",
        model_id="searcher",
        answer_backend=reader,
        answer_grammar=False,
        answer_model_id="reader",
    )
    events = list(agent.run("How hot should the water for green tea be?"))
    started, finished = events[0], events[-1]
    assert isinstance(started, Started) and isinstance(finished, Finished)
    assert sum(isinstance(e, (Started, Finished)) for e in events) == 2, "one run, one stream"
    assert started.info["model"] == "searcher" and started.info["answer_model"] == "reader"
    assert started.info["settings"]["answer_grammar"] is False
    assert [e.stage for e in events if isinstance(e, Prompt)] == ["search", "answer"]
    answer = next(e for e in events if isinstance(e, Answer))
    answer_tokens = "".join(e.text for e in events if isinstance(e, Token) and e.tag == "answer")
    assert answer.text == answer_tokens.strip() and answer.text
    assert finished.reason == "answered"
    stats = finished.stats
    assert stats.answer_model == "reader"
    assert 0 < stats.answer_tokens < stats.completion_tokens
    # The second context evaluated the answer stage; the first never saw its prompt.
    answer_system = "Answer the question using only the numbered passages"
    # (The last token sampled is never evaluated: compare all but the answer's end.)
    assert answer_system in evaluated(reader) and answer.text[:10] in evaluated(reader)
    assert answer_system not in evaluated(searcher)
    assert "<query>" in evaluated(searcher)
    # The record keeps it as one run and says who answered.
    record = RunRecord(question="q")
    for event in events:
        record.add(event)
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.stats.answer_model == "reader" and again.info["answer_model"] == "reader"


def tuned_copy(ws: Workspace, name: str) -> Path:
    """A tuned model folder whose export is a copy of the bundled GGUF and whose model.json
    names the bundled model as its base (what a training run writes)."""
    folder = ws.layout.models / "tuned" / name
    folder.mkdir(parents=True)
    shutil.copyfile(default_model_path(), folder / "model.q8_0.gguf")
    info = {"tuned": True, "base": {"reference": "default", "name": "default"}}
    (folder / "model.json").write_text(json.dumps(info), "utf-8")
    return folder / "model.q8_0.gguf"


def test_the_workspace_loads_the_base_beside_a_tuned_model_when_asked(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.config.generation.n_ctx = 1024
    ws.config.generation.answer_max_tokens = 16
    gguf = tuned_copy(ws, "tuned-one")
    assert ws.base_model_ref("tuned-one") == "default"
    assert ws.base_model_ref(str(gguf)) == "default"
    assert ws.base_model_ref(None) is None, "the bundled model was not tuned here"
    same = ws.agent(None, model="tuned-one")
    assert same.answer_backend is None and same.answer_model_id == str(gguf)
    combined = ws.agent(None, model="tuned-one", answer_model="base")
    assert combined.answer_backend is not None and combined.answer_backend is not combined.backend
    assert combined.answer_model_id == str(default_model_path())
    # The setting does the same; an explicit "" (this model) overrides it.
    ws.config.loop.answer_model = "base"
    assert ws.agent(None, model="tuned-one").answer_backend is combined.answer_backend
    assert ws.agent(None, model="tuned-one", answer_model="").answer_backend is None
    # "base" for a model that was not tuned here is the model itself.
    assert ws.agent(None).answer_backend is None
    # "auto" (the default) follows what the tuned model's guard measured better; a model
    # it never measured answers for itself.
    ws.config.loop.answer_model = "auto"
    assert ws.agent(None, model="tuned-one").answer_backend is None
    record_file = gguf.parent / "model.json"
    info = json.loads(record_file.read_text("utf-8"))
    record_file.write_text(json.dumps({**info, "guard": {"answer_model": "base"}}), "utf-8")
    assert ws.agent(None, model="tuned-one").answer_backend is combined.answer_backend
    assert ws.agent(None).answer_backend is None
    # `cotrag ask --answer-model base`: the run says the base answered.
    ws.config.loop.answer_model = ""
    ws.save_config()
    argv = ["--data-dir", str(ws.layout.root), "ask", "Say hello.", "--mode", "closed"]
    assert main([*argv, "--model", "tuned-one", "--answer-model", "base", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["info"]["model"] == str(gguf)
    assert record["stats"]["answer_model"] == str(default_model_path())
    assert record["stats"]["answer_tokens"] > 0
