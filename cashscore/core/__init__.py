"""Configuration, errors, names and atomic files: what every other layer may use."""
