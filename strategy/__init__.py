"""backtrader strategy: class probabilities → orders (entries, exits, sizing)."""
