"""Three short documents for tests that need a real knowledge base (datasets, training)."""

DOCS = {
    "timers.md": (
        "# Timers\n\n<!-- YAML added: v0.0.1 -->\n\n## setTimeout\n\n"
        "Use [`setTimeout()`][] to run a callback once after a delay. The default delay is "
        "`1` millisecond when the delay is missing or not a number. Timers keep the process "
        "alive until they fire; call `unref()` on a timer so that it does not keep the "
        "event loop running on its own.\n\n"
        "## setInterval\n\n"
        "The `setInterval()` function runs a callback again and again, every `delay` "
        "milliseconds, until `clearInterval()` is called with the timer it returned. A "
        "delay larger than 2147483647 is set to 1 with a warning.\n\n"
        "[`setTimeout()`]: timers.md#settimeout\n"
    ),
    "backup.md": (
        "# Backups\n\n## Schedule\n\n"
        "The backup service runs every night at 02:00 and keeps 14 copies before it "
        "deletes the oldest archive. Set `retention` to change the number of copies; the "
        "default retention is `14`. Archives are written to the folder named by "
        "`backup_dir`, which defaults to `/var/backups/app` on Linux.\n\n"
        "## Restore\n\n"
        "To restore an archive, run `appctl restore --from ARCHIVE` while the service is "
        "stopped. The `--verify` option checks every file's checksum after the restore "
        "and reports the files that differ.\n"
    ),
    "proxy.md": (
        "# Proxy\n\n"
        "A reverse proxy is a server that forwards client requests to one of several "
        "backend servers and returns their answers. The proxy listens on port 8443 by "
        "default and reads its routes from `routes.yaml` at start. Send the process "
        "`SIGHUP` to reload the routes without dropping the open connections.\n\n"
        "Health checks run every 10 seconds; a backend that fails 3 checks in a row is "
        "taken out of rotation until it passes again.\n"
    ),
}


def indexed_workspace(root: object) -> object:
    """A workspace under ``root`` with the documents above indexed as ``docs`` (chunks of
    400 characters, no overlap)."""
    from pathlib import Path

    from core.knowledge.indexer import Indexer
    from core.workspace import Workspace

    base = Path(str(root))
    docs = base / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, "utf-8")
    workspace = Workspace(base / "data")
    kb = workspace.store.create("docs")
    workspace.config.chunking.size = 400
    workspace.config.chunking.overlap = 0
    list(Indexer(kb, workspace.embedder, workspace.config.chunking).run([docs]))
    return workspace


def tiny_workspace(root: object, examples: int = 6) -> object:
    """:func:`indexed_workspace` plus a dataset ``tiny`` of template-question traces (no
    model needed to make them)."""
    from core.dataset.service import generator
    from core.dataset.spec import GenerateSpec

    workspace = indexed_workspace(root)
    spec = GenerateSpec(
        kb="docs", count=examples, validation_share=0.0, unanswerable_share=0.0, seed=3
    )
    gen, _, _ = generator(workspace, "tiny", spec, None)  # type: ignore[arg-type]
    list(gen.run())
    return workspace


def share_base_weights(workspace: object, weights: object) -> None:
    """Link the session's dequantized bundled model (the ``base_weights`` fixture) into
    ``workspace``'s data dir, where training looks for it, so a run there starts without
    converting it again. Hard links where the file system allows, copies elsewhere."""
    import os
    import shutil
    from pathlib import Path

    from core.training.base_models import resolve_base

    target = resolve_base("default", workspace.layout).hf_dir  # type: ignore[attr-defined]
    if target.exists():
        return

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    part = target.with_name(target.name + ".part")
    shutil.copytree(Path(str(weights)), part, copy_function=link)
    os.replace(part, target)


def hold_out_fewest(workspace: object, dataset: str, keep: int) -> None:
    """Put the questions of the document with the fewest of them in ``dataset``'s
    validation split, the rest in train, and check at least ``keep`` stay in train.

    Which generated questions pass the checks varies a little from run to run, and a split
    drawn by hash depends on the documents' absolute paths (the temp folder's name): a
    test that trains needs a split that is the same every run."""
    from collections import Counter

    from core.dataset.storage import DatasetStore

    store = DatasetStore(workspace.layout.datasets)  # type: ignore[attr-defined]
    data = store.open(dataset)
    examples = data.examples()
    counts = Counter(str(e.get("source", "")) for e in examples)
    held = min(counts, key=lambda s: (counts[s], s))
    assert len(examples) - counts[held] >= keep, counts
    data.rewrite_examples(
        [{**e, "split": "validation" if e.get("source") == held else "train"} for e in examples]
    )
