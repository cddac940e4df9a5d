"""`cotrag kb reembed | versions | switch | remove-version`: a knowledge base's vector versions."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from core.cli.terminal import ProgressLine, confirm, ctrl_c_cancels
from core.knowledge import service
from core.knowledge.reembed import ReembedProgress

if TYPE_CHECKING:
    from core.workspace import Workspace


def add_version_parsers(kb_sub: Any) -> None:
    p = kb_sub.add_parser(
        "reembed",
        help="re-embed with another embedder into a new version, then switch to it",
        description="Builds a new version of the knowledge base's vectors while the current "
        "one keeps serving; switches when it is complete and checked. Ctrl-C stops it: run the "
        "same command again to continue. The old version stays until you remove it.",
    )
    p.add_argument("name", help="the knowledge base")
    p.add_argument(
        "--embedder", required=True, help="a tuned embedder (`cotrag embedders`) or default"
    )
    p.add_argument(
        "--no-switch", action="store_true", help="build the version, do not switch to it"
    )
    p = kb_sub.add_parser("versions", help="the versions of a knowledge base's vectors")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = kb_sub.add_parser("switch", help="make another version serve (e.g. undo a re-embed)")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p = kb_sub.add_parser("remove-version", help="delete a version's vectors to free space")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def cmd_kb_versions(ws: Workspace, args: argparse.Namespace) -> int:
    if args.kb_command == "versions":
        found = service.versions(ws, args.name)
        if args.json:
            print(json.dumps(found.record.to_json(), indent=2))
            return 0
        for row in found.rows:
            mark = "*" if row.serving else " "
            count = (
                f"{row.chunks} chunks"
                if row.state == "ready"
                else (f"{row.done} chunks so far" if row.state == "building" else "")
            )
            print(f"{mark} v{row.number}  {row.state:9} {row.embedder:28} {count:18} {row.created}")
        return 0
    if args.kb_command == "switch":
        version = service.switch(
            ws, args.name, args.version, on_progress=_printer(ProgressLine(sys.stderr))
        )
        print(f"{args.name!r} is now served by version {version.number} ({version.embedder}).")
        return 0
    if args.kb_command == "remove-version":
        service.serving(ws, args.name)  # a missing knowledge base is said before the question
        if not args.yes and not confirm(
            f"Delete version {args.version} of {args.name!r} (its vectors; switching back to it "
            "will no longer be possible)?"
        ):
            return 1
        service.remove_version(ws, args.name, args.version)
        print(f"Removed version {args.version} of {args.name!r}.")
        return 0
    # reembed
    embedder = "" if args.embedder == "default" else args.embedder
    serving = service.serving(ws, args.name).number  # a clear error before Ctrl-C is taken
    cancel = threading.Event()
    bar = ProgressLine(sys.stderr)
    try:
        with ctrl_c_cancels(cancel):
            result = service.reembed(
                ws,
                args.name,
                embedder,
                on_progress=_printer(bar),
                cancel=cancel,
                switch=not args.no_switch,
            )
    finally:
        bar.clear()
    v = result.version
    if result.cancelled:
        print(
            f"Stopped; version {v.number} is kept half-built and the old version serves. "
            f"Continue with: cotrag kb reembed {args.name!r} --embedder {args.embedder}",
            file=sys.stderr,
        )
        return 130
    rate = result.embedded / result.seconds if result.seconds else 0.0
    print(
        f"Embedded {result.embedded} chunks in {result.seconds:.0f} s ({rate:.0f}/s)."
        + (
            f" {args.name!r} is now served by version {v.number} ({v.embedder}); switch back "
            f"with: cotrag kb switch {args.name!r} {serving}"
            if result.switched
            else f" Version {v.number} is ready; switch with: cotrag kb switch {args.name!r} {v.number}"
        )
    )
    return 0


def _printer(bar: ProgressLine) -> Any:
    def show(p: ReembedProgress) -> None:
        if p.stage == "waiting":
            bar.update(0, 1, "waiting for indexing to finish…")
        elif p.total:
            bar.update(p.done, p.total, f"{p.stage}: {p.done}/{p.total} chunks")

    return show
