"""The auto split (every class in every split where possible, seeded) and split.json."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from headstart.data.detection import (
    load_detection_dataset,
    load_detection_split,
    save_detection_split,
    stratified_box_split,
)
from headstart.errors import DataError, DatasetNotFoundError
from tests.data.detection.conftest import FixtureBox, FixtureImage, write_coco

FRACTIONS = {"val": 0.15, "test": 0.15}


def _label_sets(seed: int = 0, n: int = 60, n_classes: int = 6) -> list[set[int]]:
    """Images with 0-3 classes; class c appears roughly in proportion to 1 / (c + 1); class 5 is rare."""
    rng = random.Random(seed)
    sets = []
    for i in range(n):
        if i % 10 == 0:
            sets.append(set())
            continue
        k = rng.randint(1, 3)
        sets.append({min(int(rng.paretovariate(1.2)) - 1, n_classes - 2) for _ in range(k)})
    for i in (3, 17, 41):  # class 5 in exactly three images
        sets[i].add(n_classes - 1)
    return sets


def test_every_class_in_every_split_and_a_partition():
    sets = _label_sets()
    split, notes = stratified_box_split(sets, FRACTIONS, seed=0)
    assert set(split) == {"train", "val", "test"}
    everything = sorted(i for idx in split.values() for i in idx)
    assert everything == list(range(len(sets)))
    for name, idx in split.items():
        assert idx == sorted(idx)
        present = set().union(*(sets[i] for i in idx))
        assert present == set(range(6)), name
    assert not [n for n in notes if "too few images" in n]
    assert len(split["val"]) == pytest.approx(0.15 * len(sets), abs=3)
    assert len(split["test"]) == pytest.approx(0.15 * len(sets), abs=3)


def test_deterministic_for_a_seed():
    sets = _label_sets()
    assert stratified_box_split(sets, FRACTIONS, seed=7) == stratified_box_split(sets, FRACTIONS, seed=7)
    assert stratified_box_split(sets, FRACTIONS, seed=7)[0] != stratified_box_split(sets, FRACTIONS, seed=8)[0]


def test_rare_classes_keep_a_training_image_and_are_noted():
    # class 1 has two images, class 2 one; class 0 is everywhere.
    sets = [{0}] * 20 + [{0, 1}, {1}, {2}]
    split, notes = stratified_box_split(sets, FRACTIONS, seed=0, class_names=["a", "b", "c"])
    where = {i: s for s, idx in split.items() for i in idx}
    assert where[22] == "train"  # the only 'c' image trains
    assert {where[20], where[21]} == {"train", "val"}  # 'b': one to train, one to val
    assert any("appear in the val split ('c')" in n for n in notes)
    assert any("appear in the test split ('b', 'c')" in n for n in notes)


def test_background_images_are_spread_in_proportion():
    sets = [{0}] * 20 + [set()] * 20
    split, _ = stratified_box_split(sets, {"val": 0.2, "test": 0.1}, seed=0)
    negatives = {s: sum(1 for i in idx if i >= 20) for s, idx in split.items()}
    assert negatives == {"train": 14, "val": 4, "test": 2}


def test_no_test_split_when_its_fraction_is_zero():
    split, _ = stratified_box_split([{0}] * 10, {"val": 0.2, "test": 0}, seed=0)
    assert set(split) == {"train", "val"} and len(split["val"]) == 2


def _pool(tmp_path, n: int = 40):
    """A single-JSON COCO dataset (no splits) with 4 classes, one of them in only 3 images."""
    classes = ["a", "b", "c", "rare"]
    rng = random.Random(1)
    images = []
    for i in range(n):
        boxes = [FixtureBox(classes[rng.randrange(3)], 2 + j * 10, 2, 10 + j * 10, 20) for j in range(rng.randint(0, 3))]
        if i in (5, 20, 33):
            boxes.append(FixtureBox("rare", 40, 25, 60, 45))
        images.append(FixtureImage(f"im{i:02d}.png", boxes))
    return write_coco(tmp_path / "pool", images, classes, layout="single"), classes


def test_auto_split_of_a_dataset_keeps_every_class(tmp_path):
    root, classes = _pool(tmp_path)
    index = load_detection_dataset(root, seed=5)
    assert index.seed == 5 and set(index.splits) == {"train", "val", "test"}
    for split in index.splits:
        assert all(n > 0 for n in index.image_counts(split).values()), split
    again = load_detection_dataset(root, seed=5)
    assert again.splits == index.splits and again.fingerprint() == index.fingerprint()
    other = load_detection_dataset(root, seed=6)
    assert other.splits != index.splits
    # image ids do not depend on the seed
    ids = {s.path.name: s.image_id for v in index.splits.values() for s in v}
    assert ids == {s.path.name: s.image_id for v in other.splits.values() for s in v}


def test_split_json_roundtrip_and_reuse(tmp_path):
    root, _ = _pool(tmp_path)
    index = load_detection_dataset(root, seed=2)
    path = save_detection_split(index, tmp_path / "run" / "split.json")
    record = json.loads(path.read_text())
    assert record["version"] == 1 and record["seed"] == 2 and record["fingerprint"] == index.fingerprint()
    assert record["splits"]["train"][0].keys() == {"path", "image_id", "width", "height", "boxes", "labels", "ignore"}
    loaded = load_detection_split(path)
    assert loaded.splits == index.splits and loaded.classes == index.classes and loaded.seed == 2
    assert loaded.layout == "coco" and loaded.root == root

    reused = load_detection_dataset(root, seed=99, split_file=path)
    assert reused.splits == index.splits and reused.seed == 2
    assert reused.notes[-1] == f"Split reused from {path}."

    moved = tmp_path / "moved"
    shutil.move(str(root), moved)
    again = load_detection_dataset(moved, split_file=path)
    assert again.root == moved and [s.path.name for s in again.splits["val"]] == [s.path.name for s in index.splits["val"]]
    assert load_detection_split(path, root=moved).fingerprint() == index.fingerprint()


def test_split_json_errors(tmp_path):
    root, _ = _pool(tmp_path)
    path = save_detection_split(load_detection_dataset(root), tmp_path / "split.json")
    (root / "images" / "im07.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 image\(s\) listed in the split file '.*split\.json' no longer"
                                                   r" exist under '.*pool': '.*im07\.png'\. Restore them"):
        load_detection_split(path)
    with pytest.raises(DatasetNotFoundError, match=r"The split file '.*nope\.json' does not exist"):
        load_detection_split(tmp_path / "nope.json")
    classification = tmp_path / "cls.json"
    classification.write_text(json.dumps({"version": 1, "classes": ["a"], "root": "/x", "splits": {"train": [["a.png", 0]]}}))
    with pytest.raises(DataError, match=r"is not a valid detection split\.json \(it has no \"task\": \"detect\"; it"
                                        r" may be a classification split\)"):
        load_detection_split(classification)
    record = json.loads(path.read_text())
    record["splits"]["train"][0]["labels"] = [9] * len(record["splits"]["train"][0]["boxes"]) or [9]
    record["splits"]["train"][0]["boxes"] = [[1, 1, 2, 2]] * len(record["splits"]["train"][0]["labels"])
    record["splits"]["train"][0]["ignore"] = [False] * len(record["splits"]["train"][0]["labels"])
    path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"has a label outside the 4 classes"):
        load_detection_split(path)


def test_reused_split_skips_images_that_became_unreadable(tmp_path):
    root, _ = _pool(tmp_path)
    index = load_detection_dataset(root)
    path = save_detection_split(index, tmp_path / "split.json")
    victim = index.splits["train"][0].path
    victim.write_bytes(b"not an image")
    reused = load_detection_dataset(root, split_file=path)
    assert victim not in [s.path for s in reused.splits["train"]]
    assert reused.problems[-1].path == str(victim) and reused.problems[-1].action == "skipped"
    with pytest.raises(DataError, match=r"(?s)1 problem\(s\) in the dataset .*\(strict is on\):\n  .*im\d+\.png: cannot be read"):
        load_detection_dataset(root, split_file=path, strict=True)


def test_given_splits_are_used_and_missing_test_is_held_out(tmp_path):
    images = [FixtureImage(f"t{i}.png", [FixtureBox("a", 1, 1, 20, 20)]) for i in range(10)]
    images += [FixtureImage("v0.png", [FixtureBox("a", 1, 1, 20, 20)], split="val")]
    root = write_coco(tmp_path / "c", images, ["a"])
    index = load_detection_dataset(root, test_fraction=0.2, seed=0)
    assert [s.path.name for s in index.splits["val"]] == ["v0.png"]
    assert len(index.splits["test"]) == 2 and len(index.splits["train"]) == 8
    assert "No test split in the dataset: 20% of train held out." in index.notes
    assert index.seed == 0
