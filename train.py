"""Train cashscore models (placeholder until issue 3)."""
