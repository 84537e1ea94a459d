"""Discovery, validation, splitting and the DatasetIndex (no torch involved)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from headstart.data.index import DatasetIndex, Sample, load_dataset
from headstart.data.split import load_split, save_split, stratified_split
from headstart.errors import DataError, DatasetNotFoundError


def _names(index: DatasetIndex, split: str) -> list[str]:
    return [s.path.name for s in index.splits[split]]


def _all_paths(index):
    return [s.path for samples in index.splits.values() for s in samples]


# ----------------------------------------------------------------------------- layouts


def test_class_folders_layout(make_image_folder, data_cfg, image_writer, digest_tree):
    root = make_image_folder({"dog": 12, "cat": 12, "bird": 12})
    image_writer(root / "cat" / "nested" / "deeper" / "x.png")  # nested images count
    (root / "cat" / "notes.txt").write_text("not an image")
    image_writer(root / "cat" / ".hidden.png")
    image_writer(root / ".thumbs" / "t.png")  # hidden folder: not a class
    image_writer(root / "loose.png")  # next to the class folders: listed, not used
    before = digest_tree(root)

    index = load_dataset(data_cfg(root), seed=0)

    assert digest_tree(root) == before  # read-only
    assert index.layout == "class-folders"
    assert index.classes == ["bird", "cat", "dog"]
    assert index.num_classes == 3 and not index.is_binary
    assert set(index.splits) == {"train", "val", "test"}
    paths = _all_paths(index)
    assert len(paths) == 37 and len(set(paths)) == 37
    assert root / "cat" / "nested" / "deeper" / "x.png" in paths
    assert [p.name for p, _ in index.skipped] == ["loose.png"]
    # stratified: every class in every split
    for split in ("train", "val", "test"):
        assert set(s.label for s in index.splits[split]) == {0, 1, 2}
    assert len(index.splits["val"]) == round(0.15 * 37) or len(index.splits["val"]) >= 3


def test_class_named_train_stays_class_folders(make_image_folder, data_cfg):
    root = make_image_folder({"train": 4, "bus": 4, "car": 4})
    index = load_dataset(data_cfg(root, test_fraction=0))
    assert index.layout == "class-folders" and index.classes == ["bus", "car", "train"]
    assert set(index.splits) == {"train", "val"}


def test_split_folders_layout(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 6, "dog": 6}, layout="split-folders", splits=("train", "valid", "test"))
    index = load_dataset(data_cfg(root))
    assert index.layout == "split-folders"
    assert {k: len(v) for k, v in index.splits.items()} == {"train": 12, "val": 12, "test": 12}
    assert all("/valid/" in s.path.as_posix() for s in index.splits["val"])
    assert index.seed is None  # nothing was carved


def test_split_folders_without_test_carves_test_from_train(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 10, "dog": 10}, layout="split-folders")
    index = load_dataset(data_cfg(root, test_fraction=0.2), seed=3)
    assert len(index.splits["val"]) == 20
    assert len(index.splits["test"]) == 4 and len(index.splits["train"]) == 16
    assert any("No test split" in n for n in index.notes)
    no_test = load_dataset(data_cfg(root, test_fraction=0))
    assert set(no_test.splits) == {"train", "val"} and len(no_test.splits["train"]) == 20


def test_csv_without_split_column(make_image_folder, data_cfg, tmp_path):
    root = make_image_folder({"a": 8, "b": 8})
    rows = ["path,label"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    csv_path = root / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    index = load_dataset(data_cfg(csv_path, test_fraction=0))
    assert index.layout == "csv" and index.classes == ["a", "b"]
    assert sum(len(v) for v in index.splits.values()) == 16
    # csv_root: the CSV lives elsewhere, paths relative to the image folder
    other = tmp_path / "elsewhere.csv"
    other.write_text(csv_path.read_text())
    with pytest.raises(DatasetNotFoundError, match=r"(?s)None of the 16 images .* data\.csv_root"):
        load_dataset(data_cfg(other))
    index2 = load_dataset(data_cfg(other, csv_root=root, test_fraction=0))
    assert _all_paths(index2) == _all_paths(index)


def test_csv_with_split_column_and_absolute_paths(make_image_folder, data_cfg, tmp_path):
    root = make_image_folder({"a": 4, "b": 4})
    files = sorted(root.rglob("*.png"))
    lines = ["Path, Label, Split"]
    for i, p in enumerate(files):
        split = ["train", "train", "validation", "TEST"][i % 4]
        lines.append(f"{p},{p.parent.name},{split}")
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("\n".join(lines))
    index = load_dataset(data_cfg(csv_path))
    assert {k: len(v) for k, v in index.splits.items()} == {"train": 4, "val": 2, "test": 2}


def test_csv_errors(tmp_path, data_cfg, image_writer):
    image_writer(tmp_path / "x.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\nx.png,a\n")
    with pytest.raises(DataError, match=r"no 'path' column .*'file'"):
        load_dataset(data_cfg(bad))
    bad.write_text("path,label,split\nx.png,a,trian\n")
    with pytest.raises(DataError, match=r"Row 2 .*split 'trian'.*Did you mean 'train'"):
        load_dataset(data_cfg(bad))
    bad.write_text("path,label\nx.png,\n")
    with pytest.raises(DataError, match=r"Row 2 .*empty label"):
        load_dataset(data_cfg(bad))
    bad.write_text("path,label\nx.png,a\nx.png,b\n")
    with pytest.raises(DataError, match=r"more than once: 'x.png' \(rows 2 and 3\)"):
        load_dataset(data_cfg(bad))
    bad.write_text("")
    with pytest.raises(DatasetNotFoundError, match="is empty"):
        load_dataset(data_cfg(bad))
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match=r"is a \.txt file"):
        load_dataset(data_cfg(tmp_path / "data.txt"))


def test_csv_missing_files_are_skipped(make_image_folder, data_cfg):
    root = make_image_folder({"a": 5, "b": 5})
    rows = ["path,label"] + [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    rows.append("a/ghost.png,a")
    (root / "l.csv").write_text("\n".join(rows))
    index = load_dataset(data_cfg(root / "l.csv", test_fraction=0))
    assert [(p.name, "ghost" in str(p)) for p, _ in index.skipped] == [("ghost.png", True)]
    assert "does not exist" in index.skipped[0][1]
    with pytest.raises(DataError, match=r"(?s)cannot be read .*ghost\.png: does not exist"):
        load_dataset(data_cfg(root / "l.csv", strict=True))


# ----------------------------------------------------------------------------- errors


def test_missing_path_suggests_sibling(tmp_path, data_cfg):
    (tmp_path / "flowers").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"does not exist\. Did you mean 'flowers'"):
        load_dataset(data_cfg(tmp_path / "flowrs"))
    with pytest.raises(DatasetNotFoundError, match="No dataset given"):
        load_dataset(data_cfg(None))


def test_empty_folder_and_folders_without_images(tmp_path, data_cfg, image_writer):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="is empty: it has no class subfolders"):
        load_dataset(data_cfg(empty))
    (empty / "cat").mkdir()
    (empty / "cat" / "readme.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError, match=r"class subfolders \('cat'\) but no image files"):
        load_dataset(data_cfg(empty))
    flat = tmp_path / "flat"
    image_writer(flat / "a.png")
    with pytest.raises(DataError, match="holds 1 images but no class subfolders"):
        load_dataset(data_cfg(flat))


def test_single_class_and_empty_class(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 4})
    with pytest.raises(DataError, match=r"at least 2 classes; .* has 1 \('cat'\)"):
        load_dataset(data_cfg(root))
    root = make_image_folder({"cat": 4, "dog": 4})
    (root / "fish").mkdir()
    with pytest.raises(DataError, match=r"1 class\(es\) have no images: 'fish'"):
        load_dataset(data_cfg(root))


def test_classes_differ_between_splits(make_image_folder, data_cfg):
    root = make_image_folder(
        layout="split-folders",
        splits={"train": {"cat": 3, "dog": 3}, "val": {"cat": 2, "dog": 2, "fox": 2}},
    )
    with pytest.raises(DataError, match=r"Classes differ between splits: val has 'fox', which train lacks"):
        load_dataset(data_cfg(root))
    root = make_image_folder(
        layout="split-folders",
        splits={"train": {"cat": 3, "dog": 3, "fox": 3}, "val": {"cat": 2, "dog": 2}},
    )
    index = load_dataset(data_cfg(root, test_fraction=0))
    assert any("val split has no images of 1 class(es): 'fox'" in n for n in index.notes)
    assert "fox" in index.summary().format()


def test_truncated_skipped_by_default_fatal_when_strict(make_image_folder, data_cfg, image_writer):
    root = make_image_folder({"cat": 5, "dog": 5})
    good = image_writer(root / "cat" / "z.jpg", size=(64, 64))
    broken = root / "cat" / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:300])
    (root / "dog" / "fake.png").write_bytes(b"nope")
    index = load_dataset(data_cfg(root))
    assert sorted(p.name for p, _ in index.skipped) == ["broken.jpg", "fake.png"]
    assert broken not in _all_paths(index)
    reasons = dict((p.name, r) for p, r in index.skipped)
    assert "truncated" in reasons["broken.jpg"]
    summary = index.summary()
    assert summary.num_skipped == 2 and "broken.jpg" in summary.format()
    with pytest.raises(
        DataError, match=r"2 image\(s\) cannot be read \(data\.strict is on\):\n.*broken\.jpg: truncated"
    ):
        load_dataset(data_cfg(root, strict=True))


def test_all_images_of_a_class_unreadable(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 3, "dog": 3})
    (root / "fox").mkdir()
    (root / "fox" / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"Every image of 1 class\(es\) is unreadable: 'fox'"):
        load_dataset(data_cfg(root))


def test_too_small_listed_not_fatal(make_image_folder, data_cfg, image_writer):
    root = make_image_folder({"cat": 4, "dog": 4})
    image_writer(root / "cat" / "tiny.png", size=(8, 30))
    index = load_dataset(data_cfg(root, min_image_size=16))
    assert [(p.name, s) for p, s in index.too_small] == [("tiny.png", (8, 30))]
    assert root / "cat" / "tiny.png" in _all_paths(index)
    assert "tiny.png" in index.summary().format()


# ----------------------------------------------------------------------------- splitting


def test_split_is_deterministic_and_stratified(make_image_folder, data_cfg):
    root = make_image_folder({"a": 40, "b": 20, "c": 10})
    one = load_dataset(data_cfg(root), seed=7)
    two = load_dataset(data_cfg(root), seed=7)
    other = load_dataset(data_cfg(root), seed=8)
    assert one.splits == two.splits
    assert one.splits["val"] != other.splits["val"]
    for split in ("val", "test"):
        counts = one.class_counts(split)
        assert counts["a"] > counts["b"] > counts["c"] > 0
        assert abs(counts["a"] - 6) <= 1 and abs(counts["c"] - 1.5) <= 1
    assert one.summary().imbalance_ratio == pytest.approx(one.class_counts()["a"] / one.class_counts()["c"])


def test_tiny_classes_fall_back_with_notes():
    labels = [0] * 20 + [1] * 2 + [2]
    names = ["big", "pair", "single"]
    positions, notes = stratified_split(labels, {"val": 0.15, "test": 0.15}, seed=0, class_names=names)
    train_labels = {labels[p] for p in positions["train"]}
    assert train_labels == {0, 1, 2}  # at least one training image per class
    assert 2 not in {labels[p] for p in positions["val"] + positions["test"]}
    assert any("'single'" in n and "training only" in n for n in notes)
    assert sorted(sum(positions.values(), [])) == list(range(len(labels)))


def test_fallback_when_too_few_images_for_sklearn():
    labels = [i for i in range(10) for _ in range(3)]  # 10 classes x 3 images: val of 15% < 10
    positions, notes = stratified_split(labels, {"val": 0.15}, seed=0)
    assert {labels[p] for p in positions["val"]} == set(range(10))
    assert {labels[p] for p in positions["train"]} == set(range(10))
    assert any("too small for an exactly stratified val split" in n for n in notes)


def test_no_validation_possible(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 1, "dog": 1})
    with pytest.raises(DataError, match="Could not hold out a validation split"):
        load_dataset(data_cfg(root))


def test_split_json_round_trip(make_image_folder, data_cfg, tmp_path, digest_tree):
    root = make_image_folder({"cat": 10, "dog": 10})
    index = load_dataset(data_cfg(root), seed=5)
    path = save_split(index, tmp_path / "run" / "split.json")
    record = json.loads(path.read_text())
    assert record["seed"] == 5 and record["classes"] == ["cat", "dog"] and record["layout"] == "class-folders"
    assert all(not p.startswith("/") for p, _ in record["splits"]["train"])
    loaded = load_split(path)
    assert loaded.splits == index.splits and loaded.classes == index.classes
    # A new image added later does not change a reused split.
    before = digest_tree(root)
    reused = load_dataset(data_cfg(root), seed=99, split_file=path)
    assert reused.splits == index.splits and reused.fingerprint() == index.fingerprint()
    assert digest_tree(root) == before
    # The dataset moved: pass the new root.
    moved = tmp_path / "moved"
    os.rename(root, moved)
    assert load_split(path, root=moved).splits["val"] == [
        Sample(moved / s.path.relative_to(root), s.label) for s in index.splits["val"]
    ]
    reused_moved = load_dataset(data_cfg(moved), split_file=path)
    assert len(reused_moved.splits["train"]) == len(index.splits["train"])
    with pytest.raises(DatasetNotFoundError, match=r"20 image\(s\) listed in the split file .* no longer exist"):
        load_split(path)


def test_split_json_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="split file .* does not exist"):
        load_split(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="is not a valid split.json"):
        load_split(tmp_path / "bad.json")


def test_fingerprint_tracks_file_changes(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 4, "dog": 4})
    index = load_dataset(data_cfg(root))
    first = index.fingerprint()
    assert first == load_dataset(data_cfg(root)).fingerprint() and len(first) == 64
    target = index.splits["train"][0].path
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert index.fingerprint() != first


def test_summary_format(make_image_folder, data_cfg):
    root = make_image_folder({"cat": 10, "dog": 5})
    summary = load_dataset(data_cfg(root)).summary()
    text = summary.format()
    assert "2 classes" in text and "cat" in text and "dog" in text and "Imbalance" in text
    assert summary.totals == {k: len(v) for k, v in load_dataset(data_cfg(root)).splits.items()}
    assert json.dumps(summary.to_dict())


def test_discovery_does_not_import_torch():
    code = (
        "import sys; import headstart.data.index, headstart.data.discover, headstart.data.split,"
        " headstart.data.validate, headstart.data; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
