"""Each data check on a deliberately broken dataset of real images (digits) and on a clean one."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.diagnose import data_checks as dc
from headstart.diagnose import doctor
from headstart.diagnose.features import cross_val_probe
from headstart.diagnose.label_checks import check_label_issues
from tests.diagnose.conftest import digit_images, write_images


def _checks(findings, severity=None):
    return {f.check for f in findings if severity is None or f.severity == severity}


def _split_folder(root: Path, leak: int = 0) -> Path:
    images = digit_images(per_class=16)
    for k, (name, array) in enumerate(images):
        split = "val" if k % 4 == 0 else "train"
        path = root / split / name / f"{k:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    train = sorted((root / "train").rglob("*.png"))
    for path in train[:leak]:  # a leaked copy: re-encoded as JPEG and resized, in val
        copy = root / "val" / path.parent.name / f"copy_{path.stem}.jpg"
        Image.open(path).resize((40, 40)).save(copy, quality=90)
    return root


def test_clean_dataset_has_nothing_severe(tmp_path):
    findings = doctor(_split_folder(tmp_path / "clean"), level="images", model="test_resnet", image_size=32)
    assert not _checks(findings, "high") and not _checks(findings, "medium"), findings


def test_leaked_duplicates_between_train_and_val_are_found(tmp_path):
    findings = doctor(_split_folder(tmp_path / "leak", leak=6), level="images", model="test_resnet", image_size=32)
    leak = [f for f in findings if f.check == "split-leakage"]
    assert leak and leak[0].severity == "high" and findings[0].check == "split-leakage"
    assert len(leak[0].data["pairs"]) >= 6 and "copy_" in leak[0].evidence
    few = doctor(_split_folder(tmp_path / "few", leak=2), level="images", model="test_resnet", image_size=32)
    leak = [f for f in few if f.check == "split-leakage"]
    assert leak and leak[0].severity == "low" and "check them by eye" in leak[0].evidence


def test_exact_duplicates_within_a_split_and_conflicting_labels(tmp_path):
    images = digit_images(per_class=6)
    paths = write_images(tmp_path / "d", images)
    scan = dc.scan_images(paths + [paths[0], paths[1]])
    labels = [int(n[-1]) for n, _ in images] + [0, 2]  # paths[1] duplicated with another label
    findings = dc.check_duplicates(scan, ["train"] * len(labels), labels, [f"digit{i}" for i in range(4)])
    assert _checks(findings) == {"duplicates", "duplicates-conflicting-labels"}
    clean = dc.scan_images(paths)
    assert dc.check_duplicates(clean, ["train"] * len(paths), labels[:-2], [f"digit{i}" for i in range(4)]) == []


def test_imbalance_and_tiny_classes(tmp_path):
    images = digit_images(digits=(0, 1, 2), per_class=60)
    skewed = [im for im in images if im[0] != "digit2"] + [im for im in images if im[0] == "digit2"][:5]
    findings = doctor(write_images(tmp_path / "skew", skewed)[0].parents[1], level="quick")
    assert "class-imbalance" in _checks(findings, "high") and "tiny-classes" in _checks(findings)
    assert dc.check_class_balance({"a": 40, "b": 35, "c": 30}) == []
    medium = dc.check_class_balance({"a": 100, "b": 25})
    assert [f.severity for f in medium] == ["medium"]


def test_grayscale_only_data_is_reported(tmp_path):
    root = tmp_path / "gray"
    write_images(root, digit_images(per_class=8, colour=False))
    findings = doctor(root, level="images", model="test_resnet", image_size=32)
    assert "grayscale-only" in _checks(findings)
    assert dc.check_grayscale(np.array([True] * 50 + [False] * 50)) == []


def test_resolution_far_below_input_size():
    sizes = np.array([[32, 32]] * 20)
    assert dc.check_resolution(sizes, 224)[0].severity == "high"
    assert "--image-size 32" in dc.check_resolution(sizes, 224)[0].fix
    assert dc.check_resolution(sizes, 48) == []


def test_unusual_channel_statistics(tmp_path):
    images = [(n, (a * 0.1).astype(np.uint8)) for n, a in digit_images(per_class=5)]  # nearly black
    scan = dc.scan_images(write_images(tmp_path / "dark", images))
    assert _checks(dc.check_channel_stats(scan.means, scan.stds)) == {"channel-statistics"}
    normal = dc.scan_images(write_images(tmp_path / "ok", digit_images(per_class=5)))
    assert dc.check_channel_stats(normal.means, normal.stds) == []


def _digit_pixels(digits, per_class):
    from sklearn.datasets import load_digits

    data = load_digits()
    idx = np.concatenate([np.flatnonzero(data.target == d)[:per_class] for d in digits])
    return data.data[idx], np.searchsorted(digits, data.target[idx])


def test_classes_not_separable_on_features():
    x, y = _digit_pixels([0, 1, 2], 60)
    mixed = y.copy()
    both = np.flatnonzero(y < 2)
    mixed[both] = np.random.default_rng(0).integers(0, 2, len(both))  # classes a/b: same pictures
    probe = cross_val_probe(x, mixed, 3)
    found = dc.check_separability(probe.pred_probs, mixed, ["a", "b", "c"])
    assert found and found[0].data["pairs"][0][:2] == ["a", "b"]
    clean = cross_val_probe(x, y, 3)
    assert dc.check_separability(clean.pred_probs, y, ["a", "b", "c"]) == []


def test_distance_from_pretraining_domain():
    assert dc.check_domain(0.35, 4)[0].severity == "high"
    assert dc.check_domain(0.6, 4)[0].severity == "medium"
    assert dc.check_domain(0.95, 4) == []


def test_label_noise_is_found_with_given_and_suggested_labels():
    x, y = _digit_pixels([0, 1, 2, 3], 60)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), 24, replace=False)
    noisy = y.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, 4, len(flipped))) % 4
    classes = ["zero", "one", "two", "three"]
    paths = [Path(f"img{i}.png") for i in range(len(y))]
    probe = cross_val_probe(x, noisy, 4)
    found = [f for f in check_label_issues(noisy, probe.pred_probs, paths, classes) if f.check == "label-issues"]
    assert found and found[0].severity == "medium"  # 10 % flipped: high starts at HIGH_SHARE (12 %) listed
    flagged = {int(r["path"][3:-4]) for r in found[0].data["images"]}
    assert len(flagged & set(flipped.tolist())) >= 0.7 * len(flipped)  # recall
    assert len(flagged & set(flipped.tolist())) >= 0.6 * len(flagged)  # precision
    row = next(r for r in found[0].data["images"] if int(r["path"][3:-4]) == int(flipped[0]))
    assert row["given"] == classes[noisy[flipped[0]]] and row["suggested"] == classes[y[flipped[0]]]
    clean = check_label_issues(y, cross_val_probe(x, y, 4).pred_probs, paths, classes)
    assert all(f.severity == "low" for f in clean)


def test_full_level_runs_feature_checks_with_the_given_backbone(tmp_path, weights_env):
    root = tmp_path / "d"
    write_images(root, digit_images(per_class=10))
    findings = doctor(root, level="full", model="test_resnet", image_size=32)
    probe = [f for f in findings if f.check == "linear-probe"]
    assert probe and probe[0].data["model"] == "test_resnet" and 0 <= probe[0].data["balanced_accuracy"] <= 1


def test_doctor_rejects_a_missing_target_and_a_bad_level(tmp_path):
    from headstart.errors import ConfigError, DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="'.*nowhere' does not exist"):
        doctor(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="level"):
        doctor(tmp_path, level="deep")


def _unit(v):
    v = np.asarray(v, dtype=np.float32) - np.mean(v)
    return v / np.linalg.norm(v)


def test_a_hash_match_counts_only_when_the_thumbnails_agree():
    rng = np.random.default_rng(0)
    t = _unit(rng.normal(size=64))
    phash = np.array([0, 1, 0xFFFF_FFFF_0000_0000], dtype=np.uint64)  # images 0 and 1: one bit apart; 2: 32 bits
    sizes = np.array([[32, 32]] * 3)
    other = _unit(rng.normal(size=64))
    assert dc.near_duplicate_pairs(phash, np.stack([t, other, t]), sizes) == []  # hash only
    assert dc.near_duplicate_pairs(phash, np.stack([t, t, t]), sizes) == [(0, 1)]  # 0 and 2: thumbnails only
    assert dc.near_duplicate_pairs(phash, np.stack([t, t, t]), np.array([[8, 8]] * 3)) == []  # too small to tell


def test_exact_copies_of_tiny_images_always_count_and_near_ones_do_not(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(6):
        path = tmp_path / "train" / f"t{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
        paths.append(path)
    exact, near = tmp_path / "val" / "exact.png", tmp_path / "val" / "near.jpg"
    exact.parent.mkdir()
    Image.open(paths[0]).save(exact)
    Image.open(paths[1]).resize((10, 10)).save(near, quality=75)
    scan = dc.scan_images(paths + [exact, near])
    found = {f.check: f for f in dc.check_duplicates(scan, ["train"] * 6 + ["val"] * 2, [0] * 8, ["x"], tmp_path)}
    assert set(found) == {"split-leakage"} and found["split-leakage"].severity == "high"
    assert found["split-leakage"].data["pairs"] == [["train/t0.png", "val/exact.png"]]
