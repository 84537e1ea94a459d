"""Image classification: loss, metrics, strategies (linear probe, lp-ft, full), the task the engine
trains, the softmax export wrapper, plots and top-k predictions. Import the modules you need; this
package's ``__init__`` imports nothing heavy (``spec`` is plain data)."""
