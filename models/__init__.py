"""PyTorch classifiers (attention + the article's earlier networks), training and checkpoints."""
