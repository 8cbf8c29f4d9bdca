"""Sonarium's PySide6 desktop app: a thin client of engine/."""
