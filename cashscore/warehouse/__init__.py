"""The warehouse: the dump reader, restore into DuckDB, the SQL layers, export and the synthetic sample."""
