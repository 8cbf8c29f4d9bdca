"""What the results area shows before there is anything to search: a call to add a
folder of sounds (or drop one on the window), and once sounds are indexed, example
queries to click. GUI thread only."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

# Queries a new user can click to see what search does (words, a description, filters).
EXAMPLES = ("door slam", "rain on a window", "distant thunder", "glass breaking",
            "crowd cheering", "whoosh dur:<2", "footsteps gravel")  # fmt: skip


class EmptyState(QWidget):
    """Emits ``add_requested`` when the user asks to add a folder."""

    add_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        title = QLabel("Add a folder of sounds")
        title.setStyleSheet("font-size: 20pt; font-weight: 600;")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text = QLabel(
            "Sonarium indexes your own sample folders and finds sounds by description "
            "(“metal door slam with a long tail”), by keywords and metadata, or by "
            "example, even when the files are badly named. Everything stays on this "
            "computer."
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setMaximumWidth(560)
        self.add_button = QPushButton("Add folder…")
        self.add_button.setMinimumHeight(36)
        self.add_button.setMinimumWidth(180)
        drop = QLabel("or drop a folder anywhere on this window")
        drop.setAlignment(Qt.AlignmentFlag.AlignCenter)
        drop.setEnabled(False)  # drawn in the palette's quieter colour
        self.text = text
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(title, 0, Qt.AlignmentFlag.AlignHCenter)
        # A wrapped label given an alignment in a box layout loses its height-for-width
        # and is drawn clipped over the title; between stretches it keeps it.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(text, 10)
        row.addStretch(1)
        layout.addLayout(row)
        for w in (self.add_button, drop):
            layout.addWidget(w, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
        self.add_button.clicked.connect(self.add_requested)


def examples_html() -> str:
    """ "Try: door slam · rain on a window · ..." as links (href = the query)."""
    links = " · ".join(f"<a href='{html.escape(q, quote=True)}'>{html.escape(q)}</a>"
                       for q in EXAMPLES)  # fmt: skip
    return f"Try: {links}"
