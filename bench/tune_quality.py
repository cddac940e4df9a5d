"""Does tuning lift the loop? Base rag, base loop and tuned recipes, paired per question.

    python bench/tune_quality.py [--corpora npm,zsh] [--recipe old,lr2e-4,...]
                                 [--count 200] [--limit 40] [--set FIELD=VALUE ...]
                                 [--gen-set FIELD=VALUE ...] [--work-root /tmp]
                                 [--quick] [--out R.json]

For each corpus (npm: the npm CLI's Markdown docs with bench/data/npm_docs_qa.jsonl;
zsh: the zsh HTML manual from Debian's zsh-doc with bench/data/zsh_docs_qa.jsonl):

1. index the corpus and generate ONE dataset with the dataset generator and the bundled
   teacher (its own questions, never the QA file's). Both are kept in a work folder
   (``WORK_ROOT/bench-CORPUS``) and reused by later runs, so recipes share them.
2. base loop (the app seeds the first search with the question) and base rag on the QA
   file, greedy; kept in the work folder too (computed once per QA file and limit).
3. for each recipe: train through the real worker process (a model already trained for
   the same recipe, sets and dataset is reused), then the tuned loop (its own queries),
   the tuned loop with the app-seeded first search, and, where the workspace can put the
   base model on the answer stage, the tuned search with the base reader.

Every answer is scored twice: ``first`` (the short answer: an ``Answer:`` line or the
first sentence, holds an expected string) and ``contains`` (the whole answer holds one,
the old score). Printed: accuracy (both), recall@k, rounds, protocol-error rate, median
answer words, s/question per side; the paired tables (each tuned side vs base loop and
vs base rag, both scores) with McNemar's exact p; the seconds each stage took.
``--out`` saves all of it, every answer included.

Recipes (``--recipe``, comma-separated; ``--set`` applies on top of each):
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import statistics
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import default_corpus, default_qa, table, zsh_corpus, zsh_qa

from core.scoring import answer_words, score_answer, short_answer

RECIPES: dict[str, tuple[str, list[str]]] = {
    "old": ("cpu-quick", []),
    "lr2e-4": ("cpu-quick", ["learning_rate=2e-4"]),
    "r64": ("cpu-quick", ["learning_rate=2e-4", "lora_r=64", "lora_alpha=128"]),
    "search-only": ("cpu-quick", ["stages=search"]),
    "answer-only": ("cpu-quick", ["stages=answer"]),
    "lr2e-4-120": ("cpu-quick", ["learning_rate=2e-4", "max_steps=120"]),
    "raft": (
        "cpu-quick",
        ["learning_rate=2e-4", "lora_r=64", "lora_alpha=128", "raft_rows=2"],
    ),
}
"""name -> (preset, sets). ``old`` is cpu-quick as shipped (LoRA r16 α32, lr 1e-3, 60 steps);
``r64`` is the Agent Distillation recipe (r64 α128 all linear layers, lr 2e-4); ``raft`` adds
two RAFT reader rows per example (the gold passage among distractors, a share without it)."""

__doc__ = (__doc__ or "") + "\n".join(
    f"    {k:12} {preset} {' '.join(sets)}" for k, (preset, sets) in RECIPES.items()
)

CORPORA = ("npm", "zsh")
RUNTIME_FIELDS = ("threads=", "processes=", "engine=", "checkpoint_every=", "tracking=")
"""``--set`` fields that change how fast a model trains, not the model."""

# -- scoring: core.scoring, as cotrag eval and the guard score ---------------------------


def score(answer: str, expected: list[str]) -> tuple[bool, bool]:
    """(the short answer holds an expected string, the whole answer holds one)."""
    first, whole = score_answer(answer or "", expected)
    return bool(first), bool(whole)


# -- reports as plain dicts ------------------------------------------------------------


def rescore(side: dict[str, Any]) -> dict[str, Any]:
    """Both scores, the short answer and the word count of every saved answer (a cached
    side is scored again, so a change of scorer never needs a new evaluation)."""
    for row in side["items"]:
        first, whole = score(row["answer"], row["expected"])
        row["first_ok"], row["contains_ok"] = first, whole
        row["short_answer"] = short_answer(row["answer"])
        row["words"] = answer_words(row["answer"] or "")
    side["summary"] = summarize(side["items"])
    return side


def summarize(items: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(items) or 1
    with_ret = [i for i in items if i.get("retrieval_hit") is not None]
    return {
        "questions": len(items),
        "accuracy_first": round(sum(i["first_ok"] for i in items) / n, 4),
        "accuracy_contains": round(sum(i["contains_ok"] for i in items) / n, 4),
        "recall_at_k": (
            round(sum(bool(i["retrieval_hit"]) for i in with_ret) / len(with_ret), 4)
            if with_ret
            else None
        ),
        "mean_rounds": round(sum(i["rounds"] for i in items) / n, 3),
        "protocol_error_rate": round(sum(bool(i["protocol_errors"]) for i in items) / n, 4),
        "median_answer_words": statistics.median([i["words"] for i in items]) if items else 0,
        "seconds_per_question": round(sum(i["seconds"] for i in items) / n, 2),
        "failed_runs": sum(bool(i.get("error")) for i in items),
    }


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, Any]:
    from core.compare.pairs import mcnemar_exact

    by_id = {i["id"]: i for i in b["items"]}
    pairs = [(x, by_id[x["id"]]) for x in a["items"] if x["id"] in by_id]
    both = sum(x[key] and y[key] for x, y in pairs)
    only_a = sum(x[key] and not y[key] for x, y in pairs)
    only_b = sum(y[key] and not x[key] for x, y in pairs)
    return {
        "questions": len(pairs),
        "both": both,
        "only_a": only_a,
        "only_b": only_b,
        "neither": len(pairs) - both - only_a - only_b,
        "mcnemar_p": round(mcnemar_exact(only_a, only_b), 4),
    }


# -- one corpus --------------------------------------------------------------------------


class Timer:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = round(self.stages.get(stage, 0.0) + seconds, 1)


def corpus_source(name: str, args: argparse.Namespace) -> tuple[list[Path], Path]:
    if name == "npm":
        return [args.npm_corpus or default_corpus()], args.npm_qa or default_qa()
    if name == "zsh":
        return zsh_corpus(), args.zsh_qa or zsh_qa()
    raise SystemExit(f"Unknown corpus {name!r}: use {', '.join(CORPORA)}.")


def run_corpus(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from core.compare.evaluation import evaluate, load_qa
    from core.workspace import Workspace

    paths, qa = corpus_source(name, args)
    work = args.work_root / f"bench-{name}"
    work.mkdir(parents=True, exist_ok=True)
    state_file = work / "bench-state.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {}

    def save_state() -> None:
        state_file.write_text(json.dumps(state, indent=2, ensure_ascii=False))

    timer = Timer()
    ws = Workspace(work / "data")
    kb = "bench"
    print(f"== {name}: {len(paths)} path(s), questions {qa}, work {work}", flush=True)

    # 1. index
    if kb not in {info.name for info in ws.store.list()}:
        from core.knowledge.indexer import Indexer

        store_kb = ws.store.create(kb)
        t0 = time.perf_counter()
        for _ in Indexer(store_kb, ws.embedder, ws.config.chunking).run(paths):
            pass
        timer.add("index", time.perf_counter() - t0)
        state["index"] = {"chunks": store_kb.count(), "seconds": timer.stages["index"]}
        save_state()
        print(f"indexed: {store_kb.count()} chunks in {timer.stages['index']:.0f} s", flush=True)
    else:
        print(f"index reused: {ws.store.get(kb).count()} chunks", flush=True)

    # 2. dataset
    from core.dataset.service import datasets, generator, make_teacher
    from core.dataset.spec import GenerateSpec
    from core.training.spec import parse_sets

    gen_spec = GenerateSpec(kb=kb, count=args.count)
    gen_values = parse_sets(gen_spec, args.gen_set)
    tag = hashlib.sha1(json.dumps(gen_values, sort_keys=True).encode()).hexdigest()[:6]
    dataset = f"traces-{args.count}" + ("" if args.teacher == "bundled" else f"-{args.teacher}")
    dataset += f"-{tag}" if gen_values else ""
    # Done when a run of this bench finished it (a corpus may give fewer examples than
    # asked for) or when it holds nearly the count.
    done = datasets(ws).exists(dataset) and (
        dataset in state.get("datasets", {})
        or len(datasets(ws).open(dataset).examples()) >= int(0.9 * args.count)
    )
    if not done:
        gen_spec = GenerateSpec(**{**asdict(gen_spec), **gen_values})
        t0 = time.perf_counter()
        gen, ds, _ = generator(ws, dataset, gen_spec, make_teacher(ws, args.teacher))
        for _ in gen.run():
            pass
        timer.add("generate", time.perf_counter() - t0)
        state.setdefault("datasets", {})[dataset] = {
            "examples": len(ds.examples()),
            "seconds": timer.stages["generate"],
            "gen_set": args.gen_set,
            "teacher": args.teacher,
        }
        save_state()
        print(
            f"dataset {dataset}: {len(ds.examples())} examples in {timer.stages['generate']:.0f} s",
            flush=True,
        )
    else:
        print(f"dataset reused: {dataset} ({len(datasets(ws).open(dataset).examples())})")
    ws.release(None)

    items = load_qa(qa)
    if args.limit:
        items = items[: args.limit]
    ws.config.generation.temperature = 0.0
    if args.threads:
        # llama.cpp's threads wait for each other at every step: on a machine whose cores
        # are oversubscribed one thread runs far faster than two.
        ws.config.generation.n_threads = args.threads
    evals_dir = work / "evals"
    evals_dir.mkdir(exist_ok=True)
    qa_key = f"{qa.stem}-{len(items)}"

    def run_eval(label: str, key: str, agent_kwargs: dict[str, Any], mode: str, model: str) -> Any:
        """One side on the questions. Each answer is appended to ``evals/KEY-QA.jsonl`` as
        it is scored, so a stopped run goes on where it was and a smaller --limit reuses it."""
        whole = evals_dir / f"{key}-{qa_key}.json"  # a finished side (an earlier format)
        if whole.exists() and not args.fresh:
            print(f"  {label}: reused {whole.name}", flush=True)
            return rescore(json.loads(whole.read_text()))
        log = evals_dir / f"{key}-{qa.stem}.jsonl"
        if args.fresh and log.exists():
            log.unlink()
        done: dict[str, dict[str, Any]] = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    done[row["id"]] = row
        todo = [] if args.report_only else [item for item in items if item.id not in done]
        t0 = time.perf_counter()
        if todo:
            print(f"  {label}: {len(todo)} of {len(items)} questions to run", flush=True)
            agent = ws.agent(kb, **agent_kwargs)

            def progress(index: int, result: Any) -> None:
                row = asdict(result)
                done[row["id"]] = row
                with log.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                if (index + 1) % 5 == 0:
                    print(f"  [{label}] {index + 1}/{len(todo)}", flush=True)

            evaluate(agent, todo, mode=mode, kb=kb, model=model, on_item=progress)
            timer.add(f"evaluate {label}", time.perf_counter() - t0)
        else:
            print(f"  {label}: reused {log.name}", flush=True)
        return rescore(
            {
                "mode": mode,
                "model": model,
                "items": [done[item.id] for item in items if item.id in done],
                "wall_seconds": round(
                    sum(done[item.id]["seconds"] for item in items if item.id in done), 1
                ),
            }
        )

    sides: dict[str, Any] = {}
    if not args.train_only:
        if "loop" in args.base:
            sides["base loop (seeded)"] = run_eval(
                "base loop", "base-loop", {"first_query": "question"}, "loop", "default"
            )
        if "rag" in args.base:
            sides["base rag"] = run_eval("base rag", "base-rag", {}, "rag", "default")
        ws.release(None)
    models_dir = work / "models"
    models_dir.mkdir(exist_ok=True)

    supports_answer_model = "answer_model" in inspect.signature(ws.agent).parameters
    recipes: dict[str, Any] = {}
    for recipe in args.recipes:
        preset, sets = RECIPES[recipe]
        sets = [*sets, *args.set]
        # The model's key: what changes the weights (not the threads it was trained with).
        recipe_sets = [x for x in sets if not x.startswith(RUNTIME_FIELDS)]
        key = (
            f"{recipe}-{dataset}-"
            + hashlib.sha1(json.dumps([preset, recipe_sets]).encode()).hexdigest()[:6]
        )
        # One file per trained model, so a --train-only process can train the next recipe
        # while another evaluates the last one.
        model_file = models_dir / f"{key}.json"
        trained: dict[str, Any] = (
            json.loads(model_file.read_text())
            if model_file.exists()
            else {
                "model": state.get("models", {}).get(key),
                "train": state.get("train", {}).get(key, {}),
            }
        )
        model = trained["model"]
        if model and not _model_exists(ws, model):
            model = None
        if model is None and args.report_only:
            print(f"  {recipe}: not trained yet", flush=True)
            continue
        if model is None and args.wait:
            print(f"  {recipe}: waiting for {model_file} (a --train-only run)", flush=True)
            while not model_file.exists():
                time.sleep(20)
            time.sleep(2)
            trained = json.loads(model_file.read_text())
            model = trained["model"]
        if model is None:
            t0 = time.perf_counter()
            model, train_info = _train(ws, dataset, preset, sets, recipe)
            timer.add(f"train {recipe}", time.perf_counter() - t0)
            trained = {
                "model": model,
                "train": {**train_info, "seconds": timer.stages[f"train {recipe}"]},
            }
            model_file.write_text(json.dumps(trained, indent=2))
        else:
            print(f"  {recipe}: model {model} reused", flush=True)
        ws.release(None)
        if args.train_only:
            continue
        recipe_sides: dict[str, Any] = {}
        if "loop" in args.sides:
            recipe_sides["tuned loop"] = run_eval(
                f"{recipe} loop",
                f"{key}-loop",
                {"model": model, "first_query": "model"},
                "loop",
                model,
            )
        if "seeded" in args.sides:
            recipe_sides["tuned loop, app-seeded"] = run_eval(
                f"{recipe} seeded",
                f"{key}-seeded",
                {"model": model, "first_query": "question"},
                "loop",
                model,
            )
        if supports_answer_model and "combo" in args.sides:
            recipe_sides["tuned search + base reader (seeded)"] = run_eval(
                f"{recipe} +base reader",
                f"{key}-basereader",
                {"model": model, "first_query": "question", "answer_model": "default"},
                "loop",
                model,
            )
        ws.release(model)
        ws.release(None)
        recipes[recipe] = {
            "model": model,
            "preset": preset,
            "sets": sets,
            "train": trained["train"],
            "sides": recipe_sides,
        }
        _print_corpus(name, sides, {recipe: recipes[recipe]})
    ws.close()
    if args.report_only:
        _common_questions(sides, recipes)
    result = {
        "corpus": name,
        "paths": [str(p) for p in paths],
        "qa": str(qa),
        "questions": len(items),
        "dataset": dataset,
        "dataset_info": state.get("datasets", {}).get(dataset, {}),
        "index": state.get("index", {}),
        "base": sides,
        "recipes": recipes,
        "stage_seconds": timer.stages,
    }
    _print_corpus(name, sides, recipes, timer.stages)
    return result


def _common_questions(base: dict[str, Any], recipes: dict[str, Any]) -> None:
    """Cut every side to the questions all sides have answered (a report on runs that are
    still going), and score the cut sides again."""
    all_sides = [*base.values(), *(x for r in recipes.values() for x in r["sides"].values())]
    answered = [{i["id"] for i in side["items"]} for side in all_sides]
    common = set.intersection(*[a for a in answered if a]) if any(answered) else set()
    for side in all_sides:
        side["items"] = [i for i in side["items"] if i["id"] in common]
        rescore(side)
    print(
        f"report on the {len(common)} questions every started side has answered so far",
        flush=True,
    )


def _model_exists(ws: Any, model: str) -> bool:
    try:
        return ws.model_path(model).exists()
    except Exception:
        return False


def _print_corpus(
    name: str,
    base: dict[str, Any],
    recipes: dict[str, Any],
    stages: dict[str, float] | None = None,
) -> None:
    rows = [
        [
            name,
            "n",
            "acc first",
            "acc contains",
            "recall@k",
            "rounds",
            "proto err",
            "med words",
            "s/q",
        ]
    ]
    all_sides = dict(base)
    for recipe, r in recipes.items():
        for label, side in r["sides"].items():
            all_sides[f"{recipe}: {label}"] = side
    for label, side in all_sides.items():
        s = side["summary"]
        recall = s["recall_at_k"]
        rows.append(
            [
                label,
                str(s["questions"]),
                f"{s['accuracy_first']:.3f}",
                f"{s['accuracy_contains']:.3f}",
                f"{recall:.3f}" if recall is not None else "-",
                f"{s['mean_rounds']:.2f}",
                f"{s['protocol_error_rate']:.3f}",
                f"{s['median_answer_words']:g}",
                f"{s['seconds_per_question']:.1f}",
            ]
        )
    print()
    print(table(rows))
    prow = [["tuned side vs base", "score", "both", "only tuned", "only base", "neither", "p"]]
    for recipe, r in recipes.items():
        for label, side in r["sides"].items():
            for base_label in ("base loop (seeded)", "base rag"):
                for key, score_name in (("first_ok", "first"), ("contains_ok", "contains")):
                    t = paired(side, base[base_label], key)
                    prow.append(
                        [
                            f"{recipe}: {label} vs {base_label}",
                            score_name,
                            str(t["both"]),
                            str(t["only_a"]),
                            str(t["only_b"]),
                            str(t["neither"]),
                            f"{t['mcnemar_p']:.3g}",
                        ]
                    )
    if len(prow) > 1:
        print()
        print(table(prow))
    for recipe, r in recipes.items():
        errors: dict[str, int] = {}
        for item in r["sides"].get("tuned loop", {}).get("items", []):
            for kind in item["protocol_errors"]:
                errors[kind] = errors.get(kind, 0) + 1
        print(f"{recipe}: {r['preset']} {' '.join(r['sets'])}; tuned loop errors {errors}")
        if r.get("train"):
            print(f"  train: {r['train']}")
    if stages:
        print("stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    print(flush=True)


def _train(
    ws: Any, dataset: str, preset: str, sets: list[str], recipe: str
) -> tuple[str, dict[str, Any]]:
    from core.cli.train import build_spec
    from core.training.events import Done, Eval, Step, WorkerEvent
    from core.training.preflight import check_job
    from core.training.process import TrainProcess
    from core.training.runs import RunStore

    spec = build_spec(
        argparse.Namespace(spec=None, preset=preset, dataset=dataset, base=None, set=sets)
    )
    checked = check_job(ws.layout, spec)
    assert checked.prepared is not None
    store = RunStore(ws.layout)
    # A run of this very spec that stopped part-way (a killed or cancelled bench) goes on
    # from its last checkpoint: a recipe's training is longer than one sitting here.
    stopped = [
        r
        for r in store.runs()
        if r.name.startswith(f"{dataset}-{recipe}")
        and r.state in ("cancelled", "interrupted", "failed")
        and r.latest_checkpoint() is not None
        and r.spec() == spec
    ]
    if stopped:
        run, resume = stopped[-1], True
        name = run.name
    else:
        name = store.unique_name(f"{dataset}-{recipe}")
        run, resume = store.create(name, spec), False
    info: dict[str, Any] = {
        "run": name,
        "rows": len(checked.prepared.train),
        "tokens": checked.prepared.train_tokens,
        "spec": {
            f.name: getattr(spec, f.name)
            for f in fields(spec)
            if f.name
            in (
                "learning_rate",
                "lora_r",
                "lora_alpha",
                "max_steps",
                "epochs",
                "stages",
                "batch_size",
            )
        },
    }
    print(
        f"training {name}: {info['rows']} rows, {info['tokens']} tokens, {info['spec']}"
        + (f" (resuming from {run.latest_checkpoint()})" if resume else ""),
        flush=True,
    )
    proc = TrainProcess(run, ws.layout, resume=resume)
    proc.start()
    t0 = time.perf_counter()
    losses: list[float] = []

    def on_event(event: WorkerEvent) -> None:
        if isinstance(event, Step):
            losses.append(event.loss)
            if event.step % 10 == 0 or event.step == 1:
                print(
                    f"  step {event.step}/{event.total} loss {event.loss:.3f} "
                    f"{event.tokens_per_s:.0f} tok/s",
                    flush=True,
                )
        elif isinstance(event, Eval) and event.loss is not None:
            info["validation_loss"] = round(event.loss, 4)
            print(f"  validation loss {event.loss:.3f} at step {event.step}", flush=True)

    outcome = proc.wait(on_event)
    print(f"{outcome.sentence(run.log_file)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if outcome.state != "done":
        raise SystemExit(1)
    assert isinstance(outcome.final, Done)
    info["final_train_loss"] = round(losses[-1], 4) if losses else None
    return outcome.final.model, info


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--corpora", default="npm", help="comma-separated: npm, zsh")
    parser.add_argument("--recipe", default="old", help=f"comma-separated: {', '.join(RECIPES)}")
    parser.add_argument("--count", type=int, default=200, help="examples to generate")
    parser.add_argument("--limit", type=int, default=0, help="first N questions (0: all)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument(
        "--gen-set", action="append", default=[], metavar="FIELD=VALUE", help="GenerateSpec"
    )
    parser.add_argument(
        "--teacher",
        default="bundled",
        help="question writer: bundled, none (templates only; minutes instead of an hour "
        "on a loaded machine), a GGUF path or model name",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="llama.cpp threads (0: the config's setting)"
    )
    parser.add_argument("--work-root", type=Path, default=Path("/tmp"))
    parser.add_argument("--npm-corpus", type=Path, default=None)
    parser.add_argument("--npm-qa", type=Path, default=None)
    parser.add_argument("--zsh-qa", type=Path, default=None)
    parser.add_argument(
        "--sides",
        default="loop,seeded,combo",
        help="tuned sides: loop (own queries), seeded (app-seeded first search), combo "
        "(seeded, base model on the answer stage, where the workspace offers it)",
    )
    parser.add_argument("--base", default="loop,rag", help="base sides: loop, rag, or both")
    parser.add_argument(
        "--train-only", action="store_true", help="train the recipes, evaluate nothing"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: tables over the questions every side has answered so far",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="never train: wait for a --train-only run to finish each recipe's model",
    )
    parser.add_argument("--fresh", action="store_true", help="evaluate again, no cached sides")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 30 examples, 5 questions, 8 steps"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.recipes = [r.strip() for r in args.recipe.split(",") if r.strip()]
    args.sides = {x.strip() for x in args.sides.split(",") if x.strip()}
    args.base = {x.strip() for x in args.base.split(",") if x.strip()}
    for recipe in args.recipes:
        if recipe not in RECIPES:
            raise SystemExit(f"Unknown recipe {recipe!r}: use one of {', '.join(RECIPES)}.")
    if args.quick:
        args.count = min(args.count, 30)
        args.limit = min(args.limit or 5, 5)
        args.set = ["max_steps=8", "eval_every=0", "checkpoint_every=0", *args.set]
        args.work_root = args.work_root / "quick"

    t0 = time.perf_counter()
    results = []
    for name in [c.strip() for c in args.corpora.split(",") if c.strip()]:
        results.append(run_corpus(name, args))
        if args.out:
            _save(args, results)
    print(f"bench done in {time.perf_counter() - t0:.0f} s")
    if args.out:
        _save(args, results)


def _save(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    args.out.write_text(
        json.dumps(
            {"argv": sys.argv, "count": args.count, "limit": args.limit, "corpora": results},
            ensure_ascii=False,
            indent=1,
        ),
        "utf-8",
    )


if __name__ == "__main__":
    main()
