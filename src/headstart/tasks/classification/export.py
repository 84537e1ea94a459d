"""The PyTorch model of a run, wrapped so that it takes what the exported graphs take.

:class:`ProbabilityModel` is exported as is: uint8 RGB crops in, class probabilities out, with the
scaling to [0, 1], the mean/std normalisation and the softmax (sigmoid for a one-logit binary head)
inside. The same module also serves as the PyTorch reference in the parity checks and as the eager
backend of ``predict`` and ``serve``, so all three compute exactly the same function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from headstart.run_folder import RunFolder

__all__ = ["ProbabilityModel", "load_run_model"]


class ProbabilityModel(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, num_classes: int, mean, std):
        super().__init__()
        self.model = model
        self.num_classes = int(num_classes)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # The same arithmetic as the training transform (ToDtype(scale=True) then Normalize).
        x = (image.to(torch.float32) / 255.0 - self.mean) / self.std
        logits = self.model(x).float()
        if self.num_classes == 2:  # binary heads have one logit (headstart.tasks.classification.loss)
            p1 = torch.sigmoid(logits.reshape(-1, 1))
            return torch.cat([1 - p1, p1], dim=1)
        return logits.softmax(dim=1)


def load_run_model(run_dir: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The trained model of a run folder (eval mode, CPU) and its record: ``classes``,
    ``preprocessing`` (a :class:`~headstart.data.transforms.Preprocessing`), ``architecture``,
    ``num_outputs``. Reads only safetensors and JSON: no pickled code runs."""
    import timm
    from safetensors.torch import load_file

    from headstart.data.transforms import Preprocessing
    from headstart.models.build import apply_architecture_changes

    run = RunFolder.open(run_dir)
    meta = run.read_json("model/model.json")
    classes = list(run.read_json("model/labels.json")["classes"])
    pre = Preprocessing.from_dict(run.read_json("model/preprocessing.json"))
    model = timm.create_model(meta["architecture"], pretrained=False, num_classes=meta["num_outputs"])
    apply_architecture_changes(model, meta)  # what the imported weights needed (model.json)
    model.load_state_dict(load_file(run.model_dir / "model.safetensors"))
    record = {"classes": classes, "preprocessing": pre, "architecture": meta["architecture"],
              "num_outputs": meta["num_outputs"]}
    return model.eval(), record


def probability_model(model: torch.nn.Module, num_classes: int, pre) -> ProbabilityModel:
    return ProbabilityModel(model, num_classes, pre.mean, pre.std).eval()
