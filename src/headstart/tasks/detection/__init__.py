"""Object detection: evaluation today (COCO metrics through faster-coco-eval, the F1-best confidence
threshold, precision-recall curves, the confusion matrix with a background class, and plots). Import
the modules you need; this package's ``__init__`` imports nothing."""
