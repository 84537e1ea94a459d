"""Fine-tuning: strategies, the training loop, callbacks and checkpoints."""
