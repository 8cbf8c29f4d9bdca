"""Every setting and shared default, declared once. Any thread; holds no state.

A :class:`Setting` has a name, the environment variable that sets it for a process (and
the indexing child process it starts), its default, its choices and its help. The engine
reads values with :func:`value`; the CLI builds its global options from :data:`SETTINGS`;
the GUI's Settings dialog takes its choices and defaults from here and stores the user's
picks (QSettings), which it hands to the engine through the same environment variables.
README documents every setting (a test checks it).

Defaults that are not settings but must agree everywhere (the audio file suffixes, the
default find-similar space) live here too, so no copy can drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Every suffix the scanner indexes; dropping any of them on the window adds or matches it.
AUDIO_SUFFIXES = frozenset(
    {
        ".wav", ".wave", ".bwf", ".rf64", ".w64", ".aif", ".aiff", ".aifc", ".flac", ".ogg",
        ".oga", ".opus", ".mp3", ".caf", ".m4a", ".aac", ".wma", ".wv", ".ape",
    }
)  # fmt: skip

# The suffixes of the formats Sonarium writes metadata into (engine/curate/write.py); a
# file of one of them that does not start like it is damaged or misnamed.
WRITABLE_SUFFIXES = frozenset(
    {".wav", ".wave", ".bwf", ".rf64", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga",
     ".opus", ".mp3"}
)  # fmt: skip

# What a file header may declare and still be read: every real rate (8 kHz telephone to
# 768 kHz DXD-and-beyond, film pull-down rates in between) and channel count (up to 256,
# e.g. ambisonics and multitrack polywavs). Anything outside is an error row with its
# reason, never a value that sizes memory.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 256

# Set in every Sonarium process before numpy loads its BLAS (prepare_process, from the
# CLI's and the app's entry; children inherit it). OpenBLAS's idle threads otherwise spin
# for 2^28 cycles (about 0.1 s) after each product, taking both cores from whatever runs
# next: the next keystroke's SQLite work, a search's own helper threads. 2^4 cycles:
# they sleep at once (docs/measurements.md, studio scale).
PROCESS_ENVIRONMENT = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def prepare_process() -> None:
    """Apply PROCESS_ENVIRONMENT where the user has not set those variables; has an
    effect only before numpy is first imported. Call first thing, on the main thread."""
    for name, default in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, default)


SPACE_NAMES = ("aisfx", "mfcc", "clap")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32")
DEFAULT_CLAP_MODEL = "laion/clap-htsat-unfused"
# Results the app asks a query for at once; scrolling to the end asks for the next page.
# Every query's cost grows with what it returns (scores, moments, rows), so typing stays
# instant on a million files only when a keystroke asks for one page (bench/scale_bench.py).
RESULT_PAGE = 200


@dataclass(frozen=True)
class Setting:
    """One user-visible setting. ``env`` is None for settings that only the app keeps."""

    name: str
    env: str | None
    default: str
    help: str
    choices: tuple[str, ...] | None = None
    cli_flag: str | None = None
    metavar: str | None = None


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "library", "SONARIUM_LIBRARY", "",
            "library folder (empty: the platform's user data folder)",
            cli_flag="--library", metavar="DIR",
        ),
        Setting(
            "device", "SONARIUM_DEVICE", "auto",
            "compute device for models (auto: CUDA, then Apple MPS, then CPU)",
            choices=DEVICES, cli_flag="--device",
        ),
        Setting(
            "precision", "SONARIUM_PRECISION", "auto",
            "model precision: auto (bfloat16 on CPUs with AMX/AVX-512 BF16, float16 on "
            "CUDA) or float32 everywhere",
            choices=PRECISIONS, cli_flag="--precision",
        ),
        Setting(
            "clap_model", "SONARIUM_CLAP_MODEL", DEFAULT_CLAP_MODEL,
            "CLAP model for text search: a Hugging Face hub id in the local cache or a folder",
            cli_flag="--model", metavar="ID_OR_PATH",
        ),
        Setting(
            "similar_space", "SONARIUM_SIMILAR_SPACE", "aisfx",
            "model that find-similar compares sounds with",
            choices=SPACE_NAMES, cli_flag="--space",
        ),
        Setting(
            "jobs", "SONARIUM_JOBS", "auto",
            "how many files a scan reads at once, each in its own worker process "
            "(auto: one per core, at most 8)",
            cli_flag="--jobs", metavar="N",
        ),
        Setting(
            "cluster", "SONARIUM_CLUSTER", "",
            "decode and embed on a Ray cluster: ray (a local one, or the one RAY_ADDRESS "
            "names) or ray:ADDRESS; empty: on this machine",
        ),
        Setting(
            "path_map", "SONARIUM_PATH_MAP", "",
            "where the cluster's workers find the library's folders: LOCAL=WORKER, several "
            "separated by ;",
        ),
        Setting(
            "audio_device", None, "",
            "audio output device for audition (empty: the system default)",
        ),
        Setting("autoplay", None, "true", "play each result as it is selected"),
        Setting(
            "theme", None, "dark", "the app's colours: dark or light (after a restart)",
            choices=("dark", "light"),
        ),
        Setting(
            "time_format", None, "seconds",
            "how the time ruler counts: seconds, milliseconds, samples or timecode (25 fps)",
            choices=("seconds", "milliseconds", "samples", "timecode"),
        ),
        Setting(
            "preroll", None, "0",
            "seconds played before a selected region when it is auditioned alone",
        ),
        Setting(
            "match_loudness", None, "false",
            "audition every file at the audition loudness (gain held back so the true "
            "peak stays under -1 dBTP)",
        ),
        Setting(
            "audition_loudness", None, "-23",
            "the loudness (LUFS) loudness-matched audition plays every file at",
        ),
        Setting(
            "write_on_edit", "SONARIUM_WRITE_ON_EDIT", "false",
            "write metadata edits into the audio files as they are made (false: the "
            "catalog keeps them until they are written on purpose)",
        ),
        Setting(
            "transfer_rate", "SONARIUM_TRANSFER_RATE", "source",
            "sample rate of dragged and exported sounds (source: the file's own)",
            choices=("source", "44100", "48000", "88200", "96000", "192000"),
        ),
        Setting(
            "transfer_bits", "SONARIUM_TRANSFER_BITS", "source",
            "bit depth of dragged and exported sounds (source: the file's own)",
            choices=("source", "16", "24", "32", "float"),
        ),
        Setting(
            "transfer_format", "SONARIUM_TRANSFER_FORMAT", "wav",
            "file format of dragged and exported sounds", choices=("wav", "aiff", "flac"),
        ),
        Setting(
            "transfer_channels", "SONARIUM_TRANSFER_CHANNELS", "keep",
            "channels of dragged and exported sounds: keep, mono (their average) or split "
            "(a file per channel)",
            choices=("keep", "mono", "split"),
        ),
        Setting(
            "transfer_fade_in", "SONARIUM_TRANSFER_FADE_IN", "0",
            "fade-in length in seconds for dragged and exported sounds",
        ),
        Setting(
            "transfer_fade_out", "SONARIUM_TRANSFER_FADE_OUT", "0",
            "fade-out length in seconds for dragged and exported sounds",
        ),
        Setting(
            "transfer_normalize", "SONARIUM_TRANSFER_NORMALIZE", "off",
            "normalise dragged and exported sounds: off, a true peak (-1dBTP), a sample "
            "peak (-0.1dBFS) or a loudness (-23LUFS, never above -1 dBTP)",
        ),
        Setting(
            "transfer_handles", "SONARIUM_TRANSFER_HANDLES", "0",
            "seconds of handle added before and after a dragged or exported region",
        ),
        Setting(
            "keep_mtime", "SONARIUM_KEEP_MTIME", "true",
            "keep an audio file's modification time when metadata is written into it "
            "(some DAWs and sync tools go by it)",
        ),
    )
}  # fmt: skip


def value(name: str) -> str:
    """The setting's value in this process: its environment variable when set to a valid
    value, else its default. Unknown choices read as the default."""
    setting = SETTINGS[name]
    raw = os.environ.get(setting.env, "") if setting.env else ""
    raw = raw.strip()
    if setting.choices is not None:
        raw = raw.lower()
        return raw if raw in setting.choices else setting.default
    return raw or setting.default


def enabled(name: str) -> bool:
    """A yes/no setting's value: true, yes, on or 1 (any case) mean yes."""
    return value(name).lower() in ("true", "yes", "on", "1")


def export(name: str, raw: str | None) -> None:
    """Make ``raw`` this process's value of a setting (and its children's): front ends call
    this with an explicit choice (a CLI flag, the app's stored setting)."""
    setting = SETTINGS[name]
    if setting.env is None:
        raise ValueError(f"{name} is not an environment setting")
    if raw:
        os.environ[setting.env] = raw


DEFAULT_SIMILAR_SPACE = SETTINGS["similar_space"].default
MAX_AUTO_JOBS = 8
MAX_JOBS = 64


def scan_jobs() -> int:
    """The scan's worker count in this process: the `jobs` setting when it is a whole
    number from 1 to MAX_JOBS, else one per core up to MAX_AUTO_JOBS."""
    raw = value("jobs")
    if raw.isdigit() and 1 <= int(raw) <= MAX_JOBS:
        return int(raw)
    return max(1, min(MAX_AUTO_JOBS, os.cpu_count() or 1))


def cluster_setting() -> tuple[str | None, tuple[str, ...]]:
    """(cluster, path map entries) of the `cluster` and `path_map` settings."""
    entries = tuple(e.strip() for e in value("path_map").split(";") if e.strip())
    return value("cluster") or None, entries
