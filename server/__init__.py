"""The HTTP scoring service: Litestar app, pure scoring, schemas, metrics, dashboard."""
