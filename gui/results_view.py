"""The results table. A drag out starts only when every dragged file is ready to go out
as the transfer settings deliver it: when some are not rendered yet (a selection of many,
a file too long to render on every click), the view asks for them (``renders_needed``)
instead of handing the target the unconverted sources. GUI thread only."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QTableView


class ResultsView(QTableView):
    """Emits ``renders_needed(paths)`` instead of starting a drag of unrendered files."""

    renders_needed = Signal(list)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        # A refused drag's press is over for the view: with the button still down, Qt
        # would take the rest of the movement as a rubber-band selection (and scroll).
        self._refused_press = False

    def startDrag(self, actions: Qt.DropAction) -> None:  # noqa: N802 (a Qt override)
        model = self.model()
        missing = model.unrendered(self.selectedIndexes()) if hasattr(model, "unrendered") else []
        if missing:
            self._refused_press = True
            self.renders_needed.emit(missing)
            return
        super().startDrag(actions)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (a Qt override)
        if self._refused_press and event.buttons() != Qt.MouseButton.NoButton:
            event.accept()
            return
        self._refused_press = False
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (a Qt override)
        if self._refused_press:
            self._refused_press = False
            event.accept()
            return
        super().mouseReleaseEvent(event)
