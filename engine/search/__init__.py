"""Search: words, query syntax, keyword (FTS5/BM25), hybrid fusion, find-similar, vector indexes.

words, query and keyword never import torch, torchaudio or faiss.
"""
