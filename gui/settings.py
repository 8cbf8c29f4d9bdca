"""Persistent app settings (QSettings) and the settings dialog. GUI thread only.

What each setting means, its default and its choices come from engine.config (the one
registry); this module only stores the user's picks and hands them to the engine (as the
settings' environment variables, which the indexing child process inherits).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from engine import config

# App state kept beside the settings that is not a setting itself.
STATE_DEFAULTS = {"history": "", "recent": "", "export_pattern": "{name}"}
# Keys earlier versions stored under another name.
_LEGACY_KEYS = {"clap_model": "model"}
# Settings the app passes on to the engine when the user picked a value.
ENGINE_SETTINGS = (
    "library", "device", "precision", "clap_model", "similar_space", "jobs", "cluster",
    "path_map", "write_on_edit", "keep_mtime", "transfer_rate", "transfer_bits",
    "transfer_format", "transfer_channels", "transfer_fade_in", "transfer_fade_out",
    "transfer_normalize", "transfer_handles",
)  # fmt: skip
# How dragged regions and exported sounds are delivered (engine/audio/transfer.py); they
# apply at once, like the switches.
TRANSFER = {"transfer_rate": "Sample rate", "transfer_bits": "Bit depth",
            "transfer_format": "Format", "transfer_channels": "Channels",
            "transfer_fade_in": "Fade in (s)", "transfer_fade_out": "Fade out (s)",
            "transfer_normalize": "Normalise", "transfer_handles": "Handles (s)"}  # fmt: skip
# Yes/no settings shown as check boxes; they apply at once (the engine reads them per call).
SWITCHES = {"write_on_edit": "Write metadata edits into the files at once",
            "keep_mtime": "Keep a file's modification time when writing metadata"}  # fmt: skip


def open_settings(path: str | None = None) -> QSettings:
    """The app's settings; a file path (tests) gives an INI file there instead."""
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("Sonarium", "Sonarium")


def stored(settings: QSettings, key: str) -> str:
    """What the user picked for ``key`` ('' when nothing was picked)."""
    value = settings.value(key)
    if value is None and key in _LEGACY_KEYS:
        value = settings.value(_LEGACY_KEYS[key])
    return "" if value is None else str(value)


def get(settings: QSettings, key: str) -> str:
    """The value in effect for ``key``: the environment's when its variable is set (the
    command line and the environment win), else the user's pick, else the default."""
    setting = config.SETTINGS.get(key)
    if setting is not None and setting.env and os.environ.get(setting.env, "").strip():
        return config.value(key)
    return picked(settings, key)


def picked(settings: QSettings, key: str) -> str:
    """The user's pick for ``key``, else its default: what the Settings dialog shows and
    saves (never a value that only the environment gave this run)."""
    value = stored(settings, key)
    if value:
        return value
    if key in config.SETTINGS:
        return config.SETTINGS[key].default
    return STATE_DEFAULTS.get(key, "")


def apply_to_engine(settings: QSettings) -> None:
    """Make the user's picks this process's engine settings, unless the command line or
    the environment already chose (those win). Call before the bridge starts."""
    for name in ENGINE_SETTINGS:
        env = config.SETTINGS[name].env
        value = stored(settings, name)
        if env and value and env not in os.environ:
            config.export(name, value)


def output_devices() -> list[str]:
    """Names of audio output devices ('' = system default); empty when PortAudio is absent."""
    try:
        import sounddevice

        return [d["name"] for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    except Exception:
        return []


def _choices(name: str) -> QComboBox:
    box = QComboBox()
    box.addItems(list(config.SETTINGS[name].choices or ()))
    box.setToolTip(config.SETTINGS[name].help)
    return box


class SettingsDialog(QDialog):
    """Model, compute device, precision, audio output, library location, find-similar space."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.model = QLineEdit(stored(settings, "clap_model"))
        self.model.setPlaceholderText(f"hub id ({config.DEFAULT_CLAP_MODEL}) or a local folder")
        self.model.setToolTip(config.SETTINGS["clap_model"].help)
        self.device = _choices("device")
        self.device.setCurrentText(picked(settings, "device"))
        self.precision = _choices("precision")
        self.precision.setCurrentText(picked(settings, "precision"))
        self.audio_device = QComboBox()
        self.audio_device.addItems(["", *output_devices()])
        self.audio_device.setItemText(0, "system default")
        current = picked(settings, "audio_device")
        if current:
            self.audio_device.setCurrentText(current)
        self.library = QLineEdit(stored(settings, "library"))
        self.library.setPlaceholderText("default user data folder")
        self.space = _choices("similar_space")
        self.space.setCurrentText(picked(settings, "similar_space"))
        self.jobs = QSpinBox()
        self.jobs.setRange(0, config.MAX_JOBS)
        self.jobs.setSpecialValueText("auto")  # 0 shows as "auto"
        jobs = picked(settings, "jobs")
        self.jobs.setValue(int(jobs) if jobs.isdigit() else 0)
        self.jobs.setToolTip(config.SETTINGS["jobs"].help)
        self.cluster = QLineEdit(stored(settings, "cluster"))
        self.cluster.setPlaceholderText("this machine (or ray, ray:ADDRESS)")
        self.cluster.setToolTip(config.SETTINGS["cluster"].help)
        self.path_map = QLineEdit(stored(settings, "path_map"))
        self.path_map.setPlaceholderText("/Volumes/SFX=/mnt/sfx; ...")
        self.path_map.setToolTip(config.SETTINGS["path_map"].help)
        form = QFormLayout(self)
        form.addRow("Text-search model", self.model)
        form.addRow("Compute device", self.device)
        form.addRow("Model precision", self.precision)
        form.addRow("Audio output", self.audio_device)
        form.addRow("Library folder", self.library)
        form.addRow("Find-similar model", self.space)
        form.addRow("Files read at once (scan)", self.jobs)
        self.theme = _choices("theme")
        self.theme.setCurrentText(picked(settings, "theme"))
        form.addRow("Theme (after a restart)", self.theme)
        self.time_format = _choices("time_format")
        self.time_format.setCurrentText(picked(settings, "time_format"))
        form.addRow("Time ruler", self.time_format)
        self.audition_loudness = QLineEdit(picked(settings, "audition_loudness"))
        self.audition_loudness.setToolTip(config.SETTINGS["audition_loudness"].help)
        form.addRow("Audition loudness (LUFS)", self.audition_loudness)
        self.preroll = QLineEdit(picked(settings, "preroll"))
        self.preroll.setToolTip(config.SETTINGS["preroll"].help)
        form.addRow("Pre-roll before a selection (s)", self.preroll)
        form.addRow("Index on a Ray cluster", self.cluster)
        form.addRow("Folders on the cluster", self.path_map)
        self.switches: dict[str, QCheckBox] = {}
        for name, text in SWITCHES.items():
            box = QCheckBox(text)
            box.setToolTip(config.SETTINGS[name].help)
            box.setChecked(picked(settings, name).lower() in ("true", "yes", "on", "1"))
            self.switches[name] = box
            form.addRow(box)
        form.addRow(QLabel("<b>Transfer</b> (dragged regions and Export…)"))
        self.transfer: dict[str, QComboBox | QLineEdit] = {}
        for name, text in TRANSFER.items():
            widget: QComboBox | QLineEdit
            if config.SETTINGS[name].choices:
                widget = _choices(name)
                widget.setCurrentText(picked(settings, name))
            else:
                widget = QLineEdit(picked(settings, name))
                widget.setToolTip(config.SETTINGS[name].help)
            self.transfer[name] = widget
            form.addRow(text, widget)
        form.addRow(
            QLabel(
                "Library folder, model, device, precision, scan jobs and the cluster apply "
                "after a restart."
            )
        )
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def transfer_values(self) -> dict[str, str]:
        return {
            name: w.currentText() if isinstance(w, QComboBox) else w.text().strip()
            for name, w in self.transfer.items()
        }

    def accept(self) -> None:
        from engine.audio.transfer import Transfer
        from engine.errors import TransferError

        values = self.transfer_values()
        saved = {name: os.environ.get(config.SETTINGS[name].env or "") for name in values}
        try:
            for name, value in values.items():
                os.environ[config.SETTINGS[name].env or ""] = value
            Transfer.from_settings()  # refused here, not at the next drag
        except TransferError as exc:
            for name, old in saved.items():
                env = config.SETTINGS[name].env or ""
                if old is None:
                    os.environ.pop(env, None)
                else:
                    os.environ[env] = old
            QMessageBox.warning(self, "Transfer settings", str(exc))
            return
        for name, value in values.items():
            self.settings.setValue(name, value)
        self.settings.setValue("clap_model", self.model.text().strip())
        self.settings.remove(_LEGACY_KEYS["clap_model"])
        self.settings.setValue("device", self.device.currentText())
        self.settings.setValue("precision", self.precision.currentText())
        audio = "" if self.audio_device.currentIndex() == 0 else self.audio_device.currentText()
        self.settings.setValue("audio_device", audio)
        self.settings.setValue("library", self.library.text().strip())
        self.settings.setValue("similar_space", self.space.currentText())
        self.settings.setValue("time_format", self.time_format.currentText())
        self.settings.setValue("theme", self.theme.currentText())
        try:
            level = float(self.audition_loudness.text())
            if not -70.0 <= level <= 0.0:
                raise ValueError
        except ValueError:
            QMessageBox.warning(self, "Audition loudness", "Give a loudness from -70 to 0 LUFS")
            return
        self.settings.setValue("audition_loudness", f"{level:g}")
        try:
            preroll = float(self.preroll.text() or 0)
            if not 0.0 <= preroll <= 10.0:
                raise ValueError
        except ValueError:
            QMessageBox.warning(self, "Pre-roll", "Give a pre-roll from 0 to 10 seconds")
            return
        self.settings.setValue("preroll", f"{preroll:g}")
        self.settings.setValue("jobs", str(self.jobs.value()) if self.jobs.value() else "auto")
        self.settings.setValue("cluster", self.cluster.text().strip())
        self.settings.setValue("path_map", self.path_map.text().strip())
        for name, box in self.switches.items():
            value = "true" if box.isChecked() else "false"
            self.settings.setValue(name, value)
            env = config.SETTINGS[name].env
            if env and os.environ.get(env) != value:
                os.environ[env] = value  # the engine reads it on its next write
        self.settings.sync()
        super().accept()
