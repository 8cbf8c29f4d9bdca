"""The catalog: the SQLite truth about a library (files, user data, settings, vectors).

Plain sqlite and numpy; never imports torch, torchaudio or faiss.
"""
