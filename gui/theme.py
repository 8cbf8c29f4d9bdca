"""The app's looks: Qt's Fusion style with a dark palette (the default: audio tools are
used in dark rooms) or its light one. GUI thread, before the window is built."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

# Drawn for the project (CC0); the app's other symbols are Unicode text (▶ ■ ★ ⇲).
ICON = Path(__file__).resolve().parent.parent / "resources" / "icons" / "sonarium.svg"

THEMES = ("dark", "light")

_DARK = {
    QPalette.ColorRole.Window: "#202226",
    QPalette.ColorRole.WindowText: "#d8dce2",
    QPalette.ColorRole.Base: "#17191c",
    QPalette.ColorRole.AlternateBase: "#1d2024",
    QPalette.ColorRole.ToolTipBase: "#2a2d33",
    QPalette.ColorRole.ToolTipText: "#e6e9ee",
    QPalette.ColorRole.PlaceholderText: "#7d858f",
    QPalette.ColorRole.Text: "#d8dce2",
    QPalette.ColorRole.Button: "#2a2d33",
    QPalette.ColorRole.ButtonText: "#d8dce2",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Link: "#4fb3e8",
    QPalette.ColorRole.Highlight: "#2f6fa3",
    QPalette.ColorRole.HighlightedText: "#ffffff",
}
_DARK_DISABLED = {
    QPalette.ColorRole.WindowText: "#6b717a",
    QPalette.ColorRole.Text: "#6b717a",
    QPalette.ColorRole.ButtonText: "#6b717a",
}


def palette(name: str) -> QPalette:
    """The palette of a theme ("dark" or "light"; anything else reads as dark)."""
    if name == "light":
        return QApplication.style().standardPalette()
    pal = QPalette()
    for role, colour in _DARK.items():
        pal.setColor(role, QColor(colour))
    for role, colour in _DARK_DISABLED.items():
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return pal


def apply_theme(app: QApplication, name: str) -> None:
    """Fusion, which draws the same on every platform, in the theme's colours."""
    app.setStyle("Fusion")
    app.setPalette(palette(name))
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
