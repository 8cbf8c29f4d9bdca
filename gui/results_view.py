"""The results table. A drag out starts only when every dragged file is ready to go out
as the transfer settings deliver it: when some are not rendered yet (a selection of many,
a file too long to render on every click), the view asks for them (``renders_needed``)
instead of handing the target the unconverted sources. GUI thread only."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTableView


class ResultsView(QTableView):
    """Emits ``renders_needed(paths)`` instead of starting a drag of unrendered files."""

    renders_needed = Signal(list)

    def startDrag(self, actions: Qt.DropAction) -> None:  # noqa: N802 (a Qt override)
        model = self.model()
        missing = model.unrendered(self.selectedIndexes()) if hasattr(model, "unrendered") else []
        if missing:
            self.renders_needed.emit(missing)
            return
        super().startDrag(actions)
