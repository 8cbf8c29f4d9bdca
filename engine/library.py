"""The engine's façade: one library folder, its catalog, indexing, search and evaluation.

The CLI (cli/) and the GUI (gui/, through its bridge and its indexing child process
engine/index_worker.py) call only this class. A Library belongs to the thread that
created it (it holds a SQLite connection): the GUI runs one on its query thread and one
in the indexing process; the CLI runs one on the main thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import config
from engine.catalog.db import Catalog
from engine.catalog.paths import catalog_path, os_path, resolve_library_dir, shown, to_catalog
from engine.config import DEFAULT_SIMILAR_SPACE, SPACE_NAMES
from engine.errors import (
    Cancelled,
    FileUnreadable,
    LibraryError,
    ModelUnavailable,
    NothingToLearn,
    NotIndexed,
    SonariumError,
)
from engine.scan.analyze import FileChanged, FileVanished, analyze
from engine.scan.peaks import decode_peaks
from engine.scan.scanner import Scanner, ScanProgress, ScanReport
from engine.scan.ucs import UcsTable
from engine.search.keyword import SearchResult, keyword_search, results_for_ids

if TYPE_CHECKING:
    from engine.adapt.adapter import Adapter
    from engine.embed.pipeline import EmbedProgress, EmbedReport
    from engine.search.similar import SimilarIndex

# torch, torchaudio and faiss load on first use of embedding features, so keyword
# search and scanning start fast.

log = logging.getLogger(__name__)

UCS_TABLE_SETTING = "ucs_table"


@dataclass
class IndexReport:
    """What :meth:`Library.index` did, stage by stage.

    ``embed`` is None when embedding was not asked for, was skipped (the scan was
    cancelled) or no model is available (then ``no_model`` is True). ``learned`` is the
    adapter when text search was relearned; ``learn_skipped`` says why it was not when
    the library had too little to learn from (a normal state for a new library).
    """

    roots: list[str]
    scan: ScanReport
    embed: EmbedReport | None = None
    no_model: bool = False
    learned: Adapter | None = None
    learn_skipped: str | None = None
    cancelled: bool = False


# progress(stage, snapshot): stage is "scanning", "embedding" or "learning-<part>"; the
# snapshot is a ScanProgress, EmbedProgress or AdaptProgress (files_done, files_total).
IndexProgress = Callable[[str, Any], None]


class Library:
    """A sound library stored in `library_dir` (default: SONARIUM_LIBRARY or user data)."""

    def __init__(self, library_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = resolve_library_dir(library_dir)
        self.catalog = Catalog(catalog_path(self.dir))
        self._ucs_table: UcsTable | None = None
        self._ucs_loaded_from: str | None = None
        self._similar: SimilarIndex | None = None
        self._text_space: Any = None
        self._base: Any = None  # BaseKnowledge, False when there is none
        # Whether the shipped base knowledge joins text search (eval --no-base: off).
        self.use_base = True
        self._text_space_key: Any = None
        self._adapter_override: Any = None
        # The CLI learns text search on first use when no adapter exists yet; the desktop
        # app leaves that to its indexing process and searches by keyword meanwhile.
        self.adapt_on_demand = True

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders -----------------------------------------------------------------------

    def add_folders(self, paths: list[str | os.PathLike[str]]) -> list[str]:
        """Register folders (OS paths; stored absolute and resolved); returns their catalog
        paths. Does not scan."""
        added = []
        for raw in paths:
            path = Path(raw).expanduser()
            if not path.is_dir():
                raise LibraryError(f"not a folder: {shown(to_catalog(raw))}")
            resolved = to_catalog(str(path.resolve()))
            for root in self.catalog.roots():
                if _is_inside(resolved, root["path"]) and resolved != root["path"]:
                    raise LibraryError(
                        f"{shown(resolved)} is already in the library under {shown(root['path'])}"
                    )
            root_id = self.catalog.add_root(resolved)
            self._absorb_nested_roots(resolved, root_id)
            added.append(resolved)
        return added

    def _absorb_nested_roots(self, parent: str, parent_id: int) -> None:
        # Adding a parent of existing roots: their files (and tags) move under it.
        with self.catalog.transaction() as c:
            for root in self.catalog.roots():
                if root["id"] != parent_id and _is_inside(root["path"], parent):
                    c.execute(
                        "UPDATE files SET root_id = ? WHERE root_id = ?", (parent_id, root["id"])
                    )
                    c.execute("DELETE FROM roots WHERE id = ?", (root["id"],))

    def remove_folder(self, path: str | os.PathLike[str]) -> int:
        """Forget a root folder and its files (the files on disk are untouched)."""
        roots = {r["path"] for r in self.catalog.roots()}
        target = os.fspath(path)  # a catalog path, as `folders` lists them
        if target not in roots:
            target = to_catalog(str(Path(path).expanduser().resolve()))  # or an OS path
        if target not in roots:
            raise LibraryError(f"not a library folder: {shown(to_catalog(path))}")
        return self.catalog.remove_root(target)

    def folders(self) -> list[dict[str, Any]]:
        return self.catalog.roots()

    def subfolders(self, folder: str) -> list[tuple[str, int]]:
        """Browsing: the folders directly inside `folder` (a library folder or one
        below it) with their file counts."""
        return self.catalog.subfolders(folder)

    def results_for_paths(self, paths: list[str]) -> list[SearchResult]:
        """The library's files among `paths`, as results in that order (the recently
        auditioned list)."""
        ids = []
        for path in paths:
            row = self.catalog.file_by_path(path)
            if row is not None:
                ids.append(int(row["id"]))
        return results_for_ids(self.catalog, ids)

    # -- scanning ----------------------------------------------------------------------

    def scan(
        self,
        roots: list[str] | None = None,
        *,
        progress: Callable[[ScanProgress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        workers: int | None = None,
        retry_errors: bool = False,
        forget_missing: bool = False,
    ) -> ScanReport:
        """Bring the catalog up to date with the folders on disk; ``retry_errors`` reads
        unreadable files again even when unchanged; ``forget_missing`` forgets files whose
        folders are gone instead of keeping them offline. Call on the owning thread."""
        scanner = Scanner(
            self.catalog, ucs_table=self.ucs_table(), workers=workers,
            progress=progress, cancel=cancel, pause=pause, retry_errors=retry_errors,
            forget_missing=forget_missing,
        )  # fmt: skip
        return scanner.scan(roots)

    def embed(
        self,
        space_names: tuple[str, ...] | None = None,
        *,
        device: str = "auto",
        progress: Callable[[EmbedProgress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        cluster: str | None = None,
        path_map: tuple[str, ...] = (),
    ) -> EmbedReport | None:
        """Embed pending files into the available spaces; None when no space is available.

        ``cluster`` ("ray" or "ray:ADDRESS") decodes and embeds on a Ray cluster whose
        workers read the files where ``path_map`` ("LOCAL=WORKER" prefixes) says; this
        process still writes the catalog (engine/embed/cluster.py)."""
        from engine.embed.pipeline import Embedder
        from engine.models.spaces import available_spaces

        spaces = available_spaces(space_names or SPACE_NAMES, device)
        if not spaces:
            return None
        if cluster is not None:
            from engine.embed.cluster import ClusterEmbedder, PathMap, parse_cluster

            return ClusterEmbedder(
                self.catalog, spaces, address=parse_cluster(cluster),
                path_map=PathMap.parse(path_map), device=device, progress=progress,
                cancel=cancel,
            ).run()  # fmt: skip
        return Embedder(self.catalog, spaces, progress=progress, cancel=cancel, pause=pause).run()

    def index(
        self,
        add: list[str | os.PathLike[str]] | None = None,
        *,
        roots: list[str] | None = None,
        embed: bool = True,
        spaces: tuple[str, ...] | None = None,
        device: str = "auto",
        progress: IndexProgress | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        retry_errors: bool = False,
        forget_missing: bool = False,
        cluster: str | None = None,
        path_map: tuple[str, ...] = (),
    ) -> IndexReport:
        """Scan -> embed -> learn text search when stale: the one indexing sequence.

        Registers the folders in ``add`` first and then scans only those (else ``roots``,
        else every folder). Embeds pending files into ``spaces`` (default: every space
        available here) unless ``embed`` is False or the scan was cancelled, then relearns
        text search over sound when the library changed and the default find-similar
        space was embedded. Each stage resumes where a cancelled or killed run stopped.
        ``retry_errors``: files that could not be read or embedded are tried again (else
        only files that changed are). ``forget_missing``: see scan. ``cluster`` and
        ``path_map``: see embed (the path map is checked before the scan starts).
        The CLI and the app's indexing process both call this; call on the owning thread.
        """
        cancel = cancel or threading.Event()
        if cluster is None:
            from engine.config import cluster_setting

            cluster, path_map = cluster_setting()  # the app's Settings, SONARIUM_CLUSTER
        if cluster is not None:
            from engine.embed.cluster import PathMap, parse_cluster

            parse_cluster(cluster), PathMap.parse(path_map)  # a typo fails before the scan
        if add:
            roots = self.add_folders(add)

        def staged(stage: str) -> Callable[[Any], None] | None:
            if progress is None:
                return None
            return lambda snapshot: progress(stage, snapshot)

        scan = self.scan(
            roots, progress=staged("scanning"), cancel=cancel, pause=pause,
            retry_errors=retry_errors, forget_missing=forget_missing,
        )  # fmt: skip
        if retry_errors:
            self.catalog.clear_embed_errors()
        report = IndexReport(list(roots or []), scan, cancelled=scan.cancelled)
        if not embed or report.cancelled:
            return report
        report.embed = self.embed(
            spaces, device=device, progress=staged("embedding"), cancel=cancel, pause=pause,
            cluster=cluster, path_map=path_map,
        )  # fmt: skip
        if report.embed is None:
            report.no_model = True
            return report
        report.cancelled = report.embed.cancelled or cancel.is_set()
        if not report.cancelled:
            self._save_indexes()
        wanted = spaces or SPACE_NAMES
        if report.cancelled or DEFAULT_SIMILAR_SPACE not in wanted or not self.adapter_stale():
            return report

        def learning(snapshot: Any) -> None:
            if progress is not None:
                progress(f"learning-{snapshot.stage}", snapshot)

        try:
            report.learned = self.adapt(progress=learning, cancel=cancel.is_set)
        except Cancelled:
            report.cancelled = True
        except (NothingToLearn, ModelUnavailable) as exc:
            report.learn_skipped = str(exc)
            if isinstance(exc, NothingToLearn) and self.base_knowledge() is not None:
                report.learn_skipped += (
                    "; until then, text search uses the base knowledge shipped with Sonarium"
                )
        return report

    # -- find similar ------------------------------------------------------------------

    def similar(
        self,
        path: str | os.PathLike[str],
        *,
        start: float | None = None,
        end: float | None = None,
        limit: int = 20,
        space: str = DEFAULT_SIMILAR_SPACE,
        device: str = "auto",
    ) -> list[SearchResult]:
        """Files that sound like `path` (a library file, a region of it, or any audio file),
        best first, each with its best-matching moment when the space has windows."""
        import soundfile as sf

        from engine.catalog.vectors import VectorStore
        from engine.models import model_thread
        from engine.search.similar import best_moments, embed_clip, online_hits, to_results

        for bound in (start, end):
            if bound is not None and not (math.isfinite(bound) and bound >= 0):
                raise LibraryError(f"a region is given in seconds from 0, not {bound}")
        if start is not None and end is not None and end <= start:
            raise LibraryError("the region must end after it starts")
        index = self._similar_index()
        space_id = index.space_id(space)
        row, stored = self._locate(path)
        vector = None
        if row is not None and start is None and end is None:
            vector = VectorStore(self.catalog).file_vector(space_id, row["id"])
        if vector is None:
            if not os.path.isfile(os_path(stored)):
                raise FileUnreadable(f"no such file: {shown(stored)}")
            try:
                # Decoding and resampling use torch too: all of it on the model thread.
                space_ = self._space(space, device)
                vector = model_thread.run(embed_clip, space_, stored, start, end)
            except FileUnreadable:
                raise
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise FileUnreadable(f"cannot read {shown(stored)}: {exc}") from exc
        exclude = {row["id"]} if row is not None and start is None and end is None else set()
        hits = online_hits(self.catalog, lambda k: index.nearest(space, vector, k, exclude), limit)
        store = VectorStore(self.catalog)
        moments = best_moments(store, space_id, [fid for fid, _ in hits], vector)
        return to_results(self.catalog, hits, moments)

    def similar_ids(self, file_id: int, limit: int, space: str) -> list[int] | None:
        """Ranked ids of the files nearest to a catalog file's stored vector (for eval)."""
        from engine.catalog.vectors import VectorStore

        index = self._similar_index()
        space_id = index.space_id(space)
        vector = VectorStore(self.catalog).file_vector(space_id, file_id)
        if vector is None:
            return None
        return [fid for fid, _ in index.nearest(space, vector, limit, {file_id})]

    def _save_indexes(self) -> None:
        """Bring each space's saved search index up to date with the catalog, here in
        the indexing process: the app that opens the library next loads it instead of
        building it (minutes at a million files; meanwhile the running app follows
        the changes in memory, engine/search/similar.py)."""
        for name in self._embedded_spaces():
            self._similar_index().save(name)

    def _embedded_spaces(self) -> list[str]:
        """The names of the spaces that hold at least one vector."""
        from engine.catalog.vectors import VectorStore

        store = VectorStore(self.catalog)
        rows = self.catalog.query("SELECT id, name FROM spaces")
        return [row["name"] for row in rows if store.embedded_count(row["id"])]

    def _similar_index(self) -> SimilarIndex:
        from engine.search.similar import SimilarIndex

        if self._similar is None:
            self._similar = SimilarIndex(self.catalog, self.dir)
        return self._similar

    def _space(self, name: str, device: str):
        """The process-wide model instance for a space (cached by shared_space)."""
        from engine.models.spaces import shared_space

        try:
            return shared_space(name, device)
        except SonariumError:
            raise
        except Exception as exc:  # a model that fails to build is unavailable here
            raise ModelUnavailable(f"the {name} model cannot be used: {exc}") from exc

    # -- search and info ---------------------------------------------------------------

    def search(
        self,
        query: str,
        limit: int = 100,
        offset: int = 0,
        *,
        mode: str = "auto",
    ) -> list[SearchResult]:
        """Search by words and filters; raises engine.search.query.QueryError for a malformed query.

        mode "auto" blends content and keyword ranking when a text-to-audio space is
        available (else keyword only), "keyword" ignores sound, "content" ignores names
        and metadata (LibraryError when no text-to-audio space is available).
        """
        if mode not in ("auto", "keyword", "content"):
            raise ValueError(f"unknown search mode {mode!r}")
        space = self.text_space() if mode != "keyword" else None
        if space is None:
            if mode == "content":
                raise NotIndexed(
                    "content search needs embedded sounds and a text model: scan the library "
                    "(the aisfx model and the sentence encoder come with the install)"
                )
            return keyword_search(self.catalog, query, limit=limit, offset=offset)
        from engine.search.hybrid import hybrid_search

        results = hybrid_search(
            self.catalog, self._similar_index(), space, query, limit=limit + offset,
            content_only=mode == "content",
        )  # fmt: skip
        return results[offset:]

    def _clap_text_space(self):
        """The CLAP space when the library has CLAP vectors made by the configured model."""
        from engine.catalog.vectors import VectorStore

        store = VectorStore(self.catalog)
        stored = store.space("clap")
        if stored is None or store.embedded_count(stored["id"]) == 0:
            return None
        try:
            from engine.models.spaces import shared_space

            space = shared_space("clap")
            # Never mix vector spaces: the query model must be the one that made the vectors.
            if space.identity() != stored["identity"]:
                log.warning("CLAP vectors are from another model; rescan to re-embed")
                return None
        except ModelUnavailable as exc:
            log.info("CLAP text search unavailable: %s", exc)
            return None
        return space

    # -- text search over sound (engine/adapt/) ----------------------------------------

    def adapter_file(self, audio_space: str = DEFAULT_SIMILAR_SPACE) -> Path:
        from engine.adapt.adapter import adapter_path

        return adapter_path(self.dir, audio_space)

    def saved_adapter(self, audio_space: str = DEFAULT_SIMILAR_SPACE):
        """The adapter saved beside the catalog, or None (missing or unreadable)."""
        from engine.adapt.adapter import Adapter

        path = self.adapter_file(audio_space)
        if not path.exists():
            return None
        try:
            return Adapter.load(path)
        except ValueError as exc:
            # Set aside, so that it counts as missing: the next index run learns again.
            log.warning("setting aside a damaged adapter, to be learned again: %s", exc)
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".damaged"))
            return None

    def adapter_stale(self, audio_space: str = DEFAULT_SIMILAR_SPACE) -> bool:
        """Whether the library changed since text search over sound was last learned."""
        from engine.adapt.adapter import is_stale, read_meta

        return is_stale(read_meta(self.adapter_file(audio_space)), self.catalog)

    def adapt(
        self,
        options: Any = None,
        *,
        audio_space: str = DEFAULT_SIMILAR_SPACE,
        progress: Callable[[Any], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ):
        """Learn text search over sound from the library's captions and save the adapter.

        Raises NothingToLearn when there is nothing (or too little) to learn from,
        ModelUnavailable without the sentence encoder, Cancelled when cancelled.
        """
        from engine.adapt.training import train_adapter

        adapter = train_adapter(
            self.catalog, audio_space, options, ucs=self.ucs_table(),
            previous=self.saved_adapter(audio_space), progress=progress, cancel=cancel,
        )  # fmt: skip
        adapter.save(self.adapter_file(audio_space))
        self._text_space = None
        return adapter

    def use_adapter(self, path: str | os.PathLike[str]) -> None:
        """Answer text queries with an adapter file trained elsewhere (--adapter)."""
        from dataclasses import replace

        from engine.adapt.adapter import Adapter

        # Its captions are lent by another library's files (their ids mean nothing here).
        self._adapter_override = replace(Adapter.load(Path(path).expanduser()), lend=None)
        self._text_space = None

    def base_knowledge(self):
        """The base knowledge shipped with Sonarium (engine/adapt/base.py), or None."""
        from engine.adapt.base import load_base

        if self._base is None:
            self._base = (load_base(DEFAULT_SIMILAR_SPACE) if self.use_base else None) or False
        return self._base or None

    def text_space(self):
        """The space text queries are embedded into, or None when there is none.

        CLAP when the library was embedded with the configured CLAP model; otherwise the
        aisfx space through an adapter learned from the library's own captions
        (engine/adapt/), blended with the base knowledge shipped with Sonarium (which
        alone answers on a library whose names say nothing); None when neither is
        available. An adapter file given with --adapter is used alone.
        """
        from engine.adapt.base import compose_text_space
        from engine.catalog.vectors import VectorStore

        clap = self._clap_text_space()
        if clap is not None:
            return clap
        space = VectorStore(self.catalog).space(DEFAULT_SIMILAR_SPACE)
        if space is None or VectorStore(self.catalog).embedded_count(space["id"]) == 0:
            return None
        path = self.adapter_file()
        key = (
            id(self._adapter_override),
            path.stat().st_mtime_ns if path.exists() else None,
            self.catalog.get_setting(UCS_TABLE_SETTING),
            VectorStore(self.catalog).generation(space["id"]),
        )
        if self._text_space is not None and key == self._text_space_key:
            return self._text_space
        adapter = self._adapter_override or self.saved_adapter()
        base = None if self._adapter_override else self.base_knowledge()
        try:
            if adapter is None and self.adapt_on_demand:
                log.warning("learning text search from the library's names (once)...")
                try:
                    adapter = self.adapt()
                    key = (key[0], path.stat().st_mtime_ns, *key[2:])
                except NothingToLearn as exc:
                    if base is None:
                        raise
                    log.info("text search from base knowledge only: %s", exc)
            self._text_space = compose_text_space(
                self.catalog, self._similar_index(), adapter, base, self.ucs_table()
            )
        except (ModelUnavailable, NothingToLearn, LibraryError) as exc:
            log.info("text search over sound unavailable: %s", exc)
            return None
        if self._text_space is None:
            return None
        self._text_space_key = key
        return self._text_space

    # -- the user's marks: favorites, tags, counts ---------------------------------------

    def set_favorite(self, file_id: int, favorite: bool) -> None:
        self.catalog.set_favorite(file_id, favorite)

    def add_tags(self, file_id: int, tags: list[str]) -> None:
        """Add tags to a file (searchable at once); blank tags are ignored."""
        self.catalog.add_tags(file_id, [t.strip() for t in tags if t.strip()])

    def counts(self) -> dict[str, int]:
        """How many files the library holds, by state (indexed, unreadable, ...)."""
        return self.catalog.counts()

    # -- metadata: edits in the catalog, written into files on purpose -----------------

    def edit(
        self,
        files: list[int | str | os.PathLike[str]],
        changes: dict[str, object],
        *,
        append: bool = False,
    ) -> dict[str, Any]:
        """Set (or append to) metadata fields of library files, as one undoable batch;
        searchable at once. A CatID from the library's UCS table also sets its category
        and subcategory when they are not given. With the write-on-edit setting the
        files are written too ("write" in the answer, as write_metadata reports).
        Returns {"batch", "files", "changes"}; a bad value is a LibraryError."""
        from engine.catalog import edits

        changes = dict(changes)
        catid = next((v for k, v in changes.items() if k.lower() in ("catid", "ucs_catid")), None)
        table = self.ucs_table()
        if catid and table is not None:
            entry = table.by_catid.get(str(catid).strip())
            if entry is None:
                raise LibraryError(f"{catid} is not a CatID of the library's UCS table")
            changes.setdefault("category", entry.category)
            changes.setdefault("subcategory", entry.subcategory)
        ids = self._file_ids(files)
        try:
            result = edits.set_fields(self.catalog, ids, changes, append=append)
        except ValueError as exc:
            raise LibraryError(str(exc)) from exc
        if result["changes"] and config.enabled("write_on_edit"):
            result["write"] = self.write_metadata(list[int | str | os.PathLike[str]](ids))
        return result

    def undo_edit(self) -> dict[str, Any] | None:
        """Take back the newest batch of edits (None when there is none)."""
        from engine.catalog import edits

        return edits.undo(self.catalog)

    def redo_edit(self) -> dict[str, Any] | None:
        """Apply again the batch of edits undone last (None when there is none)."""
        from engine.catalog import edits

        return edits.redo(self.catalog)

    def edit_history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest batches of edits, newest first."""
        from engine.catalog import edits

        return edits.history(self.catalog, limit)

    def metadata(self, path: str | os.PathLike[str] | int) -> dict[str, Any]:
        """A library file's editable fields ("fields": name -> shown value), its edits
        (who, when, written when) and whether a write into the file is pending."""
        from engine.catalog import edits

        file_id = self._file_ids([path])[0]
        row = self.catalog.file_by_id(file_id)
        assert row is not None
        mine = edits.edits_of(self.catalog, file_id)
        return {
            "id": file_id,
            "path": row["path"],
            "fields": edits.fields_of(row),
            "edits": mine,
            "pending_write": bool(edits.pending_writes(self.catalog, [file_id])),
        }

    def write_metadata(
        self,
        files: list[int | str | os.PathLike[str]] | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> dict[str, Any]:
        """Write the catalog's metadata into audio files (``files``, else every file whose
        edits are not written yet), each verified before it replaces the original.
        Returns {"written", "failed": [{"path", "error"}], "pending"}; resumable."""
        from engine.curate.batch import write_files

        ids = None if files is None else self._file_ids(files)
        return write_files(
            self.catalog, ids, keep_mtime=config.enabled("keep_mtime"), dry_run=dry_run,
            progress=progress,
        )  # fmt: skip

    def export_metadata(
        self,
        out: str | os.PathLike[str],
        query: str | None = None,
        files: list[int | str | os.PathLike[str]] | None = None,
    ) -> int:
        """Write the metadata of the library's files (or of a query's results, or of
        ``files``) to a CSV with the columns other tools use; returns the rows written."""
        from engine.curate.csv_io import QUERY_ROWS, export_csv

        ids: list[int] | None = None
        if files is not None:
            ids = self._file_ids(files)
        elif query:  # its matches, not the "more that sound alike" after them
            ids = [r.id for r in self.search(query, limit=QUERY_ROWS) if r.match]
        return export_csv(self.catalog, out, ids)

    def import_metadata(
        self, path: str | os.PathLike[str], *, apply: bool = False, write: bool = False
    ) -> dict[str, Any]:
        """Read a metadata CSV (matched by path, else file name) and say what it changes
        ("preview", "unmatched", "invalid"...: engine/curate/csv_io.plan_import); with
        ``apply`` make those changes as one undoable batch ("batch"), with ``write``
        also write the changed files ("write", as write_metadata reports)."""
        import csv

        from engine.catalog.edits import set_many
        from engine.curate.csv_io import plan_import

        try:
            plan = plan_import(self.catalog, path)
        except (OSError, ValueError, UnicodeError, csv.Error) as exc:
            raise LibraryError(f"cannot import {os.fspath(path)}: {exc}") from exc
        changes = plan.pop("changes")
        plan["files"] = len(changes)
        if apply and changes:
            plan["batch"] = set_many(self.catalog, changes)["batch"]
            if write:
                plan["write"] = self.write_metadata(list[int | str | os.PathLike[str]](changes))
        return plan

    def rename_ucs(
        self,
        files: list[int | str | os.PathLike[str]],
        *,
        apply: bool = False,
        creator: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """UCS names for files (``CatID_FXName_CreatorID_SourceID.ext``, from their
        fields; ``creator``/``source`` where a file has none): {"plan": [{"id", "old",
        "new", "action", "reason"}]}; with ``apply`` the files are renamed too ("result":
        {"batch", "renamed", "failed"}), keeping everything the catalog holds of them."""
        from engine.curate.rename import apply_renames, plan_renames

        plan = plan_renames(self.catalog, self._file_ids(files), creator=creator, source=source)
        out: dict[str, Any] = {"plan": plan}
        if apply:
            out["result"] = apply_renames(self.catalog, plan)
        return out

    def undo_rename(self) -> dict[str, Any] | None:
        """Give the newest batch of renamed files their old names (None: nothing to undo)."""
        from engine.curate.rename import undo_renames

        return undo_renames(self.catalog)

    def suggest_categories(
        self,
        files: list[int | str | os.PathLike[str]] | None = None,
        *,
        use_words: bool = True,
        exclude: set[int] | frozenset[int] = frozenset(),
        top: int = 3,
    ) -> dict[int, list[dict[str, Any]]]:
        """file id -> its likeliest UCS CatIDs [{"catid", "category", "subcategory",
        "confidence"}], from how it and its nearest sounds are named and how it sounds,
        and (``use_words``) its own words; ``files`` None: every file without a CatID;
        ``exclude``: files whose names are not read as neighbours (evaluation).
        NotIndexed when the library has no embedded sounds or no category knowledge."""
        from engine.curate.suggest import category_space, suggest

        space = category_space(self.text_space())
        if space is None:
            raise NotIndexed(
                "category suggestions need embedded sounds and the base knowledge (scan the "
                "library; the base knowledge comes with Sonarium)"
            )
        if files is None:
            ids = [r[0] for r in self.catalog.conn.execute(
                "SELECT id FROM files WHERE status = 'ok' AND COALESCE(ucs_catid, '') = ''"
            )]  # fmt: skip
        else:
            ids = self._file_ids(files)
        return suggest(
            self.catalog, space, self._similar_index(), self.ucs_table(), ids,
            use_words=use_words, exclude=frozenset(exclude), top=top,
        )  # fmt: skip

    def accept_suggestions(
        self, suggestions: dict[int, dict[str, Any]] | dict[int, str]
    ) -> dict[str, Any]:
        """Set each file's CatID to the one given ({file id: CatID or a suggestion}), with
        its category and subcategory from the library's UCS table when it has one; one
        undoable batch, as `edit` reports."""
        from engine.catalog.edits import set_many

        table = self.ucs_table()
        changes: dict[int, dict[str, object]] = {}
        for file_id, chosen in suggestions.items():
            catid = str(chosen["catid"] if isinstance(chosen, dict) else chosen).strip()
            entry = table.by_catid.get(catid) if table is not None else None
            if table is not None and entry is None:
                raise LibraryError(f"{catid} is not a CatID of the library's UCS table")
            changes[int(file_id)] = {"catid": catid}
            if entry is not None:
                changes[int(file_id)] |= {"category": entry.category,
                                          "subcategory": entry.subcategory}  # fmt: skip
        if not changes:
            return {"batch": None, "files": 0, "changes": 0}
        return set_many(self.catalog, changes)

    # -- collections ---------------------------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """Every collection: id, name and number of files, by name."""
        return self.catalog.collections()

    def add_to_collection(self, name: str, files: list[int | str | os.PathLike[str]]) -> int:
        """Put library files (ids or paths) into the collection ``name``, made when new;
        returns how many files the collection holds now. Files not in the library are a
        LibraryError."""
        name = self._collection_name(name)
        ids = self._file_ids(files)
        collection = self.catalog.create_collection(name)
        self.catalog.add_to_collection(collection, ids)
        return len(self.catalog.collection_files(collection))

    def remove_from_collection(self, name: str, files: list[int | str | os.PathLike[str]]) -> int:
        """Take files out of a collection (they stay in the library); returns how many."""
        return self.catalog.remove_from_collection(self._collection(name), self._file_ids(files))

    def create_collection(self, name: str) -> None:
        """Make an empty collection (nothing when one of that name exists)."""
        self.catalog.create_collection(self._collection_name(name))

    def rename_collection(self, name: str, new_name: str) -> None:
        """Give a collection another name (LibraryError when that name is taken)."""
        collection = self._collection(name)
        new_name = self._collection_name(new_name)
        other = self.catalog.collection_id(new_name)
        if other is not None and other != collection:
            raise LibraryError(f"there is a collection named {new_name!r} already")
        self.catalog.rename_collection(collection, new_name)

    def export_collection(self, name: str, folder: str | os.PathLike[str]) -> dict[str, Any]:
        """Copy a collection's files into ``folder`` (made when missing), never replacing
        a file there (a taken name gets a number); {"copied": [paths], "failed":
        [{"path", "error"}]}."""
        from engine.curate.copy import copy_files

        ids = self.catalog.collection_files(self._collection(name))
        rows = [self.catalog.file_by_id(i) for i in ids]
        return copy_files([r["path"] for r in rows if r is not None], Path(folder))

    def _collection_name(self, name: str) -> str:
        name = name.strip()
        if not name:
            raise LibraryError("a collection needs a name")
        if '"' in name:
            # Names are typed in queries as col:"name", so a quote could never be found.
            raise LibraryError('a collection name cannot contain a double quote (")')
        return name

    def ucs_categories(self) -> list[dict[str, Any]]:
        """The CatIDs the library's files have (given, named or accepted suggestions),
        with their category names and file counts, by category."""
        table = self.ucs_table()
        rows = self.catalog.ucs_categories()
        for row in rows:
            entry = table.by_catid.get(row["catid"]) if table is not None else None
            if entry is not None and not row["category"]:
                row["category"], row["subcategory"] = entry.category, entry.subcategory
        return rows

    def delete_collection(self, name: str) -> None:
        """Forget a collection; its files stay in the library."""
        self.catalog.delete_collection(self._collection(name))

    def collection(self, name: str, limit: int = 10_000) -> list[SearchResult]:
        """The files of a collection in the order they were added, as search results."""
        ids = self.catalog.collection_files(self._collection(name))[:limit]
        return results_for_ids(self.catalog, ids)

    def _collection(self, name: str) -> int:
        collection = self.catalog.collection_id(name.strip())
        if collection is None:
            raise LibraryError(f"no collection named {name!r}")
        return collection

    def _file_ids(self, files: list[int | str | os.PathLike[str]]) -> list[int]:
        ids = []
        for f in files:
            if isinstance(f, int):
                row = self.catalog.file_by_id(f)
            else:
                row, stored = self._locate(f)
            if row is None:
                raise LibraryError(f"not a file of the library: {shown(to_catalog(str(f)))}")
            ids.append(int(row["id"]))
        return ids

    # -- duplicates (engine/curate/duplicates.py) ------------------------------------------

    def duplicates(
        self,
        near: bool = False,
        space: str = DEFAULT_SIMILAR_SPACE,
        progress: Any = None,
        cancel: Any = None,
    ) -> list[Any]:
        """Groups of exact duplicates (same decoded samples), and with `near` also of
        near duplicates (re-encoded, re-levelled, trimmed, resampled copies)."""
        from engine.curate.duplicates import find_duplicates

        index = None
        if near and space in self._embedded_spaces():
            index = self._similar_index()
        return find_duplicates(self.catalog, index, space, near, progress, cancel)

    def remove_from_library(self, files: list[int | str | os.PathLike[str]]) -> list[str]:
        """Forget files (their tags and edits too) and keep later scans from adding them
        again; nothing is deleted from disk. Returns their paths."""
        from engine.curate.duplicates import exclude_files

        return exclude_files(self.catalog, self._file_ids(files), "removed as a duplicate")

    def trash(self, files: list[int | str | os.PathLike[str]]) -> dict[str, Any]:
        """Move files to the desktop's trash and forget them (see duplicates.trash_files)."""
        from engine.curate.duplicates import trash_files

        return trash_files(self.catalog, self._file_ids(files))

    # -- evaluation (engine/eval/runs.py) ----------------------------------------------

    def evaluate_text(
        self, queries: list[dict[str, Any]], *, content_only: bool = False
    ) -> dict[str, Any]:
        """Text-search quality on judged queries, with same-run baselines."""
        from engine.eval.runs import text_run

        return text_run(self, queries, content_only)

    def evaluate_by_example(
        self, queries: list[dict[str, Any]], *, space: str = DEFAULT_SIMILAR_SPACE
    ) -> dict[str, Any]:
        """Find-similar quality on judged queries, with MFCC and random baselines."""
        from engine.eval.runs import by_example_run

        return by_example_run(self, queries, space)

    def evaluate_hidden(
        self,
        queries: list[dict[str, Any]],
        fraction: float,
        seed: int,
        options: Any = None,
        *,
        ablations: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Text search over files whose names are hidden (on a copy of the catalog)."""
        from engine.adapt.adapter import AdaptOptions
        from engine.eval.runs import hidden_run

        return hidden_run(
            self, queries, fraction, seed, options or AdaptOptions(), ablations=ablations, log=log
        )

    def info(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Everything known about a file: its catalog row, or a fresh analysis if it is
        not in the library (then `in_library` is False and nothing is stored)."""
        row, stored = self._locate(path)
        if row is not None:
            row["in_library"] = True
            row["tags"] = self.catalog.tags_of(row["id"])
            row["favorite"] = self.catalog.is_favorite(row["id"])
            row["collections"] = self.catalog.collections_of(row["id"])
            peaks = self.catalog.peaks(row["id"])
        else:
            if not os.path.isfile(os_path(stored)):
                raise FileUnreadable(f"no such file: {shown(stored)}")
            try:
                result = analyze(stored, 0, self.ucs_table())
            except (FileVanished, FileChanged) as exc:
                raise FileUnreadable(
                    f"could not read {shown(stored)}: {exc.__class__.__name__}"
                ) from exc
            row = dict(result.record)
            row.pop("root_id", None)
            row["in_library"] = False
            peaks = result.peaks
        row["embedded_tags"] = json.loads(row["embedded_tags"]) if row.get("embedded_tags") else {}
        row["peak_buckets"] = len(decode_peaks(peaks[1])[0]) if peaks else 0
        return row

    def errors(self) -> list[dict[str, Any]]:
        return self.catalog.errors()

    def warm(self) -> None:
        """Load what searches need (the text space with its models, each space's search
        index) so the first query does not wait for them. Any time; call on the owning
        thread. Nothing happens for what the library does not have yet."""
        space = self.text_space()
        if space is not None and hasattr(space, "embed_text"):
            space.embed_text(["warm up"])  # the encoder's first call allocates
        for name in self._embedded_spaces():
            self._similar_index().track(name)  # loads it, and follows changes

    def check(self) -> dict[str, Any]:
        """Verify the library without changing it: the catalog (SQLite's integrity and
        foreign-key checks) and each file kept beside it (adapter, search indexes), which
        are caches rebuilt when bad. Returns {"ok", "catalog": [problems], "side_files":
        {name: state}, "counts", "backup"}. Reads everything: slow on large libraries."""
        from engine.adapt.adapter import Adapter

        problems = self.catalog.integrity_problems()
        side: dict[str, str] = {}
        for path in sorted(self.dir.glob("*.adapter.npz")):
            try:
                Adapter.load(path)
                side[path.name] = "ok"
            except ValueError as exc:
                side[path.name] = f"damaged, will be learned again ({exc})"
        for path in sorted(self.dir.glob("*.files.faiss")):
            space = path.name.removesuffix(".files.faiss")
            try:
                self._similar_index().space_id(space)  # loads it, or rebuilds a bad one
                side[path.name] = "ok (checked against the catalog)"
            except (LibraryError, OSError) as exc:
                side[path.name] = f"not usable: {exc}"
        backup = self.catalog.path.with_name(self.catalog.path.name + ".before-migration")
        return {
            "ok": not problems,
            "catalog": problems,
            "side_files": side,
            "counts": self.counts(),
            "backup": str(backup) if backup.exists() else None,
        }

    def _locate(self, path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, str]:
        """A file a user or a front end named: its catalog row (None when not in the
        library) and its catalog path. Takes a catalog path, as results carry, or an OS
        path, as a command line gives (relative, with ~, through links)."""
        text = os.fspath(path)
        if not _has_surrogates(text):  # an OS path with undecodable bytes is no catalog path
            row = self.catalog.file_by_path(text)
            if row is not None:
                return row, text
        p = Path(text).expanduser()
        stored = to_catalog(str(p.resolve() if p.exists() else p.absolute()))
        row = self.catalog.file_by_path(stored)
        if row is None and p.exists():  # a library file reached through a link
            row = self.catalog.file_by_path(to_catalog(str(p.absolute())))
        return row, stored

    def overview_peaks(self, file_ids: list[int]) -> dict[int, tuple[Any, Any]]:
        """file id -> (mins, maxs) of the small waveform, for the ids that have peaks."""
        out = {}
        for file_id in file_ids:
            peaks = self.catalog.peaks(file_id)
            if peaks:
                out[file_id] = decode_peaks(peaks[0])
        return out

    def detail(self, file_id: int) -> dict[str, Any] | None:
        """A file's catalog row with tags, favorite flag and its detailed peaks."""
        row = self.catalog.file_by_id(file_id)
        if row is None:
            return None
        row["tags"] = self.catalog.tags_of(file_id)
        row["favorite"] = self.catalog.is_favorite(file_id)
        row["collections"] = self.catalog.collections_of(file_id)
        row["embedded_tags"] = json.loads(row["embedded_tags"]) if row["embedded_tags"] else {}
        from engine.catalog.edits import edits_of

        row["edits"] = edits_of(self.catalog, file_id)
        peaks = self.catalog.peaks(file_id)
        row["peaks"] = decode_peaks(peaks[1]) if peaks else None
        return row

    # -- settings ----------------------------------------------------------------------

    def ucs_table_path(self) -> str | None:
        """The UCS table file set for this library, or None."""
        return self.catalog.get_setting(UCS_TABLE_SETTING)

    def ucs_table(self) -> UcsTable | None:
        """The user's UCS table from settings, loaded once; None when unset or unreadable."""
        path = self.catalog.get_setting(UCS_TABLE_SETTING)
        if path != self._ucs_loaded_from:
            self._ucs_loaded_from = path
            self._ucs_table = None
            if path:
                try:
                    self._ucs_table = UcsTable.load(path)
                except (OSError, ValueError) as exc:
                    log.warning("UCS table %s not loaded: %s", path, exc)
        return self._ucs_table

    def set_ucs_table(self, path: str | None) -> None:
        """Use the UCS table at `path` (JSON or CSV) for new scans; None to stop using one."""
        if path is not None:
            path = str(Path(path).expanduser().resolve())
            try:
                UcsTable.load(path)
            except (OSError, ValueError) as exc:
                raise LibraryError(f"cannot use UCS table {path}: {exc}") from exc
        self.catalog.set_setting(UCS_TABLE_SETTING, path)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _is_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
