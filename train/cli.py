"""``bs4nn data ...`` (and, from the trainer, ``bs4nn train``)."""

from __future__ import annotations

import argparse

from bs4nn.train.datasets import DATASETS, check_dataset, data_root


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding mnist/ and fashion-mnist/ IDX files (default: $BS4NN_DATA, else ~/.cache/bs4nn/data)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="check the MNIST / Fashion-MNIST files", description="Dataset tools.")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_sub.add_parser(
        "check",
        help="verify sha256, shapes and label counts of every dataset file",
        description="Verify every IDX file of the datasets: sha256 of the gzip files, magic numbers, "
        "shapes and per-class label counts. Exit status 0 only if all are OK.",
    )
    add_data_dir(check)
    check.add_argument("--dataset", choices=sorted(DATASETS), action="append", help="check only this dataset")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    print(f"data folder: {data_root(args.data_dir)}")
    for name in args.dataset or sorted(DATASETS):
        for line in check_dataset(name, args.data_dir):
            print(line)
    print("all dataset files OK")
    return 0
