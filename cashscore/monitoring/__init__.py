"""Drift against the training population and fairness by age, for batch populations and live traffic."""
