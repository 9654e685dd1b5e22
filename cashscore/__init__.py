"""cashscore: credit-risk scoring for Alura Cash (restore, train, serve, batch-score)."""
