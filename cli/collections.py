"""collection: named sets of library files (a reel, a spotting session, a client's picks):
list, show, create, add, remove, rename, export (a folder copy), delete."""

from __future__ import annotations

import argparse
from typing import Any

from cli.output import print_listing, print_results
from cli.parser import open_library


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "collection", parents=[common], help="list, show and edit collections of files"
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    p.set_defaults(func=cmd_list, json=False)

    a = actions.add_parser("list", parents=[common], help="collections with their file counts")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_list)

    a = actions.add_parser("show", parents=[common], help="the files of a collection")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_show)

    a = actions.add_parser("add", parents=[common], help="add files (made when new)")
    a.add_argument("name", metavar="NAME")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.set_defaults(func=cmd_add)

    a = actions.add_parser("remove", parents=[common], help="take files out of a collection")
    a.add_argument("name", metavar="NAME")
    a.add_argument("files", nargs="+", metavar="FILE")
    a.set_defaults(func=cmd_remove)

    a = actions.add_parser("create", parents=[common], help="make an empty collection")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=cmd_create)

    a = actions.add_parser("rename", parents=[common], help="give a collection another name")
    a.add_argument("name", metavar="NAME")
    a.add_argument("new_name", metavar="NEW_NAME")
    a.set_defaults(func=cmd_rename)

    a = actions.add_parser(
        "export", parents=[common], help="copy a collection's files into a folder"
    )
    a.add_argument("name", metavar="NAME")
    a.add_argument("folder", metavar="FOLDER")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_export)

    a = actions.add_parser("delete", parents=[common], help="forget a collection (not its files)")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=cmd_delete)


def cmd_list(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        collections = library.collections()
    empty = "no collections: sonarium collection add NAME FILE..."
    print_listing(collections, args.json, empty, lambda c: f"{c['files']:7d} files  {c['name']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        results = library.collection(args.name)
    print_results(results, args.json)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        count = library.add_to_collection(args.name, args.files)
    print(f"{args.name.strip()}: {count} files")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        removed = library.remove_from_collection(args.name, args.files)
    print(f"{args.name}: {removed} files taken out (still in the library)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        library.delete_collection(args.name)
    print(f"deleted the collection {args.name} (its files stay in the library)")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        library.create_collection(args.name)
    print(f"collection {args.name.strip()} is there (add files: sonarium collection add)")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        library.rename_collection(args.name, args.new_name)
    print(f"renamed the collection {args.name} to {args.new_name.strip()}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cli.output import print_json, printable

    with open_library(args) as library:
        result = library.export_collection(args.name, args.folder)
    if args.json:
        print_json(result)
    else:
        for f in result["failed"]:
            print(f"not copied: {printable(f['path'])}: {printable(f['error'])}")
        print(f"copied {len(result['copied'])} files into {printable(args.folder)}")
    return 1 if result["failed"] else 0
