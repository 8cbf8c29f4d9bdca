"""aisfx (Ma & Lerch, ISMIR 2022): network definition, safe checkpoint loading, features, space."""
