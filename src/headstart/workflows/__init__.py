"""Workflows: what a command does, as a short sequence of named steps over data, models, the engine
and the tasks. ``fit`` lives here; ``rank`` (:mod:`headstart.select`), ``tune``
(:mod:`headstart.tuning`), ``doctor`` (:mod:`headstart.diagnose`) and ``report``
(:mod:`headstart.reporting`) are workflows of the same layer in their own packages."""
