"""Test fakes shared by several test modules: spaces whose vectors the test chooses, a
bag-of-words sentence encoder, a library builder for text search, a tiny random CLAP
saved like a hub folder, and a player that records what the window asks of it."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from engine.adapt.adapter import AdaptOptions
from engine.catalog.vectors import normalise
from engine.embed.pipeline import Embedder
from engine.models.embedding import Embedding
from tests.audio_factory import write

DIM = 8


class FakeSpace:
    """A space whose vectors the test chooses: the clip's first sample picks a direction."""

    name = "fake"
    sample_rate = 8000
    dim = 4
    has_text = False
    standardize = False

    def __init__(self, identity="fake:v1"):
        self._identity = identity
        self.calls = 0

    def identity(self):
        return self._identity

    def embed(self, clips):
        self.calls += 1
        out = []
        for clip in clips:
            windows = []
            for i, start in enumerate(range(0, len(clip), self.sample_rate)):
                vec = np.zeros(4, dtype=np.float32)
                vec[int(round(abs(clip[start]) * 10)) % 4] = 1.0
                vec[(i + 1) % 4] += 0.1
                windows.append((start / self.sample_rate, start / self.sample_rate + 1.0, vec))
            mean = np.mean([w[2] for w in windows], axis=0)
            out.append(Embedding(mean, windows))
        return out


def dc(seconds, level, rate=8000):
    return np.full((int(seconds * rate), 1), level, dtype=np.float32)


class WordEncoder:
    """Stand-in sentence encoder: hashed bag of words, L2-normalised (384 dims)."""

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size=64):
        self.calls += 1
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 384] += 1.0
        return normalise(out)


class FakeAisfx(FakeSpace):
    """FakeSpace under the name the Library's text search uses."""

    name = "aisfx"


# Sound directions of FakeSpace (a DC level picks one) and names that describe them.
NAMED = {
    0.0: ["thunder rumble", "thunder crack", "distant thunder", "storm thunder", "thunderclap"],
    0.1: ["rain on roof", "heavy rain", "rain drops", "light rain", "rain on window"],
    0.2: ["door slam", "door knock", "wooden door", "door close", "door creak"],
    0.3: ["bird chirp", "songbird", "bird call", "birds singing", "bird tweet"],
}
SMALL = AdaptOptions(steps=40, dim=16)


def build(tmp_path, library, space=None):
    """A library of named sounds in four directions plus two unnamed ones."""
    root = tmp_path / "lib"
    for level, names in NAMED.items():
        for i, name in enumerate(names * 2):
            write(root / f"{name.replace(' ', '_')}_{i}.wav", dc(1, level), 8000)
    write(root / "pcv637.wav", dc(1, 0.3), 8000)  # sounds like a bird, named nothing
    write(root / "zz_0042.wav", dc(1, 0.2), 8000)  # sounds like a door
    library.add_folders([root])
    library.scan(workers=1)
    Embedder(library.catalog, [space or FakeSpace()]).run()
    return root


TINY_TEXT = {
    "vocab_size": 300,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 66,
}
# spec_size stays 256: 64 mel bins x 1001 frames are resized to a 256 x 256 image.
TINY_AUDIO = {
    "patch_embeds_hidden_size": 8,
    "depths": [1, 1],
    "num_attention_heads": [1, 2],
    "hidden_size": 16,  # = patch_embeds_hidden_size * 2 ** (len(depths) - 1)
    "window_size": 8,
    "mlp_ratio": 2.0,
    "num_classes": 4,
}


def extractor(truncation: str = "rand_trunc"):
    from transformers import ClapFeatureExtractor

    # laion/clap-htsat-unfused's preprocessor_config.json: 50-14000 Hz, rand_trunc.
    return ClapFeatureExtractor(frequency_min=50, frequency_max=14000, truncation=truncation)


def tokenizer():
    from tokenizers import pre_tokenizers
    from transformers import RobertaTokenizer

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for symbol in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(symbol, len(vocab))
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=[])


def save_tiny_clap(folder: Path) -> Path:
    """A tiny randomly initialised ClapModel and its processor, saved like a hub folder."""
    from transformers import ClapConfig, ClapModel, ClapProcessor

    torch.manual_seed(0)
    config = ClapConfig(text_config=TINY_TEXT, audio_config=TINY_AUDIO, projection_dim=DIM)
    model = ClapModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    ClapProcessor(feature_extractor=extractor(), tokenizer=tokenizer()).save_pretrained(folder)
    return folder


class FakePlayer:
    """Records what the window asks of the audition engine."""

    def __init__(self):
        self.calls = []
        self.gains = []  # the gain_db of each play
        self.state = "stopped"
        self.path = None
        self.position = 0.0
        self.error = None

    def play(self, path, start=0.0, gain_db=0.0, end=None):
        self.calls.append(("play", path, start) if end is None else ("play", path, start, end))
        self.gains.append(gain_db)
        self.state, self.path, self.position = "playing", path, start

    def set_speed(self, semitones):
        self.calls.append(("speed", semitones))

    def stop(self):
        self.calls.append(("stop",))
        self.state = "stopped"

    def seek(self, seconds):
        self.calls.append(("seek", seconds))

    def set_loop(self, start, end):
        self.calls.append(("loop", start, end))

    def clear_loop(self):
        self.calls.append(("unloop",))

    def set_volume(self, volume):
        self.calls.append(("volume", volume))

    def close(self):
        pass


def with_member(source: Path, target: Path, member: str, value: np.ndarray) -> Path:
    """A copy of the .npz `source` at `target` with `member` (e.g. "b1.npy") replaced by
    `value`, every other member byte for byte: for tests of damaged knowledge files."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w") as out:
        for item in z.infolist():
            blob = z.read(item)
            if item.filename == member:
                buf = io.BytesIO()
                np.save(buf, value)
                blob = buf.getvalue()
            out.writestr(item, blob)
    return target
