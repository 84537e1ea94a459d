"""Finding the layout, and the fatal errors: a missing or unrecognisable dataset, and annotation
files that cannot be parsed (named with the parser's line and column)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from headstart.data.detection import detect_layout, load_detection_dataset
from headstart.errors import ConfigError, DataError, DatasetNotFoundError
from tests.data.detection.conftest import (
    FixtureImage,
    draw_image,
    edit_json,
    standard_images,
    write_coco,
    write_voc,
    write_yolo,
)

CLASSES = ["cat", "dog", "bird"]


def test_detect_layout_of_each_layout_and_of_files(tmp_path):
    images = standard_images()
    assert detect_layout(write_coco(tmp_path / "a", images, CLASSES)) == "coco"
    assert detect_layout(write_coco(tmp_path / "b", images, CLASSES, layout="coco-export")) == "coco-export"
    assert detect_layout(write_coco(tmp_path / "c", images, CLASSES, layout="single")) == "coco"
    yolo = write_yolo(tmp_path / "d", images, CLASSES)
    assert detect_layout(yolo) == "yolo" and detect_layout(yolo / "data.yaml") == "yolo"
    assert detect_layout(write_voc(tmp_path / "e", images, CLASSES)) == "voc"
    assert detect_layout(tmp_path / "b" / "train" / "_annotations.coco.json") == "coco-export"
    assert detect_layout(tmp_path / "nothing") is None
    assert detect_layout(tmp_path / "a" / "train") is None


def test_missing_path_suggests_a_close_name(tmp_path):
    write_coco(tmp_path / "coco_small", standard_images(), CLASSES)
    with pytest.raises(DatasetNotFoundError, match=r"'.*coco_smal' does not exist\. Did you mean 'coco_small'\?"
                                                   r" Expected one of these layouts:\n  - COCO: annotations/"):
        load_detection_dataset(tmp_path / "coco_smal")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"The dataset folder '.*empty' is empty\. Expected one of"):
        load_detection_dataset(tmp_path / "empty")


def test_unrecognised_folder_lists_layouts_and_near_misses(tmp_path):
    root = write_coco(tmp_path / "d", standard_images(), CLASSES)
    (root / "annotations").rename(root / "annotation")
    with pytest.raises(DatasetNotFoundError, match=r"No detection dataset found in '.*d'\. Expected one of these"
                                                   r" layouts:(.|\n)*Pascal VOC(.|\n)*'annotation' is not a name"
                                                   r" headstart looks for; did you mean 'annotations'"):
        load_detection_dataset(root)


def test_yolo_folder_without_yaml_and_dataset_one_level_down(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    (root / "data.yaml").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"It has images/ and labels/ as YOLO datasets do, but no data\.yaml"):
        load_detection_dataset(root)
    write_voc(tmp_path / "outer" / "VOC2012", standard_images(), CLASSES)
    with pytest.raises(DatasetNotFoundError, match=r"Its subfolder 'VOC2012' holds a voc dataset: pass '.*VOC2012'"):
        load_detection_dataset(tmp_path / "outer")


def test_classification_folder_is_told_apart(tmp_path):
    for cls in ("cat", "dog"):
        draw_image(tmp_path / "cls" / cls / "a.png", FixtureImage("a.png"), CLASSES)
    with pytest.raises(DatasetNotFoundError, match=r"that is a classification dataset \(one folder per class\)"):
        load_detection_dataset(tmp_path / "cls")


def test_a_file_that_is_no_annotation_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DatasetNotFoundError, match=r"is a file but not a YOLO data\.yaml or a COCO \.json file"):
        load_detection_dataset(path)


def test_broken_json_names_the_file_and_line(tmp_path):
    root = write_coco(tmp_path / "c", standard_images(), CLASSES)
    path = root / "annotations" / "instances_val.json"
    path.write_text('{\n  "images": [],\n  "annotations": [,]\n}\n')
    with pytest.raises(DataError, match=r"Cannot read the JSON file '.*instances_val\.json': Expecting value at"
                                        r" line 3, column 19\. Fix the file or export it again"):
        load_detection_dataset(root)


def test_broken_yaml_names_the_file_and_line(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog\n")
    with pytest.raises(DataError, match=r"Cannot read the YAML file '.*data\.yaml': .* at line 4, column 1\."):
        load_detection_dataset(root)


def test_broken_xml_names_the_file_and_line(tmp_path):
    root = write_voc(tmp_path / "v", standard_images(), CLASSES)
    (root / "Annotations" / "t2.xml").write_text("<annotation>\n  <filename>t2.png</filename>\n</annotatio>\n")
    with pytest.raises(DataError, match=r"Cannot read the XML file '.*t2\.xml': mismatched tag at line 3, column 3\."):
        load_detection_dataset(root)


def test_yaml_structure_errors(tmp_path):
    root = write_yolo(tmp_path / "y", standard_images(), CLASSES)
    doc = yaml.safe_load((root / "data.yaml").read_text())

    def write(**changes):
        (root / "data.yaml").write_text(yaml.safe_dump({**doc, **changes}))

    write(names=None)
    with pytest.raises(DataError, match=r"'.*data\.yaml' has no class names \('names'\)\. Add the class names"):
        load_detection_dataset(root)
    write(nc=4)
    with pytest.raises(DataError, match=r"says nc: 4 but lists 3 names\. Make 'nc' the number of names"):
        load_detection_dataset(root)
    write(val="images/vall")
    with pytest.raises(DataError, match=r"The 'val' entry of '.*data\.yaml' names 'images/vall', but .* does not"
                                        r" exist\. Did you mean 'val'\?"):
        load_detection_dataset(root)
    write(train=None)
    with pytest.raises(DataError, match=r"has no 'train' entry\. Add 'train: images/train'"):
        load_detection_dataset(root)


def test_coco_structure_errors(tmp_path):
    root = write_coco(tmp_path / "c", standard_images(), CLASSES)
    train = root / "annotations" / "instances_train.json"
    original = train.read_text()
    edit_json(train, lambda d: d.pop("images"))
    with pytest.raises(DataError, match=r"The COCO file '.*instances_train\.json' has no 'images' list \(got nothing\)"):
        load_detection_dataset(root)
    train.write_text(original)
    edit_json(train, lambda d: d["categories"][0].update(name="kitten"))
    with pytest.raises(DataError, match=r"Category id 1 is 'kitten' in '.*instances_train\.json' but 'cat' in"
                                        r" '.*instances_val\.json'\. Every split must use the same categories"):
        load_detection_dataset(root)


def test_two_annotation_files_for_one_split(tmp_path):
    root = write_coco(tmp_path / "c", standard_images(), CLASSES, layout="coco-export")
    (root / "val").mkdir()
    (root / "val" / "_annotations.coco.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match=r"has several val annotation files \('val/_annotations\.coco\.json',"
                                        r" 'valid/_annotations\.coco\.json'\)\. Keep one"):
        load_detection_dataset(root)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"val_fraction": 0}, r"The 'val_fraction' parameter must be a float in \(0, 1\)\. Got 0\."),
        ({"test_fraction": 1.2}, r"The 'test_fraction' parameter must be a float in \[0, 1\)\. Got 1\.2\."),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"val_fraction \+ test_fraction must be below 1"),
    ],
)
def test_fractions_are_checked(tmp_path, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_detection_dataset(tmp_path, **kwargs)


def test_the_data_layer_imports_no_torch(tmp_path):
    root = write_voc(tmp_path / "v", standard_images(), CLASSES)
    code = (
        "import sys; from headstart.data.detection import load_detection_dataset;"
        f" i = load_detection_dataset({str(root)!r}); i.summary(640).format();"
        " assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, sorted(sys.modules)"
    )
    src = str(Path(__file__).resolve().parents[3] / "src")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
