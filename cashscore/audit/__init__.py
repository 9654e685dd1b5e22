"""The tamper-evident decision log: writing, verifying, replaying and exporting it."""
