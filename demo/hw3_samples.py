"""HW3 sample submissions, built from the source notebook: the reference, the blank
release, and flawed variants ("mutants") that each break one rule of the rubric,
among them the mistakes real student code of this assignment makes (a row reshaped
as [32, 32, 3], padding with 255, a vertical flip, standardizing a uint8 array in
place, one block module reused, one batch norm used twice, the identity shortcut
dropped, the projection fed the raw input, a bottleneck without its 4x expansion or
never built, TensorFlow's momentum passed to PyTorch).

Used by `make demo` (which grades a few of them) and by the kit's tests (which check
that each mutant fails exactly its rubric items). The test-results file is a
synthetic fixture with the accuracy the course's own run printed, not a training result.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from demo.samples import REPO, copy_release_notebook, write_notebook, zip_folder  # noqa: F401 (zip_folder: for callers)

SOURCE = REPO / "source" / "hw3" / "HW3.ipynb"
RELEASE = REPO / "release" / "hw3" / "HW3.ipynb"
RESULTS = "results/test_results.json"
TEST_ACCURACY = 0.9213  # a synthetic fixture, at the level a well-tuned v2 with n = 5 reaches
COURSE_ACCURACY = 0.8612  # the course's v1 run (resnet_size 18, 50 epochs) printed "Test accuracy: 0.8612"


@dataclass(frozen=True)
class Sample:
    """A variant of the reference: source edits per graded cell, and the reported test accuracy."""
    description: str
    edits: dict = field(default_factory=dict)   # grade_id -> [(old, new), ...]
    fails: frozenset = frozenset()               # rubric items it must fail (and only those)
    test_accuracy: float | None = TEST_ACCURACY  # None: no results file


# Lines of the reference that the mutants change (each must occur in its cell).
_SPLIT = "    return x_train[:split_index], y_train[:split_index], x_train[split_index:], y_train[split_index:]\n"
_RESHAPE = ("    depth_major = np.asarray(record).reshape((3, 32, 32))  # CIFAR rows: 1024 red, 1024 green, 1024 blue values\n"
            "    image = np.transpose(depth_major, [1, 2, 0])  # [height, width, channels]\n")
_STACK_BLOCKS = "            blocks.append(block_fn(filters_out, projection, stride, in_channels if i == 0 else filters_out))\n"

MUTANTS = {
    # 1. the reader
    "reader_reshaped": Sample("load_data returns the images as [N, 3, 32, 32]", {"data_reader": [(
        "    return x_train, y_train, x_test, y_test\n",
        "    return x_train.reshape(-1, 3, 32, 32), y_train, x_test.reshape(-1, 3, 32, 32), y_test\n")]},
        frozenset({"reader.arrays"})),
    "reader_labels_reversed": Sample("labels concatenated in the wrong order", {"data_reader": [(
        "    y_train = np.concatenate([y for _, y in parts])\n", "    y_train = np.concatenate([y for _, y in parts[::-1]])\n")]},
        frozenset({"reader.order", "reader.hidden"})),
    "reader_fixed_batch_size": Sample("load_data assumes every batch as large as the first", {"data_reader": [(
        "    x_train = np.concatenate([x for x, _ in parts])\n",
        "    x_train = np.zeros((5 * len(parts[0][0]), 3072), dtype=np.uint8)\n"
        "    for i, (x, _) in enumerate(parts):\n        x_train[i * len(parts[0][0]):(i + 1) * len(parts[0][0])] = x[:len(parts[0][0])]\n")]},
        frozenset({"reader.hidden"})),
    "split_off_by_one": Sample("train_valid_split keeps the row at split_index in both parts", {"data_reader": [(
        _SPLIT, _SPLIT.replace("x_train[:split_index]", "x_train[:split_index + 1]").replace(
            "y_train[:split_index]", "y_train[:split_index + 1]"))]}, frozenset({"reader.split"})),
    # 2. preprocessing
    "parse_hwc": Sample("the row reshaped straight to [32, 32, 3]", {"preprocess": [(
        _RESHAPE, "    image = np.asarray(record).reshape((32, 32, 3))\n")]}, frozenset({"parse.layout"})),
    "pad_255": Sample("padding with 255 instead of 0", {"preprocess": [(
        'mode="constant", constant_values=0)', 'mode="constant", constant_values=255)')]}, frozenset({"preprocess.crop"})),
    "flip_vertical": Sample("a vertical flip instead of a horizontal one", {"preprocess": [(
        "image = np.fliplr(image)", "image = np.flipud(image)")]}, frozenset({"preprocess.flip"})),
    "flip_always": Sample("every training image flipped", {"preprocess": [(
        "if np.random.rand() < 0.5:", "if True:")]}, frozenset({"preprocess.flip"})),
    "crop_fixed": Sample("the crop always at the same place", {"preprocess": [(
        "top, left = np.random.randint(0, 9, size=2)", "top, left = 4, 4")]}, frozenset({"preprocess.crop"})),
    "augment_when_testing": Sample("crop and flip without training too", {"preprocess": [(
        "    if training:\n        padded", "    if True:\n        padded")]}, frozenset({"preprocess.testing"})),
    "standardize_uint8_in_place": Sample("standardized values written back into the uint8 image", {"preprocess": [
        ("    image = np.asarray(image, dtype=np.float32)  # a float copy: never standardize the uint8 pixels in place\n",
         "    image = np.array(image)\n"),
        ("    return ((image - image.mean()) / std).astype(np.float32)\n",
         "    image[...] = (image - image.mean()) / std\n    return image.astype(np.float32)\n")]},
        frozenset({"preprocess.standardize", "preprocess.crop", "preprocess.flip"})),
    # 3. the network
    "output_squeezed": Sample("the pooled features squeezed: a batch of one loses its batch axis", {"network": [(
        "torch.flatten(self.pool(inputs), 1)", "self.pool(inputs).squeeze()")]}, frozenset({"net.output"})),
    "classes_fixed": Sample("the output layer ignores num_classes (always 10)", {"network": [(
        "self.fc = nn.Linear(filters, num_classes)", "self.fc = nn.Linear(filters, 10)")]}, frozenset({"net.hidden"})),
    "shared_block": Sample("one block module reused for every block of a stack", {"network": [(
        _STACK_BLOCKS,
        "            block = block_fn(filters_out, projection, stride, in_channels if i == 0 else filters_out)\n"
        "            blocks.append(block if i < 2 else blocks[1])\n")]},
        frozenset({"net.distinct", "net.hidden"})),
    "blocks_one_short": Sample("each stack builds resnet_size - 1 blocks (at least one)", {"network": [(
        "        for i in range(resnet_size):\n", "        for i in range(max(1, resnet_size - 1)):\n")]},
        frozenset({"net.layers", "net.hidden"})),
    "batchnorm_twice": Sample("one batch norm used after both convolutions of a standard block", {"network": [(
        "        outputs = self.bn2(self.conv2(self.bn_relu1(self.conv1(inputs))))\n",
        "        outputs = self.bn_relu1.batch_norm(self.conv2(self.bn_relu1(self.conv1(inputs))))\n")]},
        frozenset({"net.distinct"})),
    "identity_dropped": Sample("the identity shortcut left out of the blocks without a projection", {"network": [(
        "        return self.relu(outputs + shortcut)\n",
        "        return self.relu(outputs if self.projection_shortcut is None else outputs + shortcut)\n")]},
        frozenset({"net.function"})),
    "projection_before_preactivation": Sample("the v2 projection takes the block's raw input", {"network": [(
        "self.projection_shortcut(preactivated)", "self.projection_shortcut(inputs)")]},
        frozenset({"net.preact", "net.function"})),
    "bottleneck_no_expansion": Sample("bottleneck blocks output their bottleneck width", {"network": [(
        "        filters_out = filters * 4 if bottleneck else filters\n", "        filters_out = filters\n"),
        ("self.output_layer = output_layer(filters * 4 if resnet_version == 2 else filters,",
         "self.output_layer = output_layer(filters,")]},
        frozenset({"net.params", "net.shortcuts", "net.hidden"})),
    "bottleneck_never_built": Sample("the block chosen by `is` on a string: v2 builds standard blocks", {"network": [
        ("        bottleneck = block_fn in (bottleneck_block, \"bottleneck_block\")  # == on a string, never `is`\n",
         "        bottleneck = block_fn is bottleneck_block\n"),
        ("        block_fn = standard_block if resnet_version == 1 else bottleneck_block\n",
         "        block_fn = \"standard_block\" if resnet_version == 1 else \"bottleneck_block\"\n")]},
        frozenset({"net.output", "net.params", "net.preact", "net.hidden"})),
    "start_layer_strided": Sample("the start layer strides by 2", {"network": [(
        "self.start_layer = nn.Conv2d(3, first_num_filters, 3, padding=1, bias=False)",
        "self.start_layer = nn.Conv2d(3, first_num_filters, 3, stride=2, padding=1, bias=False)")]}, frozenset({"net.strides"})),
    "tensorflow_momentum": Sample("TensorFlow's momentum 0.997 passed to nn.BatchNorm2d", {"network": [(
        "momentum=1 - momentum)", "momentum=momentum)")]}, frozenset({"net.momentum"})),
    # 4. training and testing
    "checkpoint_whole_module": Sample("the checkpoint pickles the whole module", {"model": [(
        "torch.save(self.network.state_dict(), path)", "torch.save(self.network, path)"),
        ("self.network.load_state_dict(torch.load(path, map_location=device, weights_only=True))",
         "self.network = torch.load(path, map_location=device, weights_only=False)")]},
        frozenset({"model.checkpoints"})),
    "test_without_restoring": Sample("test_or_validate tests the last weights, not the checkpoint", {"model": [(
        "            self.network.load_state_dict(torch.load(path, map_location=device, weights_only=True))\n", "")]},
        frozenset({"model.checkpoints"})),
    "low_accuracy": Sample("the course's own run: 86.12%", test_accuracy=COURSE_ACCURACY, fails=frozenset({"model.accuracy"})),
    # numpy, pickle and os are imported by HW3's setup cell, so re-importing them is allowed; random is new.
    "extra_import": Sample("an import in a graded cell", {"preprocess": [(
        "# AUTOGRADED\n", "# AUTOGRADED\nimport random\n")]}, frozenset({"rules.imports"})),
}


def write_results(folder: Path, sample: Sample) -> None:
    if sample.test_accuracy is None:
        return
    out = Path(folder) / "results"
    out.mkdir(parents=True, exist_ok=True)
    data = {"test_accuracy": sample.test_accuracy, "checkpoint": "model-50.ckpt",
            "config": dict(resnet_version=1, resnet_size=18, num_classes=10, first_num_filters=16, batch_size=128,
                           learning_rate=0.1, weight_decay=2e-4, lr_step=25, save_interval=10, modeldir="model_v1")}
    (out / "test_results.json").write_text(json.dumps(data, indent=2))


def build(folder: Path, sample: Sample | None = None, notebook_edit=None) -> Path:
    """Write a submission folder: the reference with `sample`'s edits applied, and its results file."""
    sample = sample or Sample("the reference solution")
    write_notebook(SOURCE, folder, sample.edits, notebook_edit)
    write_results(folder, sample)
    return Path(folder)


def build_blank(folder: Path) -> Path:
    """The untouched student release, as submitted without any work."""
    return copy_release_notebook(RELEASE, folder)
