"""meta: a file's editable metadata; set fields on many files, undo/redo, write into files,
CSV export/import. rename: files to UCS names, with a preview and undo."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import ProgressBar, print_json, printable
from cli.parser import open_library
from engine.catalog.fields import FIELDS

ACTIONS = ("show", "set", "write", "undo", "redo", "history", "export", "import", "categories")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "meta", parents=[common],
        help="show and edit files' metadata, write it into the files (meta FILE shows one)",
    )  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")

    a = actions.add_parser("show", parents=[common], help="a file's fields and edits")
    a.add_argument("file", metavar="FILE")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_show)

    a = actions.add_parser(
        "set", parents=[common], help="set fields of files in the catalog (one undoable batch)"
    )
    a.add_argument("files", nargs="+", metavar="FILE")
    a.add_argument(
        "--field", action="append", required=True, metavar="NAME=VALUE", type=_assignment,
        help=f"a field and its value ('' clears); fields: {', '.join(FIELDS)}",
    )  # fmt: skip
    a.add_argument("--append", action="store_true", help="add to what the fields hold")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_set)

    a = actions.add_parser(
        "write", parents=[common], help="write the catalog's metadata into the audio files"
    )
    a.add_argument("files", nargs="*", metavar="FILE")
    a.add_argument("--all", action="store_true", help="every file with edits not yet written")
    a.add_argument("--dry-run", action="store_true", help="list what would be written")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_write)

    for name, func, text in (
        ("undo", cmd_undo, "take back the newest batch of edits"),
        ("redo", cmd_redo, "apply again the batch undone last"),
    ):
        a = actions.add_parser(name, parents=[common], help=text)
        a.add_argument("--json", action="store_true")
        a.set_defaults(func=func)

    a = actions.add_parser(
        "export", parents=[common], help="the metadata of the library (or a query) as CSV"
    )
    a.add_argument("out", metavar="OUT.csv")
    a.add_argument("query", nargs="*", metavar="QUERY", help="only this query's matches")
    a.set_defaults(func=cmd_export)

    a = actions.add_parser(
        "import", parents=[common], help="metadata from a CSV: preview, then --apply"
    )
    a.add_argument("csv", metavar="IN.csv")
    a.add_argument("--apply", action="store_true", help="make the changes (one undoable batch)")
    a.add_argument("--write", action="store_true", help="then write the changed files")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_import)

    a = actions.add_parser(
        "categories", parents=[common], help="the UCS categories of the library's files"
    )
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_categories)

    a = actions.add_parser("history", parents=[common], help="the newest batches of edits")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_history)
    p.set_defaults(func=lambda args: _usage(p))


def register_rename(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "rename", parents=[common],
        help="rename files to UCS names (a preview; --apply renames, --undo takes it back)",
    )  # fmt: skip
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--ucs", action="store_true", required=False,
                   help="CatID_FXName_CreatorID_SourceID.ext from the files' fields")  # fmt: skip
    p.add_argument("--creator", metavar="ID", help="CreatorID for files that have none")
    p.add_argument("--source", metavar="ID", help="SourceID for files that have none")
    p.add_argument("--apply", action="store_true", help="rename (else only the preview)")
    p.add_argument("--undo", action="store_true", help="give the last renamed batch its names")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rename)


def cmd_rename(args: argparse.Namespace) -> int:
    import os

    if args.undo:
        with open_library(args) as library:
            result = library.undo_rename()
        if args.json:
            print_json(result)
        elif result is None:
            print("nothing to undo")
        else:
            print(f"gave {result['renamed']} files back their names (batch {result['batch']})")
            for f in result["failed"]:
                print(f"not renamed back: {printable(f['path'])}: {printable(f['error'])}")
        return 0
    if not args.ucs or not args.files:
        print("usage: sonarium rename --ucs FILE... [--apply] (or --undo)")
        return 2
    with open_library(args) as library:
        out = library.rename_ucs(
            args.files, apply=args.apply, creator=args.creator, source=args.source
        )
    if args.json:
        print_json(out)
        return 0
    for entry in out["plan"]:
        old = printable(os.path.basename(entry["old"]))
        if entry["action"] == "rename":
            print(f"{old} -> {printable(os.path.basename(entry['new']))}")
        elif entry["action"] == "skip":
            print(f"{old}: not renamed: {entry['reason']}")
    counts = {a: sum(e["action"] == a for e in out["plan"]) for a in ("rename", "keep", "skip")}
    print(f"{counts['rename']} to rename, {counts['keep']} named so already, "
          f"{counts['skip']} not renamed")  # fmt: skip
    if "result" in out:
        result = out["result"]
        for f in result["failed"]:
            print(f"not renamed: {printable(f['path'])}: {printable(f['error'])}")
        print(f"renamed {result['renamed']} files (batch {result['batch']}; "
              "'sonarium rename --undo' takes it back)")  # fmt: skip
    elif counts["rename"]:
        print("nothing renamed yet: add --apply")
    return 0


def register_suggest(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "suggest", parents=[common],
        help="UCS categories for files, from how they sound and their words (--accept sets them)",
    )  # fmt: skip
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--uncategorised", action="store_true",
                   help="every file of the library without a CatID")  # fmt: skip
    p.add_argument(
        "--accept",
        action="store_true",
        help="set each file's CatID to its best suggestion (one undoable batch)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="P",
        help="with --accept: only suggestions at least this sure (0 to 1)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_suggest)


def cmd_suggest(args: argparse.Namespace) -> int:
    if not args.files and not args.uncategorised:
        print("name the files, or --uncategorised for every file without a CatID")
        return 2
    with open_library(args) as library:
        found = library.suggest_categories(None if args.uncategorised else args.files)
        paths = {i: library.catalog.file_by_id(i)["path"] for i in found}
        accepted = None
        if args.accept:
            chosen = {i: s[0] for i, s in found.items()
                      if s and s[0]["confidence"] >= args.min_confidence}  # fmt: skip
            accepted = library.accept_suggestions(chosen)
    if args.json:
        print_json({"suggestions": [{"path": paths[i], "suggestions": s} for i, s in found.items()],
                    "accepted": accepted})  # fmt: skip
        return 0
    for file_id, suggestions in found.items():
        shown = "  ".join(
            f"{s['catid']}"
            + (f" ({s['category']}/{s['subcategory']})" if s["category"] else "")
            + f" {s['confidence']:.2f}"
            for s in suggestions
        )
        print(f"{printable(paths[file_id])}: {shown}")
    if not found:
        print("no suggestions (files without embedded sounds get none: scan first)")
    if accepted is not None:
        print(f"set the CatID of {accepted['files']} files (batch {accepted['batch']}; "
              "'sonarium meta undo' takes it back)")  # fmt: skip
    return 0


def with_default_action(argv: list[str]) -> list[str]:
    """``meta FILE`` means ``meta show FILE``: the action inserted where it is left out."""
    for i, token in enumerate(argv):
        if token != "meta" or (i and argv[i - 1].startswith("-") and argv[i - 1] != "-v"
                               and argv[i - 1] != "--verbose"):  # fmt: skip
            continue
        rest = argv[i + 1 :]
        if rest and rest[0] not in ACTIONS and not rest[0].startswith("-"):
            return [*argv[: i + 1], "show", *rest]
        return argv
    return argv


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return name.strip(), value


def cmd_show(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        meta = library.metadata(args.file)
    if args.json:
        print_json(meta)
        return 0
    print(printable(meta["path"]))
    for name, value in meta["fields"].items():
        edit = meta["edits"].get(name)
        mark = ""
        if edit is not None:
            written = edit["written_at"] is not None and edit["written_at"] >= edit["edited_at"]
            mark = f"  (edited by {edit['editor']}, {'written' if written else 'not written yet'})"
        if value or edit is not None:
            print(f"{FIELDS[name].label:>28}: {printable(value)}{mark}")
    if meta["pending_write"]:
        print("edits not in the file yet: sonarium meta write FILE")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    changes = dict(args.field)
    with open_library(args) as library:
        result = library.edit(args.files, changes, append=args.append)
    if args.json:
        print_json(result)
        return 0
    if result["batch"] is None:
        print("nothing changed (the files already say so)")
    else:
        print(f"{result['changes']} changes to {result['files']} files (batch {result['batch']}; "
              "'sonarium meta undo' takes it back)")  # fmt: skip
    if "write" in result:
        _print_write(result["write"], False)
    return 0


def cmd_write(args: argparse.Namespace) -> int:
    if not args.files and not args.all:
        print("name the files to write, or --all for every file with edits not yet written")
        return 2
    with open_library(args) as library, ProgressBar(args.json, "writing") as bar:
        result = library.write_metadata(
            None if args.all and not args.files else args.files,
            dry_run=args.dry_run,
            progress=lambda done, total, path: bar.update(_Progress(done, total)),
        )
    if args.json:
        print_json(result)
        return 1 if result["failed"] else 0
    _print_write(result, args.dry_run)
    return 1 if result["failed"] else 0


class _Progress:
    """What ProgressBar reads from a snapshot."""

    def __init__(self, done: int, total: int) -> None:
        self.files_done, self.files_total = done, total


def _print_write(result: dict[str, Any], dry_run: bool) -> None:
    if dry_run:
        for path in result["pending"]:
            print(f"would write {printable(path)}")
        print(f"{len(result['pending'])} files would be written")
        return
    for failure in result["failed"]:
        print(f"not written: {printable(failure['error'])}")
    print(f"{len(result['written'])} files written, {len(result['failed'])} not")


def cmd_undo(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        result = library.undo_edit()
    return _print_batch(args, result, "undid", "nothing to undo")


def cmd_redo(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        result = library.redo_edit()
    return _print_batch(args, result, "redid", "nothing to redo")


def _print_batch(args: argparse.Namespace, result: dict | None, verb: str, empty: str) -> int:
    if args.json:
        print_json(result)
    elif result is None:
        print(empty)
    else:
        print(f"{verb} batch {result['batch']}: {result['changes']} changes to "
              f"{result['files']} files (write them into the files again: sonarium meta "
              "write --all)")  # fmt: skip
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    import time

    with open_library(args) as library:
        batches = library.edit_history()
    if args.json:
        print_json(batches)
        return 0
    if not batches:
        print("no edits yet: sonarium meta set FILE... --field NAME=VALUE")
    for b in batches:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(b["at"]))
        state = " (undone)" if b["undone"] else ""
        print(f"batch {b['batch']}  {when}  {printable(b['editor'])}: "
              f"{b['changes']} changes, {b['files']} files{state}")  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    query = " ".join(args.query) or None
    with open_library(args) as library:
        rows = library.export_metadata(args.out, query)
    print(f"{rows} files written to {printable(args.out)}")
    return 0


PREVIEW_LINES = 50  # changes listed before "... and N more"


def cmd_import(args: argparse.Namespace) -> int:
    if args.write and not args.apply:
        print("--write needs --apply (look at the preview first: run without either)")
        return 2
    with open_library(args) as library:
        plan = library.import_metadata(args.csv, apply=args.apply, write=args.write)
    if args.json:
        print_json(plan)
        return 0
    for change in plan["preview"][:PREVIEW_LINES]:
        print(f"{printable(change['path'])}: {change['field']}: "
              f"{printable(change['old']) or '(empty)'} -> {printable(change['new'])}")  # fmt: skip
    if len(plan["preview"]) > PREVIEW_LINES:
        print(f"... and {len(plan['preview']) - PREVIEW_LINES} more changes")
    for row in plan["unmatched"][:PREVIEW_LINES]:
        print(f"line {row['line']}: not matched: {printable(row['name'])} ({row['reason']})")
    for row in plan["invalid"][:PREVIEW_LINES]:
        print(f"line {row['line']}: not imported: {printable(row['reason'])}")
    if plan["ignored"]:
        print(f"columns that are no field (ignored): {', '.join(plan['ignored'])}")
    print(f"{plan['rows']} rows: {plan['matched']} matched, {len(plan['unmatched'])} not; "
          f"{len(plan['preview'])} changes to {plan['files']} files")  # fmt: skip
    if not args.apply:
        if plan["preview"]:
            print("nothing changed yet: add --apply to make these changes (--write too)")
    elif plan.get("batch"):
        print(f"applied as batch {plan['batch']} ('sonarium meta undo' takes it back)")
    if "write" in plan:
        _print_write(plan["write"], False)
    return 0


def cmd_categories(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        rows = library.ucs_categories()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no file has a UCS category yet (meta set, rename --ucs, or suggest --accept)")
    for r in rows:
        names = "/".join(n for n in (r["category"], r["subcategory"]) if n)
        print(f"{r['files']:7d}  {r['catid']:<14} {printable(names)}")
    return 0
