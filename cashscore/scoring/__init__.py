"""Scoring, pure and column-wise: rules, model, decisions, bands, reasons; batch files and DuckDB functions."""
