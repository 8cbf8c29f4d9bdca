"""Audio in and out: decoding and resampling for models, region export, playback.

export and player never import torch; decode and resample may.
"""
