"""The main window: search, filters, results with waveforms, detail pane, library panel.

GUI thread only. Everything slow goes through the EngineBridge (engine threads) or the
Player (its own feeder thread); this module only arranges widgets and forwards requests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, QStringListModel, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QDockWidget,
    QFileDialog,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine import config
from engine.catalog.paths import os_path
from engine.catalog.text import printable
from engine.config import AUDIO_SUFFIXES
from gui import settings as app_settings
from gui.bridge import EngineBridge
from gui.browse_panel import BrowsePanel
from gui.detail_pane import DetailPane
from gui.duplicates_dialog import DuplicatesDialog
from gui.empty_state import EmptyState, examples_html
from gui.file_urls import file_url, local_path
from gui.filters import FilterBar
from gui.import_dialog import ImportDialog
from gui.library_panel import LibraryPanel
from gui.metadata_editor import MetadataEditor
from gui.rename_dialog import RenameDialog
from gui.results_model import COLUMNS, ResultsModel
from gui.results_view import ResultsView
from gui.waveform_delegate import MiniWaveformDelegate

HISTORY_SIZE = 50
RECENT_SIZE = 50  # sounds kept in Browse > Recently auditioned
# Files up to this long are rendered for dragging as soon as they are selected when the
# transfer settings convert (longer ones when they are dragged: a render is written to
# disk, and an hour of 24-bit stereo is a gigabyte).
PRERENDER_SECONDS = 600.0
SPECTROGRAM_CACHE = 16  # spectrogram images kept (a few views of a few files)
ABOUT = """<h3>Sonarium</h3>
<p>A sound-library browser: find sounds by name, metadata and by how they sound.</p>
<p>Find-similar uses the <b>aisfx</b> model by Brian Ma and Alexander Lerch,
"Representation Learning for the Automatic Indexing of Sound Effects Libraries"
(ISMIR 2022). Model weights licensed under
<a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>; code MIT.</p>"""

SEARCHING_AFTER_MS = 150


def reveal_in_file_manager(stored: str) -> None:
    """Show a file (a catalog path) selected in the file manager; open its folder where
    that isn't possible.

    Linux file managers (Nautilus, Dolphin, Nemo, Caja, PCManFM...) implement the
    freedesktop FileManager1 D-Bus interface for exactly this; macOS and Windows have
    their own commands.
    """
    url = file_url(stored).toString(QUrl.ComponentFormattingOption.FullyEncoded)
    path = os_path(stored)
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
        return
    if sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
        return
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusInterface

        bus = QDBusConnection.sessionBus()
        if bus.isConnected():
            manager = QDBusInterface(
                "org.freedesktop.FileManager1", "/org/freedesktop/FileManager1",
                "org.freedesktop.FileManager1", bus,
            )  # fmt: skip
            if manager.isValid():
                reply = manager.call("ShowItems", [url], "")
                if not reply.errorName():
                    return
    except ImportError:
        pass
    QDesktopServices.openUrl(file_url(str(Path(stored).parent)))


class MainWindow(QMainWindow):
    """Must be created and used on the GUI thread."""

    def __init__(
        self,
        bridge: EngineBridge,
        player=None,
        settings: QSettings | None = None,
        auto_index: bool = True,
    ):
        super().__init__()
        # Bring the library up to date once at start (incremental: only what changed),
        # which also resumes an indexing run that was interrupted.
        self._auto_index = auto_index
        self.bridge = bridge
        self.player = player
        self.settings = settings or app_settings.open_settings()
        self.setWindowTitle("Sonarium")
        self.resize(1280, 800)
        self.setAcceptDrops(True)
        self._current: dict | None = None  # the selected result
        self._similar_label = ""

        # -- search row -------------------------------------------------------------
        self.search_field = QLineEdit(placeholderText="Search sounds — e.g. door slam dur:<2")
        self.search_field.setClearButtonEnabled(True)
        self._spectrograms: OrderedDict[tuple, object] = OrderedDict()
        self._browse_filter = ""
        self._browse_label = ""  # what Browse narrowed to, in words ("blobby-data")
        self.recent = [p for p in app_settings.get(self.settings, "recent").split("\n") if p]
        self.browsing = QPushButton("")
        self.browsing.setFlat(True)
        self.browsing.setToolTip("Browse everything again")
        self.browsing.setVisible(False)
        self.browsing.clicked.connect(lambda: self.set_browse_filter("", ""))
        self.history = [h for h in app_settings.get(self.settings, "history").split("\n") if h]
        self._history_model = QStringListModel(self.history)
        completer = QCompleter(self._history_model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.search_field.setCompleter(completer)
        self.filters = FilterBar()

        # -- results ----------------------------------------------------------------
        self.model = ResultsModel(self)
        self._shown_query: str | None = None  # the search whose results are shown
        self.results = ResultsView()
        self._awaiting_renders: set[str] = set()  # dragged before they were rendered
        self.results.setModel(self.model)
        self.results.setItemDelegateForColumn(COLUMNS.index("Waveform"), MiniWaveformDelegate(self))
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results.setSortingEnabled(True)
        self.results.setDragEnabled(True)
        self.results.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.results.verticalHeader().setVisible(False)
        self.results.verticalHeader().setDefaultSectionSize(26)
        self.results.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((240, 150, 80, 70, 40, 60, 80, 120)):
            self.results.setColumnWidth(column, width)
        # The folder (last) takes the width that is left, so every other column shows.
        self.results.horizontalHeader().setStretchLastSection(True)
        # Results arrive best first: no column sort until the user clicks a header.
        self.results.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.results.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

        self.detail = DetailPane()
        self.detail.autoplay.setChecked(app_settings.get(self.settings, "autoplay") == "true")
        self.detail.match_loudness.setChecked(
            app_settings.get(self.settings, "match_loudness") == "true"
        )

        # The results, or before there are sounds the call to add a folder.
        self.empty_state = EmptyState()
        self.results_stack = QStackedWidget()
        self.results_stack.addWidget(self.results)
        self.results_stack.addWidget(self.empty_state)
        self.examples = QLabel(examples_html())
        self.examples.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.examples.linkActivated.connect(self.search_field.setText)
        self.examples.setVisible(False)
        self.examples.setWordWrap(True)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.results_stack)
        splitter.addWidget(self.detail)
        splitter.setSizes([480, 300])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.search_field)
        layout.addWidget(self.filters)
        layout.addWidget(self.examples)
        layout.addWidget(self.browsing, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self.collection_names: list[str] = []
        self.library_panel = LibraryPanel()
        self.empty_state.add_requested.connect(self.library_panel._choose_folder)
        dock = QDockWidget("Library", self)
        dock.setObjectName("library")
        dock.setWidget(self.library_panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.browse = BrowsePanel()
        browse_dock = QDockWidget("Browse", self)
        browse_dock.setObjectName("browse")
        browse_dock.setWidget(self.browse)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, browse_dock)
        self.tabifyDockWidget(browse_dock, dock)
        browse_dock.raise_()
        self._browse_dock = browse_dock
        self.metadata_editor = MetadataEditor()
        meta_dock = QDockWidget("Metadata", self)
        meta_dock.setObjectName("metadata")
        meta_dock.setWidget(self.metadata_editor)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, meta_dock)
        self._docks = (dock, meta_dock)
        # Indexing progress in the status bar, whichever panel is in front; a click shows
        # the Library panel with its details and Pause. Fixed width: a label resizing on
        # every update would relayout the status bar while the user types.
        self.index_status = QPushButton("")
        self.index_status.setFlat(True)
        self.index_status.setFixedWidth(self.fontMetrics().averageCharWidth() * 60)
        self.index_status.clicked.connect(dock.raise_)
        self.index_bar = QProgressBar()
        self.index_bar.setTextVisible(False)
        self.index_bar.setFixedWidth(120)
        for w in (self.index_status, self.index_bar):
            w.setVisible(False)
            self.statusBar().addPermanentWidget(w)
        screen = QGuiApplication.primaryScreen()
        if screen is not None:
            self.fit_width(screen.availableGeometry().width())
        self._build_menus()
        self._build_shortcuts()

        # -- timers -----------------------------------------------------------------
        # Live search: wait for a pause in typing before asking the engine.
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self._on_debounced)
        # A search that has not answered after this long says that it is working.
        self._searching = QTimer(self)
        self._searching.setSingleShot(True)
        self._searching.setInterval(SEARCHING_AFTER_MS)
        self._searching.timeout.connect(self._show_searching)
        self._overview_timer = QTimer(self)
        self._overview_timer.setSingleShot(True)
        self._overview_timer.setInterval(40)
        self._overview_timer.timeout.connect(self._request_visible_overviews)
        # The playhead follows the player by polling; the audio thread sends no signals.
        self._playhead_timer = QTimer(self)
        self._playhead_timer.setInterval(30)
        self._playhead_timer.timeout.connect(self._update_playhead)
        self._playhead_timer.start()
        # While indexing, keep the folder counts (and an untouched result list) current.
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(3000)
        self._live_timer.timeout.connect(self._refresh_while_indexing)

        # -- wiring -----------------------------------------------------------------
        self.search_field.textChanged.connect(self._on_text_changed)
        self.search_field.returnPressed.connect(self._remember_query)
        self.filters.changed.connect(self._debounce.start)
        self.results.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.results.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.results.verticalScrollBar().valueChanged.connect(self._overview_timer.start)
        self.results.doubleClicked.connect(lambda _i: self.play_from_start())
        self.results.customContextMenuRequested.connect(self._context_menu)
        self.model.modelReset.connect(self._overview_timer.start)
        self.model.layoutChanged.connect(self._overview_timer.start)
        self.model.rowsInserted.connect(self._overview_timer.start)
        self.model.more_wanted.connect(self._want_more)

        self.bridge.results_ready.connect(self.show_results)
        self.bridge.query_failed.connect(self._show_message)
        self.bridge.query_failed.connect(lambda _message: self._searching.stop())
        self.bridge.message.connect(self._show_message)
        self.bridge.status_changed.connect(self._show_status)
        self.bridge.overviews_ready.connect(self._on_overviews)
        self.bridge.detail_ready.connect(self._on_detail)
        self.bridge.clip_ready.connect(self._on_clip)
        self.bridge.metadata_ready.connect(self._on_metadata)
        self.bridge.import_planned.connect(self.show_import_plan)
        self.bridge.rename_planned.connect(self._on_rename_plan)
        # The shown results hold the old paths: ask again (play and drag need the new).
        self.bridge.renamed.connect(lambda _result: self.run_search())
        self.metadata_editor.apply_requested.connect(self.bridge.edit)
        self.metadata_editor.write_requested.connect(self.bridge.write_metadata)
        self.metadata_editor.undo_requested.connect(self.undo_edit)
        self.metadata_editor.redo_requested.connect(self.redo_edit)
        self.metadata_editor.accept_requested.connect(
            lambda ids, rank: self.bridge.accept_suggestion(ids, rank)
        )
        self.bridge.suggestions_ready.connect(self._on_suggestions)
        self.bridge.index_progressed.connect(self._on_index_progress)
        self.bridge.index_finished.connect(self._on_index_finished)

        self.library_panel.add_requested.connect(self.add_folders)
        self.library_panel.remove_requested.connect(self.bridge.remove_folder)
        self.library_panel.rescan_requested.connect(self.rescan)
        self.bridge.checked.connect(self.show_check)
        self.library_panel.retry_requested.connect(lambda: self.bridge.index(retry_errors=True))
        self.library_panel.forget_offline_requested.connect(
            lambda: self.bridge.index(forget_missing=True)
        )
        self.library_panel.pause_toggled.connect(self.bridge.pause)
        self.library_panel.collection_chosen.connect(self.show_collection)
        self.library_panel.collection_delete_requested.connect(self.bridge.delete_collection)
        self.library_panel.collection_create_requested.connect(self.bridge.create_collection)
        self.library_panel.collection_rename_requested.connect(self.bridge.rename_collection)
        self.library_panel.collection_export_requested.connect(self.bridge.export_collection)
        self.library_panel.collection_files_dropped.connect(self.bridge.add_to_collection)
        self.bridge.categories_ready.connect(self.browse.set_categories)

        self.detail.play_clicked.connect(self.play_from_start)
        self.detail.stop_clicked.connect(self.stop)
        self.detail.volume_changed.connect(self._set_volume)
        self.detail.loop_toggled.connect(self._apply_loop)
        self.detail.autoplay.toggled.connect(
            lambda on: self.settings.setValue("autoplay", "true" if on else "false")
        )
        self.detail.match_loudness.toggled.connect(self._on_match_loudness)
        self.detail.pitch_changed.connect(self._set_pitch)
        self.bridge.loudness_ready.connect(self._on_loudness)
        self.detail.waveform.detail_wanted.connect(self._want_view)
        self.bridge.view_ready.connect(self._on_view)
        self.bridge.rendered.connect(self._on_rendered)
        self.results.renders_needed.connect(self._render_for_drag)
        self.browse.filter_chosen.connect(self.set_browse_filter)
        self.browse.subfolders_wanted.connect(self.bridge.request_subfolders)
        self.browse.recent_chosen.connect(self.show_recent)
        self.browse.collection_chosen.connect(self.show_collection)
        self.bridge.subfolders_ready.connect(self.browse.set_subfolders)
        self.detail.waveform.set_time_format(app_settings.get(self.settings, "time_format"))
        self.detail.waveform.seek_requested.connect(self._seek)
        self.detail.waveform.region_selected.connect(self._on_region)
        self.search_field.installEventFilter(self)
        self.search_field.setFocus(Qt.FocusReason.OtherFocusReason)

    def eventFilter(self, obj, event) -> bool:
        # Down in the search field moves into the results, as in Soundly and REAPER.
        if (
            obj is self.search_field
            and event.type() == QEvent.Type.KeyPress
            and event.key() == Qt.Key.Key_Down
            and self.model.rowCount()
        ):
            self.results.setFocus()
            if not self.results.currentIndex().isValid():
                self.results.selectRow(0)
            return True
        return super().eventFilter(obj, event)

    # -- menus and keys -----------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        add = QAction("Add folder…", self)
        add.triggered.connect(self.library_panel._choose_folder)
        file_menu.addAction(add)
        sounds = QAction("Export sounds…", self)
        sounds.setToolTip("Render the selected files into a folder with the transfer settings")
        sounds.triggered.connect(self.export_sounds)
        file_menu.addAction(sounds)
        export = QAction("Export metadata to CSV…", self)
        export.setToolTip("The selected files' metadata (none selected: the whole library)")
        export.triggered.connect(self.export_csv)
        file_menu.addAction(export)
        import_csv = QAction("Import metadata from CSV…", self)
        import_csv.triggered.connect(self.import_csv)
        file_menu.addAction(import_csv)
        check = QAction("Check library", self)
        check.setToolTip("Verify the catalog and the files beside it (reads everything)")
        check.triggered.connect(self.check_library)
        file_menu.addAction(check)
        prefs = QAction("Settings…", self)
        prefs.triggered.connect(self.open_settings)
        file_menu.addAction(prefs)
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        edit_menu = self.menuBar().addMenu("&Edit")
        for text, keys, slot in (
            ("Undo metadata edit", QKeySequence.StandardKey.Undo, self.undo_edit),
            ("Redo metadata edit", QKeySequence.StandardKey.Redo, self.redo_edit),
        ):
            action = QAction(text, self)
            action.setShortcut(keys)
            action.triggered.connect(slot)
            edit_menu.addAction(action)
        accept = QAction("Accept category suggestions…", self)
        accept.setToolTip("For the selected files (none selected: every file without a CatID)")
        accept.triggered.connect(self.accept_suggestions_above)
        edit_menu.addAction(accept)
        rename = QAction("Rename selected to UCS…", self)
        rename.triggered.connect(self.rename_selected)
        edit_menu.addAction(rename)
        undo_rename = QAction("Undo rename", self)
        undo_rename.triggered.connect(self.bridge.undo_rename)
        edit_menu.addAction(undo_rename)
        duplicates = QAction("Find duplicates…", self)
        duplicates.setToolTip("Copies of the same sound: exact, and near (re-encoded, trimmed…)")
        duplicates.triggered.connect(self.find_duplicates)
        edit_menu.addAction(duplicates)
        write = QAction("Write metadata to files", self)
        write.setToolTip(
            "Write the selected files' metadata into them (all pending: none selected)"
        )
        write.triggered.connect(lambda: self.bridge.write_metadata(self.selected_ids()))
        edit_menu.addAction(write)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("About Sonarium", self)
        about.triggered.connect(lambda: QMessageBox.about(self, "About Sonarium", ABOUT))
        help_menu.addAction(about)

    def _build_shortcuts(self) -> None:
        def results_key(key, slot) -> None:
            # Only while the results have focus, so Space and letters still type in fields.
            s = QShortcut(QKeySequence(key), self.results, slot)
            s.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        results_key(Qt.Key.Key_Space, self.toggle_play)
        results_key(Qt.Key.Key_Return, self.play_from_start)
        results_key(Qt.Key.Key_Enter, self.play_from_start)
        results_key(Qt.Key.Key_L, self.detail.loop.toggle)
        results_key(Qt.Key.Key_F, self.toggle_favorite)
        for rank, key in enumerate((Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3)):
            results_key(key, lambda rank=rank: self.metadata_editor.accept(rank))
        for keys, step in (("Alt+Up", 1.0), ("Alt+Down", -1.0), ("Alt+Shift+Up", 0.01),
                           ("Alt+Shift+Down", -0.01), ("Alt+0", 0.0)):  # fmt: skip
            QShortcut(QKeySequence(keys), self, lambda step=step: self.detail.nudge_pitch(step))
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        QShortcut(QKeySequence("Ctrl+F"), self, self.focus_search)
        QShortcut(QKeySequence("Ctrl+Shift+R"), self, self.reveal_current)

    # -- searching ------------------------------------------------------------------

    def _on_text_changed(self, _text: str) -> None:
        self._show_empty_state()
        self._similar_label = ""
        self._debounce.start()

    def query_text(self) -> str:
        parts = (self._browse_filter, self.search_field.text().strip(), self.filters.query_suffix())
        return " ".join(p for p in parts if p)

    def set_browse_filter(self, query_filter: str, label: str) -> None:
        """Narrow the results to a browse node (a folder, favorites), with the query."""
        self._browse_filter = query_filter
        self._browse_label = label if query_filter else ""
        self.browsing.setText(f"Browsing {label}  ✕" if query_filter else "")
        self.browsing.setVisible(bool(query_filter))
        self.run_search()

    def show_recent(self) -> None:
        self.bridge.show_paths(self.recent, "recently auditioned")

    def _remember_audition(self, path: str) -> None:
        self.recent = [path] + [p for p in self.recent if p != path][: RECENT_SIZE - 1]
        self.settings.setValue("recent", "\n".join(self.recent))

    def _on_debounced(self) -> None:
        self._similar_label = ""
        self.run_search()

    def run_search(self) -> None:
        self.bridge.search(self.query_text())
        self._searching.start()  # says "Searching…" if the answer takes over 150 ms

    def _show_searching(self) -> None:
        self.statusBar().showMessage(f"Searching “{printable(self.query_text())}”…")

    def _remember_query(self) -> None:
        text = self.search_field.text().strip()
        if not text:
            return
        self.history = [text] + [h for h in self.history if h != text][: HISTORY_SIZE - 1]
        self._history_model.setStringList(self.history)
        self.settings.setValue("history", "\n".join(self.history))
        self.run_search()
        if self.model.rowCount():
            self.results.setFocus()
            self.results.selectRow(0)

    def focus_search(self) -> None:
        self.search_field.setFocus()
        self.search_field.selectAll()

    def find_similar(self, path: str, start: float | None = None, end: float | None = None):
        where = f" {start:.2f}–{end:.2f}s" if start is not None else ""
        self._similar_label = f"sounds like {Path(path).name}{where}"
        self.statusBar().showMessage(f"Finding {self._similar_label}…")
        self.bridge.similar(path, start, end, app_settings.get(self.settings, "similar_space"))

    def show_results(self, payload: dict) -> None:
        self._searching.stop()
        results = payload["results"]
        if payload.get("offset"):
            # A further page of the query shown (dropped when the rows changed meanwhile).
            if payload["query"] != self._shown_query or not self.model.append_results(
                payload["offset"], results, payload.get("more", False)
            ):
                return
        else:
            self._shown_query = payload["query"] if payload.get("kind") == "search" else None
            self.model.set_results(results, payload.get("more", False))
        results = self.model.results()
        if payload.get("kind") == "similar":
            self.statusBar().showMessage(f"{len(results)} {self._similar_label}")
        else:
            query = payload["query"]
            matches = sum(1 for r in results if r.get("match", True))
            more = len(results) - matches
            # A full page: scrolling to the end fetches the next one.
            plus = "+" if self.model.has_more() and not more else ""
            noun = "result" if matches == 1 and not plus else "results"
            # Narrowed by Browse: the node in words, not its filter's syntax.
            narrowed = bool(self._browse_filter) and query.startswith(self._browse_filter)
            label = self._browse_label if narrowed else ""
            if label:
                typed = query[len(self._browse_filter) :].strip()
                where = (f" for “{printable(typed)}”" if typed else "") + f" in {printable(label)}"
            else:
                where = f" for “{printable(query)}”" if query else ""
            self.statusBar().showMessage(
                f"{matches}{plus} {noun}{where}"
                + (f", then {more}{'+' if self.model.has_more() else ''} more that sound "
                   "alike" if more else "")
            )  # fmt: skip

    def _want_more(self, offset: int) -> None:
        if self._shown_query is not None:
            self.bridge.search_more(self._shown_query, offset)

    def _request_visible_overviews(self) -> None:
        first = max(0, self.results.rowAt(0))
        last = self.results.rowAt(self.results.viewport().height() - 1)
        last = self.model.rowCount() - 1 if last < 0 else last
        rows = range(first, min(last + 20, self.model.rowCount()))
        missing = self.model.missing_overviews(rows)
        if missing:
            self.bridge.request_overviews(missing)

    def _on_overviews(self, overviews: dict) -> None:
        for file_id, (mins, maxs) in overviews.items():
            self.model.set_overview(file_id, mins, maxs)

    # -- selection, detail, audition -------------------------------------------------

    def current_result(self) -> dict | None:
        index = self.results.currentIndex()
        return self.model.result(index.row()) if index.isValid() else None

    def _on_current_changed(self, current, _previous) -> None:
        if not current.isValid():
            return
        self._current = self.model.result(current.row())
        self.detail.drag_clip.set_clip(None)
        self.detail.waveform.clear_selection()
        self.bridge.request_detail(self._current["id"])
        self._prepare_drag(self._current)
        if self.detail.autoplay.isChecked():
            self.play_from_start()

    def _prepare_drag(self, result: dict) -> None:
        """When the transfer settings convert, render the current file in the background
        so that dragging it from the results delivers the converted file at once (longer
        files are rendered when they are dragged: ResultsView)."""
        self.model.converting = self._converting()
        if self.model.converting and (result.get("duration") or 0.0) <= PRERENDER_SECONDS:
            self.bridge.render_for_drag(result["path"])

    @staticmethod
    def _converting() -> bool:
        from engine.audio.transfer import Transfer
        from engine.errors import TransferError

        try:
            return not Transfer.from_settings().as_source
        except TransferError:  # refused in Settings; files go out as they are
            return False

    def _render_for_drag(self, paths: list[str]) -> None:
        """A drag of files not rendered yet: render them; the next drag delivers them."""
        self._awaiting_renders |= set(paths)
        for path in paths:
            self.bridge.render_for_drag(path)
        self.statusBar().showMessage(
            f"Rendering {len(paths)} files with the transfer settings; drag again when they "
            "are ready"
        )

    def _on_rendered(self, source: str, paths: list) -> None:
        self.model.set_rendered(source, paths)
        if source in self._awaiting_renders:
            self._awaiting_renders.discard(source)
            if not self._awaiting_renders:
                self.statusBar().showMessage("Rendered with the transfer settings: ready to drag")

    def _on_detail(self, row: dict) -> None:
        if self._current is None or row["id"] != self._current["id"]:
            return
        self._current["favorite"] = row["favorite"]
        self._current["collections"] = row.get("collections", [])
        self.detail.show_file(row, (self._current.get("start"), self._current.get("end")))

    def _on_selection_changed(self, *_args) -> None:
        self.bridge.request_metadata(self.selected_ids())
        self.bridge.request_suggestions(self.selected_ids())

    def _on_suggestions(self, payload: dict) -> None:
        if sorted(payload["ids"]) == sorted(self.selected_ids()):
            self.metadata_editor.show_suggestions(payload)

    def accept_suggestions_above(self) -> None:
        """Edit menu: the best suggestion for the selected files (none selected: every
        file without a CatID) where it is at least as sure as asked."""
        value, ok = QInputDialog.getDouble(
            self, "Accept category suggestions",
            "Set the best suggested category where it is at least this sure (0–1):",
            0.5, 0.0, 1.0, 2,
        )  # fmt: skip
        if ok:
            self.bridge.accept_suggestion(self.selected_ids(), 0, value)

    def _on_metadata(self, payload: dict) -> None:
        if sorted(payload["ids"]) == sorted(self.selected_ids()):
            self.metadata_editor.show_selection(payload)

    def export_sounds(self) -> None:
        rows = [i.row() for i in self.results.selectionModel().selectedRows()]
        if not rows:
            self._show_message("Select the sounds to export first")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export sounds into")
        if not folder:
            return
        pattern, ok = QInputDialog.getText(
            self, "Export sounds",
            "File names ({name} {rate} {bits} {n}; empty: as the source):",
            text=app_settings.get(self.settings, "export_pattern"),
        )  # fmt: skip
        if not ok:
            return
        self.settings.setValue("export_pattern", pattern.strip())
        paths = [self.model.result(r)["path"] for r in rows]
        self.bridge.export_sounds(paths, folder, pattern.strip())

    def export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export metadata", "metadata.csv", "CSV files (*.csv)"
        )
        if path:
            ids = [i.row() for i in self.results.selectionModel().selectedRows()]
            self.bridge.export_metadata(path, [self.model.result(r)["id"] for r in ids])

    def import_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import metadata", "", "CSV files (*.csv *.txt);;All files (*)"
        )
        if path:
            self.bridge.import_metadata(path)

    def show_import_plan(self, plan: dict) -> None:
        """The import's preview; Apply (and write) makes it."""
        dialog = ImportDialog(plan, self)
        self._import_dialog = dialog  # for tests and for it to outlive this call
        dialog.finished.connect(lambda _result: self._import_chosen(dialog, plan["path"]))
        dialog.open()

    def _import_chosen(self, dialog: ImportDialog, path: str) -> None:
        if dialog.choice is not None:
            self.bridge.import_metadata(
                path, apply=True, write=dialog.choice == "write", file_ids=self.selected_ids()
            )

    def find_duplicates(self) -> DuplicatesDialog:
        """The duplicates dialog; it asks the bridge and shows what it finds."""
        dialog = getattr(self, "_duplicates_dialog", None)
        if dialog is None:
            dialog = DuplicatesDialog(self)
            dialog.find_requested.connect(self.bridge.find_duplicates)
            dialog.remove_requested.connect(self.bridge.remove_duplicates)
            self.bridge.duplicates_found.connect(dialog.show_groups)
            self._duplicates_dialog = dialog
        dialog.set_roots(self.model.roots)
        dialog.show()
        dialog.raise_()
        dialog.find()
        return dialog

    def rename_selected(self) -> None:
        """Rename to UCS: a preview dialog first (the plan comes from the query thread)."""
        ids = self.selected_ids()
        if not ids:
            return
        dialog = RenameDialog(self)
        self._rename_dialog = dialog
        dialog.preview_requested.connect(
            lambda creator, source: self.bridge.rename_ucs(ids, False, creator, source)
        )
        dialog.rename_requested.connect(
            lambda creator, source: self.bridge.rename_ucs(ids, True, creator, source)
        )
        dialog.open()
        self.bridge.rename_ucs(ids)

    def _on_rename_plan(self, plan: list) -> None:
        dialog = getattr(self, "_rename_dialog", None)
        if dialog is not None and dialog.isVisible():
            dialog.show_plan(plan)

    def undo_edit(self) -> None:
        self.bridge.undo_edit(self.selected_ids())

    def redo_edit(self) -> None:
        self.bridge.redo_edit(self.selected_ids())

    def play_from_start(self) -> None:
        """Play the current sound from its start, or only its selected region (from the
        pre-roll before it; looped when Loop is on)."""
        result = self.current_result()
        if result and self.player is not None:
            region = self.detail.waveform.selection()
            if region is None:
                self.player.play(result["path"], 0.0, self.audition_gain(result))
            else:
                try:
                    preroll = max(0.0, float(app_settings.get(self.settings, "preroll")))
                except ValueError:
                    preroll = 0.0
                looped = self.detail.loop.isChecked()
                self.player.play(
                    result["path"], max(0.0, region[0] - (0.0 if looped else preroll)),
                    self.audition_gain(result), end=None if looped else region[1],
                )  # fmt: skip
            self._remember_audition(result["path"])
            if self.detail.loop.isChecked():
                self._apply_loop(True)

    def toggle_play(self) -> None:
        if self.player is None:
            return
        result = self.current_result()
        if self.player.state != "stopped":
            self.player.stop()
        elif result:
            self.play_from_start()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    def _seek(self, seconds: float) -> None:
        result = self.current_result()
        if self.player is None or result is None:
            return
        if self.player.state != "stopped" and self.player.path == result["path"]:
            self.player.seek(seconds)
        else:
            self.player.play(result["path"], seconds, self.audition_gain(result))
            self._remember_audition(result["path"])

    def audition_gain(self, result: dict) -> float:
        """dB to play `result` at: the loudness-matching gain when that is on, else 0."""
        if not self.detail.match_loudness.isChecked():
            return 0.0
        from engine.audio.loudness import matching_gain

        try:
            target = float(app_settings.get(self.settings, "audition_loudness"))
        except ValueError:
            target = float(config.SETTINGS["audition_loudness"].default)
        return matching_gain(result.get("loudness_lufs"), result.get("true_peak_db"), target)

    def _on_match_loudness(self, on: bool) -> None:
        self.settings.setValue("match_loudness", "true" if on else "false")
        result = self.current_result()
        player = self.player
        # The sound playing now follows at once, from where it is.
        playing = player is not None and player.state != "stopped"
        if playing and result and player is not None and player.path == result["path"]:
            player.play(result["path"], player.position, self.audition_gain(result))

    def _want_view(self, start: float, end: float, columns: int, rows: int) -> None:
        """The large view needs finer peaks or a spectrogram: from the cache, else asked."""
        result = self.current_result()
        if result is None:
            return
        peaks, spectrum = self.detail.waveform.wanted()
        key = (result["path"], start, end, columns, rows)
        cached = self._spectrograms.get(key) if spectrum else None
        if cached is not None:
            self._spectrograms.move_to_end(key)
            self.detail.waveform.set_spectrogram(start, end, cached)
            spectrum = False
        if peaks or spectrum:
            self.bridge.request_view(
                result["path"], start, end, columns, rows, peaks, spectrum,
                self.detail.waveform.lanes(),
            )  # fmt: skip

    def _on_view(self, answer: dict) -> None:
        from gui.waveform import spectrogram_image

        result = self.current_result()
        if result is None or answer["path"] != result["path"]:
            return
        view = self.detail.waveform
        start, end = answer["start"], answer["end"]
        if "mins" in answer:
            view.set_detail(start, end, answer["mins"], answer["maxs"], answer["per_channel"])
        if "spectrogram" in answer:
            image = spectrogram_image(answer["spectrogram"])
            key = (answer["path"], start, end, answer["columns"], answer["rows"])
            self._spectrograms[key] = image
            while len(self._spectrograms) > SPECTROGRAM_CACHE:
                self._spectrograms.popitem(last=False)
            view.set_spectrogram(start, end, image)

    def _set_pitch(self, semitones: float) -> None:
        if self.player is not None:
            self.player.set_speed(semitones)

    def _on_loudness(self, payload: dict) -> None:
        result = self.current_result()
        region = self.detail.waveform.selection()
        if (
            result
            and payload["source"] == result["path"]
            and region == (payload["start"], payload["end"])
        ):
            self.detail.show_selection_levels(payload)

    def _set_volume(self, volume: float) -> None:
        if self.player is not None:
            self.player.set_volume(volume)

    def _apply_loop(self, on: bool) -> None:
        if self.player is None:
            return
        region = self.detail.waveform.selection()
        result = self.current_result()
        if on:
            whole = (0.0, (result or {}).get("duration") or 0.0)
            start, end = region if region else whole
            if end > start:
                self.player.set_loop(start, end)
        else:
            self.player.clear_loop()

    def _on_region(self, start: float, end: float) -> None:
        result = self.current_result()
        if result is None:
            return
        # Render the clip now, on the engine thread, so dragging it out never waits.
        self.detail.drag_clip.set_clip(None)
        self.bridge.export_clip(result["path"], start, end)
        self.bridge.measure_loudness(result["path"], start, end)
        if self.detail.loop.isChecked():
            self._apply_loop(True)

    def _on_clip(self, clip: dict) -> None:
        if "error" in clip:
            self._show_message(f"Could not render the region: {clip['error']}")
            return
        result = self.current_result()
        if result and clip["source"] == result["path"]:
            self.detail.drag_clip.set_clip(clip.get("paths") or clip["path"])

    def _update_playhead(self) -> None:
        result = self.current_result()
        player = self.player
        if player is None or result is None:
            return
        if player.error:
            self.statusBar().showMessage(f"Playback: {player.error}")
        if player.state != "stopped" and player.path == result["path"]:
            self.detail.show_position(player.position)
        else:
            self.detail.show_position(None)

    # -- actions on results ------------------------------------------------------------

    def _context_menu(self, pos) -> None:
        result = self.current_result()
        if result is None:
            return
        menu = QMenu(self)
        menu.addAction("Find similar", lambda: self.find_similar(result["path"]))
        region = self.detail.waveform.selection()
        action = menu.addAction(
            "Find similar to selected region",
            lambda: self.find_similar(result["path"], *region) if region else None,
        )
        action.setEnabled(region is not None)
        menu.addSeparator()
        menu.addAction("Reveal in file manager\tCtrl+Shift+R", self.reveal_current)
        menu.addAction("Copy path", self.copy_path)
        menu.addAction("Tag…", self.tag_current)
        menu.addAction("Favorite\tF", self.toggle_favorite)
        menu.addAction("Rename to UCS…", self.rename_selected)
        self._collection_menus(menu, result)
        menu.popup(self.results.viewport().mapToGlobal(pos))

    def _collection_menus(self, menu: QMenu, result: dict) -> None:
        """Add to collection ▸ (every collection, or a new one), Remove from collection ▸
        (the current file's): both act on every selected result."""
        add = menu.addMenu("Add to collection")
        for name in self.collection_names:
            add.addAction(name, lambda name=name: self.collect(name, True))
        if self.collection_names:
            add.addSeparator()
        add.addAction("New collection…", self.collect_in_new)
        names = (self._current or {}).get("collections") or []
        remove = menu.addMenu("Remove from collection")
        remove.setEnabled(bool(names))
        for name in names:
            remove.addAction(name, lambda name=name: self.collect(name, False))

    def selected_ids(self) -> list[int]:
        rows = [i.row() for i in self.results.selectionModel().selectedRows()]
        ids = [self.model.result(r)["id"] for r in rows]
        current = self.current_result()
        return ids or ([current["id"]] if current else [])

    def collect(self, name: str, add: bool) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        if add:
            self.bridge.add_to_collection(name, ids)
        else:
            self.bridge.remove_from_collection(name, ids)

    def collect_in_new(self) -> None:
        name, ok = QInputDialog.getText(self, "New collection", "Name:")
        if ok and name.strip():
            self.collect(name.strip(), True)

    def show_collection(self, name: str) -> None:
        """Show a collection's files (`col:"name"`, with what is typed in the search)."""
        self.set_browse_filter('col:"' + name.replace('"', "") + '"', f"collection {name}")

    def reveal_current(self) -> None:
        result = self.current_result()
        if result:
            reveal_in_file_manager(result["path"])

    def copy_path(self) -> None:
        paths = [
            self.model.result(i.row())["path"] for i in self.results.selectionModel().selectedRows()
        ]
        QGuiApplication.clipboard().setText("\n".join(paths))

    def tag_current(self) -> None:
        result = self.current_result()
        if result is None:
            return
        text, ok = QInputDialog.getText(self, "Tag", "Tags (comma separated):")
        tags = [t.strip() for t in text.split(",") if t.strip()]
        if ok and tags:
            self.bridge.add_tags(result["id"], tags)

    def toggle_favorite(self) -> None:
        result = self.current_result()
        if result is None:
            return
        favorite = not result.get("favorite", False)
        result["favorite"] = favorite
        self.bridge.set_favorite(result["id"], favorite)
        self.statusBar().showMessage(("★ " if favorite else "☆ ") + printable(result["name"]))

    # -- library ------------------------------------------------------------------------

    def rescan(self) -> None:
        self.bridge.index()
        self._live_timer.start()

    def add_folders(self, folders: list[str]) -> None:
        self.bridge.index(add_paths=list(folders))
        self._live_timer.start()
        self.statusBar().showMessage(f"Adding {', '.join(printable(f) for f in folders)}…")

    def refresh_results(self) -> None:
        """Re-run the text search after the library changed — not over a similar list,
        and not while the user has a sound selected (that would pull it away)."""
        if not self._similar_label and not self.results.currentIndex().isValid():
            self.run_search()

    def _on_index_progress(self, progress: dict) -> None:
        self.library_panel.set_progress(progress)
        text = self.library_panel.progress_label.text()
        room = self.index_status.width() - 2 * self.fontMetrics().averageCharWidth()
        self.index_status.setText(
            self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room)
        )
        self.index_status.setToolTip(f"{text}\nClick for details")
        self.index_bar.setMaximum(max(1, progress["total"]))
        self.index_bar.setValue(progress["done"])
        for w in (self.index_status, self.index_bar):
            w.setVisible(True)

    def _on_index_finished(self, summary: dict) -> None:
        self.library_panel.set_finished(summary)
        for w in (self.index_status, self.index_bar):
            w.setVisible(False)
        self._live_timer.stop()
        # Not while a sound is selected: new results would take it (and its region,
        # its audition) away from under the user.
        self.refresh_results()

    def _refresh_while_indexing(self) -> None:
        if not self.bridge.indexing:
            self._live_timer.stop()
            return
        self.bridge.refresh_status()

    def _show_status(self, status: dict) -> None:
        if self._auto_index and status["folders"]:
            self._auto_index = False
            self.bridge.index()
        if self.bridge.indexing and not self._live_timer.isActive():
            self._live_timer.start()
        self.library_panel.set_status(status)
        self.browse.set_roots(status["folders"], status.get("favorites", 0), len(self.recent))
        self.model.set_roots([f["path"] for f in status["folders"]])
        self.collection_names = [c["name"] for c in status.get("collections", [])]
        self.browse.set_collections(status.get("collections", []))
        counts = status["counts"]
        self.statusBar().showMessage(f"{counts['indexed']} sounds in {status['dir']}")
        self._library_empty = not status["folders"] and counts["files"] == 0
        self._show_empty_state()
        self.refresh_results()

    def fit_width(self, width: int) -> None:
        """On a screen too narrow for the results between both panels (1366 px laptops),
        the Metadata panel becomes a tab beside the Library panel."""
        library, metadata = self._docks
        needed = (
            self.centralWidget().minimumSizeHint().width()
            + library.minimumSizeHint().width()
            + metadata.minimumSizeHint().width()
        )
        if width < needed and metadata not in self.tabifiedDockWidgets(library):
            self.removeDockWidget(metadata)
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, metadata)
            self.tabifyDockWidget(library, metadata)
            metadata.show()
            self._browse_dock.raise_()  # browsing first, as on a wide screen

    def _show_empty_state(self) -> None:
        """The add-a-folder call while the library has no folders; example queries while
        the search field is empty and there are sounds."""
        empty = getattr(self, "_library_empty", False)
        self.results_stack.setCurrentWidget(self.empty_state if empty else self.results)
        self.examples.setVisible(not empty and not self.search_field.text().strip())

    def _show_message(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    def check_library(self) -> None:
        self.statusBar().showMessage("Checking the library…")
        self.bridge.check_library()

    def show_check(self, result: dict) -> None:
        counts = result["counts"]
        lines = [
            f"Catalog: {'sound' if result['ok'] else 'DAMAGED'} ({counts['files']} files, "
            f"{counts['errors']} unreadable, {counts['offline']} offline)"
        ]
        lines += [f"  {printable(p)}" for p in result["catalog"]]
        lines += [f"{name}: {printable(state)}" for name, state in result["side_files"].items()]
        if not result["ok"]:
            backup = result["backup"]
            lines.append(
                (f"Restore {printable(backup)}, or s" if backup else "S")
                + "ave what you can with sqlite3's .recover, or move the catalog away and "
                "rescan (tags and favorites live in it)."
            )
        self.statusBar().showMessage("Library checked" if result["ok"] else "Library DAMAGED")
        icon = QMessageBox.Icon.Information if result["ok"] else QMessageBox.Icon.Warning
        self._check_box = QMessageBox(icon, "Check library", "\n".join(lines), parent=self)
        self._check_box.open()  # not exec(): the window keeps running

    def open_settings(self) -> app_settings.SettingsDialog:
        dialog = app_settings.SettingsDialog(self.settings, self)
        dialog.accepted.connect(
            lambda: self.detail.waveform.set_time_format(
                app_settings.get(self.settings, "time_format")
            )
        )
        dialog.accepted.connect(self.model.clear_rendered)
        dialog.accepted.connect(self._render_again)
        dialog.open()
        return dialog

    def _render_again(self) -> None:
        """The transfer settings may have changed: what is ready to drag (the current
        file, its region) is rendered again with them, so a drag never delivers the old."""
        result = self.current_result()
        if result is None:
            return
        self._prepare_drag(result)
        region = self.detail.waveform.selection()
        if region is not None:
            self._on_region(*region)

    # -- drag and drop in ---------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and event.source() is None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        dropped = (local_path(u) for u in event.mimeData().urls())
        paths = [p for p in dropped if p is not None]  # catalog paths, exact to the byte
        folders = [os_path(p) for p in paths if os.path.isdir(os_path(p))]
        sounds = [p for p in paths if Path(p).suffix.lower() in AUDIO_SUFFIXES]
        if folders:
            self.add_folders(folders)
        elif sounds:
            self.find_similar(sounds[0])
        event.acceptProposedAction()

    def closeEvent(self, event) -> None:
        self.settings.sync()
        if self.player is not None:
            self.player.close()
        self.bridge.shutdown()
        super().closeEvent(event)
