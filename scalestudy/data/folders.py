"""The layout of an image folder (``image_folder``'s ``root``), read from its listings without decoding
an image: the training and test roots, the classes, the split sizes. Options are read by attribute
(``root``, ``test_fraction``), so the options module can count a folder without importing the loader."""

from __future__ import annotations

from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset


def roots(options) -> tuple[Path, Path | None]:
    root = Path(options.root).expanduser()
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / "train", root / "test"
    return root, None


def classes_of(train_root: Path) -> dict[str, int]:
    try:
        return find_classes(str(train_root))[1]
    except FileNotFoundError as error:
        raise ValueError(f"root: {error}") from None


def class_count(options) -> int:
    """Classes: the training split's class folders (nothing decoded)."""
    return len(classes_of(roots(options)[0]))


def split_sizes(options) -> tuple[int, int]:
    """(training images, test images), from the folders' listings (nothing decoded)."""
    train_root, test_root = roots(options)
    classes = classes_of(train_root)
    count = len(make_dataset(str(train_root), classes, IMG_EXTENSIONS, allow_empty=True))
    if test_root is not None:
        return count, len(make_dataset(str(test_root), classes, IMG_EXTENSIONS, allow_empty=True))
    held_out = int(round(count * options.test_fraction))
    if count - held_out < 1 or held_out < 1:
        raise ValueError(f"root: {count} images cannot be split into training and test_fraction "
                         f"{options.test_fraction:g} test images")
    return count - held_out, held_out
