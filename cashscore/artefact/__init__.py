"""The model artefact: versions, manifest, publishing, the typed model card, verification on load."""
