import pytest
import torch

from headstart.config import TrainConfig
from headstart.tasks.classification.loss import ClassificationLoss, balanced_class_weights, logits_to_probs, num_outputs
from headstart.tasks.classification.strategies import (
    FULL_FINETUNE_LR,
    default_lr,
    plan_stages,
    resolve_freeze_bn,
    resolve_strategy,
)


def test_binary_uses_one_logit_and_bce():
    assert num_outputs(2) == 1 and num_outputs(5) == 5
    logits = torch.tensor([[2.0], [-1.0]])
    probs = logits_to_probs(logits, 2)
    assert torch.allclose(probs.sum(1), torch.ones(2))
    assert probs[0, 1] > 0.5 > probs[1, 1]
    loss = ClassificationLoss(2)(logits, torch.tensor([1, 0]))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), torch.tensor([1.0, 0.0]))
    assert torch.isclose(loss, expected)


def test_soft_targets_and_smoothing_multiclass():
    logits = torch.randn(4, 3)
    hard = torch.tensor([0, 1, 2, 1])
    soft = torch.nn.functional.one_hot(hard, 3).float()
    fn = ClassificationLoss(3, label_smoothing=0.1)
    assert torch.isclose(fn(logits, hard), fn(logits, soft))
    assert not torch.isclose(fn(logits, hard), fn(logits, hard, smoothing=False))


def test_binary_soft_targets_from_mixup():
    fn = ClassificationLoss(2)
    logits = torch.tensor([[0.3], [-0.2]])
    soft = torch.tensor([[0.3, 0.7], [1.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits.reshape(-1), torch.tensor([0.7, 0.0]))
    assert torch.isclose(fn(logits, soft), expected)


def test_balanced_class_weights_match_sklearn_rule():
    w = balanced_class_weights([0, 0, 0, 1], 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))


def test_strategy_auto_rule_and_plan():
    assert resolve_strategy("auto", 100) == "linear-probe"
    assert resolve_strategy("auto", 199) == "linear-probe"
    assert resolve_strategy("auto", 200) == "full"
    assert resolve_strategy("auto", 1000) == "full"
    assert resolve_strategy("auto", 50_000) == "full"
    assert resolve_strategy("auto", 100, pretrained=False) == "full"
    assert resolve_strategy("full", 10) == "full"
    cfg = TrainConfig(epochs=3, probe_epochs=4, batch_size=64)
    stages = plan_stages(cfg, "lp-ft")
    assert [(s.name, s.epochs) for s in stages] == [("probe", 4), ("finetune", 3)]
    assert stages[1].lr == pytest.approx(default_lr("lp-ft", 64, "adamw")) == pytest.approx(2e-4)
    assert [s.name for s in plan_stages(cfg, "linear-probe")] == ["probe"]
    # full fine-tuning's default peak LR: FULL_FINETUNE_LR at batch 32, linear in the batch size
    assert plan_stages(TrainConfig(batch_size=64), "full")[0].lr == pytest.approx(2 * FULL_FINETUNE_LR)
    assert default_lr("full", 32, "sgd") == pytest.approx(50 * FULL_FINETUNE_LR)
    assert plan_stages(TrainConfig(lr=0.5), "full")[0].lr == 0.5


def test_freeze_bn_auto_is_on_after_a_probe():
    assert resolve_freeze_bn(None, "lp-ft") is True
    assert resolve_freeze_bn(None, "full") is False and resolve_freeze_bn(None, "linear-probe") is False
    assert resolve_freeze_bn(False, "lp-ft") is False and resolve_freeze_bn(True, "full") is True
