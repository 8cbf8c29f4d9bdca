"""Starting the desktop app, and rendering it to a PNG. Called on the main thread."""

from __future__ import annotations

import os
import sys


def _make_player(settings):
    """The audition player, or None when the audio engine cannot start at all."""
    from gui import settings as app_settings

    try:
        from engine.audio.player import Player

        return Player(device=app_settings.get(settings, "audio_device") or None)
    except Exception as exc:  # PortAudio missing: browsing and search still work
        print(f"audio playback unavailable: {exc}", file=sys.stderr)
        return None


def run_app(library_dir: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from gui import settings as app_settings
    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow
    from gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Sonarium")
    settings = app_settings.open_settings()
    apply_theme(app, app_settings.get(settings, "theme"))
    app_settings.apply_to_engine(settings)  # --library etc. and the environment win
    from engine import config

    bridge = EngineBridge(library_dir, device=config.value("device"))
    window = MainWindow(bridge, _make_player(settings), settings)
    window.show()
    code = app.exec()
    bridge.shutdown()
    return code


def screenshot(
    out: str, query: str = "", library_dir: str | None = None, timeout_ms: int = 30000,
    select: int = 0, view: str = "waveform", size: tuple[int, int] | None = None,
    theme: str = "dark", duplicates: bool = False,
) -> int:  # fmt: skip
    """Render the main window with the results for `query` to a PNG, then exit: result
    `select` selected, the large view as `view` (waveform, spectrogram or both), the
    window `size` (width, height) in the `theme`; `duplicates`: the duplicates dialog
    (near ones too) instead of the window."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui import settings as app_settings
    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow
    from gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv)
    apply_theme(app, theme)
    bridge = EngineBridge(library_dir)
    # Throwaway settings: a screenshot must not change the user's history or toggles,
    # nor start indexing.
    scratch = tempfile.mkdtemp(prefix="sonarium-shot-")
    window = MainWindow(
        bridge, None, app_settings.open_settings(os.path.join(scratch, "s.ini")), auto_index=False
    )
    window.detail.autoplay.setChecked(False)
    if size is not None:
        window.fit_width(size[0])
        window.resize(*size)
    state: dict = {"saved": False, "target": window}

    def save() -> None:
        if state["saved"]:
            return
        state["saved"] = True
        state["target"].grab().save(out)
        window.close()
        app.quit()

    def later() -> None:
        QTimer.singleShot(600, save)

    def on_view(answer: dict) -> None:
        current = window.current_result()
        if "spectrogram" in answer and current and answer["path"] == current["path"]:
            later()

    def on_detail(row: dict) -> None:
        current = window.current_result()
        if current is None or row["id"] != current["id"]:
            return  # the detail of a row selected before
        bridge.detail_ready.disconnect(on_detail)
        if view != "waveform":
            bridge.view_ready.connect(on_view)
            window.detail.view_mode.setCurrentText(view)
        else:
            later()

    def on_results(_payload) -> None:
        bridge.results_ready.disconnect(on_results)
        rows = window.model.rowCount()
        if duplicates:
            dialog = window.find_duplicates()
            dialog.near.setChecked(True)
            dialog.resize(size[0] if size else 1000, 560)
            state["target"] = dialog
            # Opening the dialog asked for exact copies; the picture waits for the answer
            # to this second, near request (the curating thread answers in order).
            answers: list = []

            def on_found(groups: list) -> None:
                answers.append(groups)
                if len(answers) == 2:
                    later()

            bridge.duplicates_found.connect(on_found)
            dialog.find()
        elif rows:
            bridge.detail_ready.connect(on_detail)
            window.results.selectRow(min(max(0, select), rows - 1))
        else:
            later()

    def start() -> None:
        bridge.results_ready.disconnect(start_cb)
        bridge.results_ready.connect(on_results)
        window.search_field.setText(query)
        # Typing's debounce would search again 150 ms later and replace the results
        # (and the selection) the picture is waiting on.
        window._debounce.stop()
        window.run_search()

    start_cb = lambda _p: QTimer.singleShot(0, start)  # noqa: E731
    bridge.results_ready.connect(start_cb)
    QTimer.singleShot(timeout_ms, save)
    window.show()
    app.exec()
    bridge.shutdown()
    return 0 if os.path.exists(out) else 1
