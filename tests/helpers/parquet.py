"""What a Parquet file stores, as the tests check it."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def dictionaries(path: Path) -> list[str]:
    """The columns stored with a dictionary page in a Parquet file's first row group."""
    group = pq.ParquetFile(path).metadata.row_group(0)
    return [group.column(i).path_in_schema for i in range(group.num_columns) if group.column(i).has_dictionary_page]
