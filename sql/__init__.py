"""The SQL layers, shipped as package data: staging and marts views, audits."""
