"""CLAP through transformers: finding and loading weights safely, log-mel features, space."""
