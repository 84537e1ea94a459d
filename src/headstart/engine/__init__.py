"""The training engine, shared by every task.

It knows no task: a task (see :mod:`headstart.engine.protocol`) gives it the model, the batches of
each stage, a training step that returns a loss (or a dict of losses), a validation pass that
returns the metrics, and the table of those metrics with the direction in which each is better.
The engine owns the rest: stages, epochs, the optimiser and LR schedule, AMP and the grad scaler,
the best weights, atomic checkpoints with every state (optimiser, scaler, callbacks), exact resume,
callbacks and seeding.

Modules: ``stages`` (Stage), ``protocol`` (the task interface, StepOutput), ``metrics`` (metric
directions), ``trainer`` (Trainer, TrainState, TrainingDiverged), ``callbacks`` (Callback,
EarlyStopping, ProgressBar), ``device`` (device choice, AMP, channels_last).
"""
