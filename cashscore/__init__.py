"""cashscore: credit-risk scoring for Alura Cash (restore, train, serve, batch-score).

`cashscore.connect()` opens the restored database with the score functions, for Python and
notebooks (`cashscore.scoring.connection`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["connect"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import cashscore.core...` and the command line stay free of DuckDB
    # and onnxruntime until they need them.
    if name == "connect":
        from cashscore.scoring.connection import connect

        return connect
    raise AttributeError(f"module 'cashscore' has no attribute {name!r}")
