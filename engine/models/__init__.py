"""Models: devices and precision, the model thread, CPU lanes, the embedding-space registry,
aisfx, CLAP and the sentence encoder.
"""
