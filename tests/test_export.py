import os
import time

import numpy as np
import pytest
import soundfile as sf

from engine.audio.export import cleanup, export_region
from tests.audio_factory import noise, write


@pytest.mark.parametrize(
    ("subtype", "dtype"),
    [("PCM_16", "int16"), ("PCM_24", "int32"), ("FLOAT", "float32"), ("PCM_U8", "int16")],
)
def test_region_export_has_exactly_the_source_samples(tmp_path, subtype, dtype):
    rate = 48000
    src = write(tmp_path / "door slam ü.wav", noise(2.0, rate=rate, channels=2), rate, subtype)
    clip = export_region(src, 0.5, 1.25, folder=tmp_path / "clips")
    assert clip.name == "door slam ü_0.500-1.250s.wav"
    info = sf.info(str(clip))
    assert (info.samplerate, info.channels, info.subtype) == (rate, 2, subtype)
    original, _ = sf.read(str(src), dtype=dtype)
    cut, _ = sf.read(str(clip), dtype=dtype)
    assert np.array_equal(cut, original[24000:60000])


def test_compressed_source_becomes_24_bit(tmp_path):
    src = write(tmp_path / "a.flac", noise(1.0), 44100, "PCM_16")
    clip = export_region(src, 0.0, 0.5, folder=tmp_path / "c")
    assert sf.info(str(clip)).subtype == "PCM_16" or sf.info(str(clip)).subtype == "PCM_24"
    ogg = write(tmp_path / "b.ogg", noise(1.0), 44100, "VORBIS")
    assert sf.info(str(export_region(ogg, 0.1, 0.2, folder=tmp_path / "c"))).subtype == "PCM_24"


def test_empty_region_is_refused(tmp_path):
    src = write(tmp_path / "a.wav", noise(0.5), 44100)
    with pytest.raises(ValueError):
        export_region(src, 0.6, 0.9, folder=tmp_path / "c")


def test_old_clips_are_cleaned_up(tmp_path):
    old = tmp_path / "old.wav"
    new = tmp_path / "new.wav"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    assert cleanup(tmp_path) == 1
    assert not old.exists() and new.exists()
