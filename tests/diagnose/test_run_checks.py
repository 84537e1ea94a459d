"""Config and run checks: fabricated histories and configs, and a real (tiny) run folder."""

import json
import shutil
import subprocess
import sys

import pytest

from headstart.diagnose import doctor
from headstart.diagnose import run_checks as rc
from headstart.errors import ConfigError

IMAGENET = {"input_size": 224, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _row(epoch, stage, train_loss, train_acc, val_loss, val_acc):
    return {"epoch": epoch, "stage": stage, "train_loss": train_loss, "train_accuracy": train_acc,
            "val_loss": val_loss, "val_accuracy": val_acc}


def _healthy():
    probe = [_row(i + 1, "probe", 1.0 - 0.1 * i, 0.6 + 0.05 * i, 1.0 - 0.08 * i, 0.6 + 0.04 * i) for i in range(3)]
    ft = [_row(i + 4, "finetune", 0.7 - 0.1 * i, 0.75 + 0.05 * i, 0.75 - 0.08 * i, 0.72 + 0.05 * i) for i in range(4)]
    return probe + ft


def test_rescale_only_preprocessing_is_the_classic_mistake():
    found = rc.check_preprocessing({"rescale": 1 / 255, "size": 224}, IMAGENET)
    assert [f.check for f in found] == ["preprocessing-rescale-only"] and found[0].severity == "high"
    assert "0.485" in found[0].fix
    assert rc.check_preprocessing(dict(IMAGENET), IMAGENET) == []


def test_wrong_mean_std_size_and_interpolation():
    used = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "image_size": 64, "interpolation": "nearest"}
    checks = [f.check for f in rc.check_preprocessing(used, IMAGENET)]
    assert checks == ["preprocessing-normalisation", "preprocessing-size", "preprocessing-interpolation"]


def test_user_preprocessing_yaml_is_checked_against_the_model(tmp_path, digits_folder):
    yaml = tmp_path / "pre.yaml"
    yaml.write_text("rescale: 0.00392156862745098\nsize: 224\n")
    found = doctor(digits_folder, level="quick", model="mobilenetv2_100", preprocessing=yaml)
    assert found[0].check == "preprocessing-rescale-only"
    with pytest.raises(ConfigError, match="preprocessing file '.*missing.yaml' does not exist"):
        doctor(digits_folder, level="quick", preprocessing=tmp_path / "missing.yaml")


def test_lr_too_high_from_spikes_and_probe_beating_finetune():
    history = _healthy()[:3] + [_row(4, "finetune", 2.5, 0.4, 1.8, 0.45), _row(5, "finetune", 4.0, 0.3, 2.2, 0.4),
                                _row(6, "finetune", 1.5, 0.5, 1.4, 0.55)]
    found = rc.check_lr_too_high(history, lr=1e-2, default=1e-4)
    assert found and found[0].severity == "high"
    assert "probe reached" in found[0].evidence and "x1.6 at epoch 5" in found[0].evidence and "1.0e-04" in found[0].fix
    assert rc.check_lr_too_high(_healthy(), lr=1e-4, default=1e-4) == []


def test_lr_too_low_when_nothing_moves():
    flat = [_row(i + 1, "finetune", 1.386 - 0.001 * i, 0.25, 1.39, 0.25) for i in range(5)]
    assert rc.check_lr_too_low(flat, lr=1e-7, default=2e-4)[0].check == "lr-too-low"
    assert rc.check_lr_too_low(_healthy(), lr=1e-4, default=1e-4) == []


def test_overfitting_and_underfitting():
    over = [_row(i + 1, "finetune", 1.0 / (i + 1), min(1.0, 0.6 + 0.1 * i), [0.8, 0.7, 0.8, 0.9, 1.0, 1.1][i], 0.6)
            for i in range(6)]
    found = rc.check_fit_quality(over, 4)
    assert [f.check for f in found] == ["overfitting"] and "lowest at epoch 2" in found[0].evidence
    under = [_row(i + 1, "finetune", 1.38, 0.3, 1.38, 0.28) for i in range(5)]
    assert [f.check for f in rc.check_fit_quality(under, 4)] == ["underfitting"]
    assert rc.check_fit_quality(_healthy(), 4) == []


def test_batchnorm_with_tiny_batches():
    assert rc.check_batchnorm(4, "full", False, 20)[0].check == "batchnorm-tiny-batches"
    assert rc.check_batchnorm(4, "full", True, 20) == []
    assert rc.check_batchnorm(32, "full", False, 20) == []
    assert rc.check_batchnorm(4, "full", False, 0) == []


def test_frozen_layers_that_were_meant_to_train():
    import torch

    pre = {"conv.weight": torch.ones(3, 3), "bn.weight": torch.ones(3), "fc.weight": torch.zeros(2, 3)}
    frozen = {k: v.clone() for k, v in pre.items()} | {"fc.weight": torch.ones(2, 3)}
    trained = {k: v + 0.01 for k, v in pre.items()}
    assert rc.check_frozen_layers(frozen, pre, "full", ("fc",))[0].check == "frozen-layers"
    assert rc.check_frozen_layers(trained, pre, "full", ("fc",)) == []
    assert rc.check_frozen_layers(frozen, pre, "linear-probe", ("fc",)) == []


def test_run_folder_checks_and_planted_problems(run_dir, tmp_path):
    findings = doctor(run_dir, level="quick")
    assert all(f.severity != "high" for f in findings), findings
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    pre = json.loads((broken / "model" / "preprocessing.json").read_text())
    pre.update(mean=[0, 0, 0], std=[1, 1, 1])
    (broken / "model" / "preprocessing.json").write_text(json.dumps(pre))
    (broken / "history.csv").write_text(
        "epoch,stage,stage_epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_balanced_accuracy\n"
        "1,probe,1,0.9,0.6,0.9,0.6,0.6\n2,probe,2,0.7,0.7,0.8,0.7,0.7\n"
        "3,finetune,1,2.4,0.4,2.0,0.4,0.4\n4,finetune,2,3.9,0.3,2.5,0.3,0.3\n")
    found = {f.check: f for f in doctor(broken, level="quick")}
    assert found["preprocessing-rescale-only"].severity == "high"
    assert found["lr-too-high"].severity == "high"


def test_cli_doctor_json_and_errors(run_dir):
    out = subprocess.run([sys.executable, "-m", "headstart", "doctor", str(run_dir), "--level", "quick", "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert all({"check", "severity", "evidence", "fix"} <= set(f) for f in data)
    bad = subprocess.run([sys.executable, "-m", "headstart", "doctor", str(run_dir), "--format", "xml"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "format" in bad.stderr and "xml" in bad.stderr


def test_a_jump_at_the_lp_ft_hand_over_with_the_default_lr_is_not_called_an_lr_problem():
    # the run: the probe ends at 0.654, the first fine-tuning epoch at 1.499, then recovers;
    # the LR that ran is the default, so advising it (or calling it "the default") would point back at the run
    probe = [_row(i + 1, "probe", 1.2 - 0.2 * i, 0.7 + 0.1 * i, 0.9, 0.8) for i in range(3)]
    ft = [_row(4, "finetune", 1.499, 0.60, 0.95, 0.75), _row(5, "finetune", 0.9, 0.8, 0.7, 0.8),
          _row(6, "finetune", 0.6, 0.9, 0.6, 0.84)]
    probe[-1]["train_loss"] = 0.654
    found = rc.check_lr_too_high(probe + ft, lr=1e-4, default=1e-4, strategy="lp-ft")
    assert [f.check for f in found] == ["lp-ft-handover"]
    assert "0.654" in found[0].evidence and "1.499" in found[0].evidence and found[0].severity == "low"
    assert "--strategy full" in found[0].fix and "train.freeze_bn=true" in found[0].fix
    assert "--lr 1.0e-04" not in found[0].fix and "(the default)" not in found[0].fix and "3.3e-05" in found[0].fix
    # BN already frozen: that remedy is not offered again
    frozen = rc.check_lr_too_high(probe + ft, lr=1e-4, default=1e-4, strategy="lp-ft", freeze_bn=True)
    assert "freeze_bn" not in frozen[0].fix and "train mode" not in frozen[0].evidence
    assert "BatchNorm in train mode" in found[0].evidence
    # the same jump with an LR far above the default is an LR problem, and the advice is the default
    high = rc.check_lr_too_high(probe + ft, lr=1e-2, default=1e-4, strategy="lp-ft")
    assert [f.check for f in high] == ["lr-too-high"] and "`--lr 1.0e-04` (the run used 1.0e-02)" in high[0].fix


def test_lr_advice_never_repeats_the_lr_that_ran():
    spikes = _healthy()[:3] + [_row(4, "finetune", 0.8, 0.7, 0.8, 0.7), _row(5, "finetune", 2.0, 0.4, 1.8, 0.45),
                               _row(6, "finetune", 1.5, 0.5, 1.4, 0.55)]
    found = rc.check_lr_too_high(spikes, lr=1e-4, default=1e-4, strategy="lp-ft")
    assert found[0].check == "lr-too-high" and "`--lr 3.3e-05` (the run used 1.0e-04)" in found[0].fix
    assert "(the default)" not in found[0].fix and found[0].data["proposed_lr"] < 1e-4
    flat = [_row(i + 1, "finetune", 1.386 - 0.001 * i, 0.25, 1.39, 0.25) for i in range(5)]
    low = rc.check_lr_too_low(flat, lr=2e-4, default=2e-4)[0]
    assert "--lr 6.0e-04" in low.fix and "the run used 2.0e-04" in low.fix
