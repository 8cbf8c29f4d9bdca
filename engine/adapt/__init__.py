"""Text search over sound learned from the library's own names: captions, training, the adapter."""
