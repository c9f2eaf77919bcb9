// Training: datasets of graphs and targets, batching, losses, the training loop, checkpoints, metrics, prediction.
