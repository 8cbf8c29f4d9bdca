"""Starting the desktop app. Called on the main thread by main.py."""

from __future__ import annotations

import sys


def run_app(library_dir: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication

    from gui.bridge import EngineBridge
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Sonarium")
    bridge = EngineBridge(library_dir)
    window = MainWindow(bridge)
    window.show()
    code = app.exec()
    bridge.shutdown()
    return code
