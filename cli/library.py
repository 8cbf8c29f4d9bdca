"""info, folders, remove, errors, settings: what the library holds and how it is set up."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import format_duration, print_json, print_listing, printable
from cli.parser import open_library


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", parents=[common], help="show what is known about a file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("check", parents=[common], help="verify the catalog and its side files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("folders", parents=[common], help="list library folders")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_folders)

    p = sub.add_parser("remove", parents=[common], help="remove a folder from the library")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("errors", parents=[common], help="list files that could not be read")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_errors)

    p = sub.add_parser("settings", parents=[common], help="show or change library settings")
    p.add_argument("--ucs-table", metavar="FILE", help="UCS table (JSON/CSV); '' to clear")
    p.set_defaults(func=cmd_settings)


def cmd_info(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        info = library.info(args.file)
    if args.json:
        print_json(info)
        return 0
    for key, value in info.items():
        if value is None or value == {} or value == []:
            continue
        if key == "duration":
            value = format_duration(value)
        print(f"{key:>18}: {printable(value)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        result = library.check()
    if args.json:
        print_json(result)
        return 0 if result["ok"] else 1
    counts = result["counts"]
    print(
        f"catalog: {'ok' if result['ok'] else 'DAMAGED'} ({counts['files']} files, "
        f"{counts['errors']} unreadable, {counts['offline']} offline)"
    )
    for problem in result["catalog"]:
        print(f"  {printable(problem)}")
    for name, state in result["side_files"].items():
        print(f"{name}: {printable(state)}")
    if not result["ok"]:
        restore = f"restore {result['backup']}, or " if result["backup"] else ""
        print(
            f"the catalog is damaged: {restore}save what you can with sqlite3's .recover into "
            "a new catalog.sqlite, or move it away and rescan (tags and favorites live in it)"
        )
        return 1
    return 0


def cmd_folders(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        folders = library.folders()
    print_listing(
        folders, args.json, "no folders: sonarium add PATH",
        lambda f: f"{f['files']:7d} files ({f['errors']} unreadable, "
        f"{f['duration'] / 3600:.1f} h)  {printable(f['path'])}"
        + (f"  (offline: {f['offline']} files kept)" if f["offline"] else ""),
    )  # fmt: skip
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        removed = library.remove_folder(args.path)
    print(f"removed {printable(args.path)} ({removed} files forgotten; nothing deleted from disk)")
    return 0


def cmd_errors(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        errors = library.errors()
    print_listing(
        errors, args.json, "no unreadable files", lambda e: f"{e['path']}\n    {e['error']}"
    )
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from engine import config

    with open_library(args) as library:
        if args.ucs_table is not None:
            library.set_ucs_table(args.ucs_table or None)
            print("UCS table " + ("cleared" if not args.ucs_table else f"set: {args.ucs_table}"))
            print("run 'sonarium scan' to apply it to files already scanned")
        print(f"library: {library.dir}")
        print(f"ucs_table: {library.ucs_table_path() or '(none)'}")
    for s in config.SETTINGS.values():
        if s.env and s.name != "library":  # the library in use is printed above
            print(f"{s.name}: {config.value(s.name) or '(default)'}  (${s.env})")
    return 0
