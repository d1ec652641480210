"""HW3 checks: how the grader judges what the probes measured.

Everything here runs in the grader's own process, on plain data that came back from
the sandbox. Expected values are computed here: the arrays the reader must return
(regenerated from the same seeds as the files the probe wrote), the images the
preprocessing must make of the grader's uint8 images, and the specification's
parameter and layer counts. Checks that need the reference network itself are in
hidden_checks.py. Points and thresholds are in rubric.yaml; messages speak to the student.
"""
from __future__ import annotations

import torch

from checklib import judges
from checklib.checks import Check, Outcome, Verdict, failed, outcomes, passed
from checklib.data import seeded_pixels

SEED = 3
TRAIN_BATCHES = 5


# --- the data reader ------------------------------------------------------------------------

def batch_arrays(sizes, seed: int):
    """The rows and labels of each file the probe wrote (the same draw as probes.batch_arrays)."""
    import numpy as np
    return [(seeded_pixels((n, 3072), seed * 100 + i),
             np.random.default_rng(seed * 100 + 50 + i).integers(0, 10, n)) for i, n in enumerate(sizes)]


def expected_arrays(sizes, seed: int):
    """(x_train, y_train, x_test, y_test) as load_data must return them: batches 1..5 in order, then the test batch."""
    import numpy as np
    parts = batch_arrays(sizes, seed)
    train, (x_test, y_test) = parts[:TRAIN_BATCHES], parts[TRAIN_BATCHES]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), x_test, y_test)


NAMES = ("x_train", "y_train", "x_test", "y_test")


def _files(sizes) -> str:
    return (f"data_batch_1..5 of {', '.join(map(str, sizes[:TRAIN_BATCHES]))} images and a test_batch of "
            f"{sizes[TRAIN_BATCHES]}")


def reader_arrays_judge(sizes, seed: int, what: str):
    """Shapes and dtypes of load_data's four arrays."""
    def judge(record):
        o = Outcome.of(record)
        if not o.ok:
            return failed(f"{what}: on {_files(sizes)}, load_data raised an error:\n{o.error}")
        for name, got, want in zip(NAMES, o.value, expected_arrays(sizes, seed)):
            if tuple(got.shape) != tuple(want.shape):
                return failed(f"{what}: on {_files(sizes)}, {name} has shape {tuple(got.shape)}; expected "
                              f"{tuple(want.shape)} (one [3072] row per image, one label per image).")
            if name.startswith("y") and got.dtype.is_floating_point:
                return failed(f"{what}: {name} holds {got.dtype} values; labels are integers (class indices).")
        return passed(f"{what}: on {_files(sizes)}, the four arrays have the expected shapes.")
    return judge


def reader_order_judge(sizes, seed: int, what: str):
    """Values: the rows and labels of every batch, in order, aligned; the test batch apart."""
    def judge(record):
        o = Outcome.of(record)
        if not o.ok:
            return failed(f"{what}: load_data raised an error (see the shapes check):\n{o.error}")
        want = expected_arrays(sizes, seed)
        if [g.numel() for g in o.value] != [w.size for w in want] or [len(g) for g in o.value] != [len(w) for w in want]:
            return failed(f"{what}: could not be checked, because the arrays' shapes are not the expected ones "
                          "(see the shapes check).")
        for name, got, expected in zip(NAMES, o.value, want):
            # Compared row by row: a reshaped row ([3, 32, 32]) is the shapes check's mistake, not this one.
            got, expected = got.reshape(len(got), -1).to(torch.float64), torch.from_numpy(expected.astype("int64"))
            expected = expected.reshape(len(expected), -1).to(torch.float64)
            if not torch.equal(got, expected):
                first = int((got != expected).any(1).nonzero()[0])
                hint = ("labels must stay aligned with their images" if name.startswith("y") else
                        "keep each row as the file stores it (uint8 values 0..255, no scaling)")
                return failed(f"{what}: {name}[{first}] is not the file's: expected data_batch_1..5 in this order "
                              f"(then test_batch for the test arrays), each file's rows in their order; {hint}.")
        return passed(f"{what}: every row and label of data_batch_1..5 in order, and test_batch on its own.")
    return judge


READER_SIZES = [8, 8, 8, 8, 8, 6]


def _split_judge(record):
    what = "train_valid_split"
    n, split_index, default_n = SPLIT["args"]["n"], SPLIT["args"]["split_index"], SPLIT["args"]["default_n"]
    o = Outcome.of(record["index"])
    if not o.ok:
        return failed(f"{what}(x, y, {split_index}) on {n} rows raised an error:\n{o.error}")
    x_train, y_train, x_valid, y_valid = o.value
    rows = torch.arange(n * 4).reshape(n, 4)
    for name, got, want in (("x_train_new", x_train, rows[:split_index]), ("y_train_new", y_train, torch.arange(split_index)),
                            ("x_valid", x_valid, rows[split_index:]), ("y_valid", y_valid, torch.arange(split_index, n))):
        if tuple(got.shape) != tuple(want.shape) or not torch.equal(got.to(torch.int64), want):
            return failed(f"{what}(x, y, {split_index}) on {n} rows: {name} is not rows {'0' if 'train' in name else split_index}.."
                          f"{(split_index if 'train' in name else n) - 1} (shape {tuple(got.shape)}, expected {tuple(want.shape)}): "
                          "the first split_index rows train, the rest validate, in their order.")
    d = Outcome.of(record["default"])
    if not d.ok:
        return failed(f"{what}(x, y) with the default split_index raised an error:\n{d.error}")
    if d.value != [45000, 45000, default_n - 45000, default_n - 45000]:
        return failed(f"{what}(x, y) on {default_n} rows gives parts of {d.value} rows; the default split_index is 45000.")
    return passed(f"{what}: the first split_index rows train, the rest validate; the default split_index is 45000.")


SPLIT = dict(probe="split", args={"n": 30, "split_index": 20, "default_n": 45006}, cells=("data_reader",))


# --- preprocessing --------------------------------------------------------------------------

PARSE = dict(probe="parse", args={"seed": SEED, "count": 4}, cells=("preprocess",))
# 200 training draws: a correct flip rate of 1/2 is measured within 0.5 +/- 0.035 (one
# standard deviation); the check accepts 0.3..0.7, more than 5.6 standard deviations
# away, so a correct solution fails with a probability below 1e-7 whatever random
# generator it uses. A fair random crop shows about 80 of the 81 offsets; the check asks for 10.
DRAWS, REPEATS, FLIP_RATE, MIN_OFFSETS, MIN_MATCHED = 200, 6, (0.3, 0.7), 10, 50
PREPROCESS = dict(probe="preprocess", args={"seed": SEED + 1, "draws": DRAWS, "repeats": REPEATS}, cells=("preprocess",))


def _channel_standardized(images: torch.Tensor) -> torch.Tensor:
    """Each channel of each image ([..., C] last) shifted to mean 0 and scaled to std 1.
    Per-image and per-channel standardization of the same pixels both come out equal
    after this, so either one is accepted."""
    dims = tuple(range(images.dim() - 3, images.dim() - 1))
    mean = images.mean(dim=dims, keepdim=True)
    return (images - mean) / images.std(dim=dims, keepdim=True, unbiased=False).clamp_min(1e-8)


def _parse_judge(record):
    what = "parse_record layout"
    rows = torch.from_numpy(seeded_pixels((PARSE["args"]["count"], 3072), PARSE["args"]["seed"])).double()
    chw = rows.reshape(-1, 3, 32, 32)
    stand_in = Outcome.of(record["stand_in"])
    if stand_in.ok and stand_in.value["called"]:
        out = stand_in.value["out"].double()
        if torch.allclose(out, chw):
            return passed(f"{what}: each [3072] row becomes the [3, 32, 32] image CIFAR-10 stores (channel-first).")
        hwc = rows.reshape(-1, 32, 32, 3).permute(0, 3, 1, 2)
        hint = (" It is the row reshaped to [32, 32, 3]: CIFAR rows are channel-first (1024 red values, then 1024 "
                "green, then 1024 blue), so reshape to [3, 32, 32] first." if torch.allclose(out, hwc) else "")
        return failed(f"{what}: with preprocess_image replaced by a function that returns its input unchanged, "
                      f"parse_record(row, False) does not return the row as a [3, 32, 32] image (channel, height, width).{hint}")
    full = Outcome.of(record["full"])
    if not full.ok:
        return failed(f"{what}: parse_record raised an error:\n{full.error}")
    got = _channel_standardized(full.value.double().permute(0, 2, 3, 1))
    if torch.allclose(got, _channel_standardized(chw.permute(0, 2, 3, 1)), atol=1e-3):
        return passed(f"{what}: each [3072] row becomes the [3, 32, 32] image CIFAR-10 stores (channel-first), standardized.")
    return failed(f"{what}: parse_record(row, False) is not the row read as a [3, 32, 32] image (channel-first: 1024 red, "
                  "1024 green, then 1024 blue values) and standardized. Reshape to [3, 32, 32], then hand the image to "
                  "preprocess_image (it works on [32, 32, 3]), then transpose back.")


def _standardized_problem(image: torch.Tensor) -> str | None:
    mean, std = float(image.mean()), float(image.std(unbiased=False))
    if abs(mean) > 1e-3 or abs(std - 1) > 1e-2:
        return f"its mean is {mean:.4g} and its standard deviation {std:.4g}"
    return None


def _standardize_judge(record):
    what = "Standardization"
    o = Outcome.of(record["test"])
    if not o.ok:
        return failed(f"{what}: preprocess_image(image, training=False) on a uint8 [32, 32, 3] image raised an error:\n{o.error}")
    for image in o.value[:, 0].double():
        problem = _standardized_problem(image)
        if problem:
            return failed(f"{what}: preprocess_image(image, training=False) on a uint8 [32, 32, 3] image returns an image "
                          f"whose pixels are not standardized: {problem}; expected 0 and 1 (per image, or per channel). "
                          "Convert to float first (np.float32): values written back into a uint8 array are truncated.")
    return passed(f"{what}: every output has mean 0 and standard deviation 1.")


def _oriented(out: torch.Tensor) -> torch.Tensor:
    """`out` ([32, 32, 3]) undone by each orientation (as is, flipped left-right,
    flipped upside down): [3, 32, 32, 3]."""
    return torch.stack([out, out.flip(1), out.flip(0)])


def _locate(out: torch.Tensor, image: torch.Tensor) -> tuple[int, int] | None:
    """(offset dy * 9 + dx, orientation) of the 32x32 window of the 4-pixel-padded image
    that `out` is, judged on the central 24x24 pixels (which come from the image
    itself at every offset, whatever the padding holds) up to a scale and shift per
    channel, so that neither the standardization nor the padding value matters; None
    when no window and orientation agree (correlation above 0.9999 in every channel)."""
    def normalized(t):  # [..., 24, 24, 3] -> zero mean, unit norm per channel
        t = t - t.mean(dim=(-3, -2), keepdim=True)
        return t / t.square().sum(dim=(-3, -2), keepdim=True).sqrt().clamp_min(1e-12)
    windows = torch.stack([image[dy:dy + 24, dx:dx + 24] for dy in range(9) for dx in range(9)])  # [81, 24, 24, 3]
    centres = _oriented(out)[:, 4:28, 4:28]                                                        # [3, 24, 24, 3]
    corr = torch.einsum("ahwc,ohwc->aoc", normalized(windows.float()), normalized(centres.float()))
    worst = corr.min(dim=2).values  # [81, 3]: the worst channel
    best = int(worst.argmax())
    return (best // 3, best % 3) if float(worst.flatten()[best]) > 0.9999 else None


ORIENTATIONS = ("as is", "flipped left-right", "flipped upside down")


def _is_zero_padded_window(out: torch.Tensor, image: torch.Tensor, where: tuple[int, int]) -> bool:
    """`out`, once its orientation is undone, is the window at `where` of the image padded
    with zeros, standardized (compared after standardizing both per channel)."""
    dy, dx = divmod(where[0], 9)
    padded = torch.nn.functional.pad(image.permute(2, 0, 1), (4, 4, 4, 4)).permute(1, 2, 0)
    window = padded[dy:dy + 32, dx:dx + 32]
    got = _oriented(out)[where[1]]
    return bool((_channel_standardized(got) - _channel_standardized(window)).abs().max() < 1e-3)


def _training_draws(record):
    o = Outcome.of(record["train"])
    images = torch.from_numpy(seeded_pixels((DRAWS, 32, 32, 3), PREPROCESS["args"]["seed"])).double()
    return o, images


def _crop_judge(record):
    what = "Random crop"
    o, images = _training_draws(record)
    if not o.ok:
        return failed(f"{what}: preprocess_image(image, training=True) on a uint8 [32, 32, 3] image raised an error:\n{o.error}")
    offsets = set()
    for k, (out, image) in enumerate(zip(o.value.double(), images)):
        where = _locate(out, image)
        if where is None or not _is_zero_padded_window(out, image, where):
            border = "" if where is None else " Its pixels from the image are in place, but the border is not zeros."
            return failed(f"{what}: with training=True, output {k} is not a 32x32 window of the image padded with 4 "
                          "pixels of zeros on every side (np.pad(..., constant_values=0), then a window whose corner is "
                          f"0..8 pixels from the padded image's corner), standardized.{border}")
        offsets.add(where[0])
    if len(offsets) < MIN_OFFSETS:
        return failed(f"{what}: with training=True, {DRAWS} outputs show only {len(offsets)} different window position(s); "
                      "a random crop picks the corner's position at random among the 9 x 9 possible ones.")
    return passed(f"{what}: every output is a window of the zero-padded image; {len(offsets)} different positions "
                  f"over {DRAWS} draws.")


def _flip_judge(record):
    what = "Random flip"
    o, images = _training_draws(record)
    if not o.ok:
        return failed(f"{what}: preprocess_image(image, training=True) raised an error (see the crop check):\n{o.error}")
    seen = [m for m in (_locate(out, image) for out, image in zip(o.value.double(), images)) if m is not None]
    if len(seen) < MIN_MATCHED:
        return failed(f"{what}: could not be measured, because only {len(seen)} of {DRAWS} outputs are a window of the "
                      "image (see the crop and standardization checks).")
    upside_down = sum(m[1] == 2 for m in seen)
    if upside_down:
        return failed(f"{what}: {upside_down} of {len(seen)} outputs are flipped upside down (a vertical flip); flip "
                      "left-right, along the width axis (np.fliplr on [height, width, channels], or axis=1).")
    rate = sum(m[1] == 1 for m in seen) / len(seen)
    if not FLIP_RATE[0] <= rate <= FLIP_RATE[1]:
        return failed(f"{what}: {rate:.0%} of {len(seen)} outputs are flipped left-right; expected about half "
                      "(each image flipped with probability 1/2).")
    return passed(f"{what}: {rate:.0%} of {len(seen)} outputs flipped left-right, none upside down.")


def _testing_judge(record):
    what = "No augmentation without training"
    o = Outcome.of(record["test"])
    if not o.ok:
        return failed(f"{what}: preprocess_image(image, training=False) raised an error:\n{o.error}")
    images = torch.from_numpy(seeded_pixels((4, 32, 32, 3), PREPROCESS["args"]["seed"])).double()
    for calls, image in zip(o.value.double(), images):
        if not all(torch.equal(calls[0], c) for c in calls[1:]):
            return failed(f"{what}: {REPEATS} calls of preprocess_image(image, training=False) on the same image give "
                          "different outputs; without training the image must not be cropped or flipped at random.")
        match = _locate(calls[0], image)
        if match is not None and match != (40, 0):  # offset (4, 4), as is: the image itself
            return failed(f"{what}: preprocess_image(image, training=False) returns the image shifted or "
                          f"{ORIENTATIONS[match[1]]}; without training only the standardization applies.")
    return passed(f"{what}: without training the same image always gives the same, unshifted, unflipped output.")


# --- the network ------------------------------------------------------------------------------

BATCH = 2


def network(version: int, size: int, classes: int = 10, filters: int = 16, image: int = 32, batch: int = BATCH) -> dict:
    return {"version": version, "size": size, "classes": classes, "filters": filters, "input": [batch, 3, image, image]}


def describe(s) -> str:
    return (f"ResNet({s['version']}, {s['size']}, {s['classes']}, {s['filters']}) (version, resnet_size, num_classes, "
            f"first_num_filters) on a batch of shape {tuple(s['input'])}")


def spec_parameters(version: int, size: int, classes: int, filters: int) -> int:
    """The parameter count of the specified network: convolutions without bias (a batch
    norm follows each, or the sum does), batch norms with weight and bias, the linear layer with bias."""
    bn = lambda c: 2 * c  # noqa: E731
    total = 3 * 9 * filters + (bn(filters) if version == 1 else 0)
    for i in range(3):
        f = filters * 2 ** i
        out = f if version == 1 else 4 * f
        c_in = filters if i == 0 else out // 2
        for b in range(size):
            if version == 1:
                total += c_in * 9 * f + bn(f) + f * 9 * f + bn(f)
            else:
                total += bn(c_in) + c_in * f + bn(f) + f * 9 * f + bn(f) + f * out
            if b == 0 and (i > 0 or c_in != out):
                total += c_in * out  # the projection shortcut, 1x1
            c_in = out
    last = filters * 4 * (4 if version == 2 else 1)
    return total + (bn(last) if version == 2 else 0) + last * classes + classes


def weighted_calls(version: int, size: int) -> tuple[int, int]:
    """(layers with weights on the main path, projection shortcuts) forward calls: v1 6n + 2, v2 9n + 2."""
    return (6 * size + 2, 2) if version == 1 else (9 * size + 2, 3)


def _params_test(rows, s):
    count = sum(int(torch.tensor(shape).prod()) if shape else 1 for r in rows for shape in r["params"].values())
    want = spec_parameters(s["version"], s["size"], s["classes"], s["filters"])
    if count != want:
        kinds = {}
        for r in rows:
            n = sum(int(torch.tensor(shape).prod()) if shape else 1 for shape in r["params"].values())
            if n:
                kinds[r["kind"]] = kinds.get(r["kind"], 0) + n
        found = ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items()))
        return (f"it has {count:,} parameters ({found}); the specification has {want:,}. Check the channels of every "
                "layer, that each block has its own layers (no module reused), the bottleneck's 4x wider output, and "
                "that convolutions have no bias (bias=False).")
    return None


def _convs(calls):
    return [c for c in calls if c["kind"] == "Conv2d"]


def _layers_test(calls, s):
    """The layers with weights forward calls, counted by measurement: v1's main path is
    its 3x3 convolutions and the linear layer (6n + 2); v2's adds two 1x1 convolutions
    per bottleneck (9n + 2), which the shortcuts check counts with the projections."""
    n = s["size"]
    three = sum(c["kind"] == "Conv2d" and list(c["kernel_size"] or []) == [3, 3] for c in calls)
    linear = sum(c["kind"] == "Linear" for c in calls)
    want = 6 * n + 1 if s["version"] == 1 else 3 * n + 1
    if (three, linear) != (want, 1):
        if s["version"] == 1:
            spec = f"6n + 2 = {6 * n + 2} layers with weights: the 3x3 start layer, two 3x3 convolutions per standard block, and the linear layer"
        else:
            spec = (f"9n + 2 = {9 * n + 2} layers with weights on its main path: the 3x3 start layer, one 3x3 convolution "
                    "per bottleneck block (between its two 1x1 convolutions), and the linear layer")
        return (f"forward calls {three} 3x3 convolutions and {linear} linear layer(s); with n={n}, expected {want} and 1 "
                f"({spec}).")
    return None


def _distinct_test(calls, s):
    names = [c["name"] for c in calls if c["kind"] in ("Conv2d", "BatchNorm2d", "Linear")]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return (f"forward calls the layer(s) {', '.join(f'`{n}`' for n in twice[:4])} more than once: they share their "
                "weights. Every block, and every convolution and batch norm in a block, needs its own module "
                "(build a new one for each: nn.ModuleList([block_fn(...) for ...]), not [block] * n).")
    return None


def _strides_test(calls, s):
    convs = _convs(calls)
    strided = [c for c in convs if c["stride"] and max(c["stride"]) > 1]
    size = s["input"][2]
    last = convs[-1]["out_size"] if convs else None
    if len(strided) != 4 or last != [size // 4, size // 4]:
        names = ", ".join(f"`{c['name']}`" for c in strided) or "none"
        return (f"the convolutions with a stride above 1 are {names}, and the last convolution's output is "
                f"{last[0] if last else '?'}x{last[1] if last else '?'}; expected exactly the first block of stacks 2 "
                f"and 3 to halve the size (one convolution of its main path and its projection shortcut: 4 in all), "
                f"so the output layer gets {size // 4}x{size // 4} feature maps.")
    return None


def _shortcuts_test(calls, s):
    """Projection shortcuts counted by measurement: the 1x1 convolutions forward calls,
    less (in v2) the two of each bottleneck, counted from the student's own 3x3
    convolutions (one per bottleneck after the start layer), so a missing block is the
    depth check's mistake, not this one's."""
    convs = _convs(calls)
    ones = sum(list(c["kernel_size"] or []) == [1, 1] for c in convs)
    threes = sum(list(c["kernel_size"] or []) == [3, 3] for c in convs)
    bottlenecks = max(threes - 1, 0) if s["version"] == 2 else 0
    projections = ones - 2 * bottlenecks
    want = weighted_calls(s["version"], s["size"])[1]
    if projections != want:
        where = ("the first block of stacks 2 and 3 (where the stride and the channels change)" if s["version"] == 1
                 else "the first block of each stack (the channels change, and in stacks 2 and 3 the size too)")
        inside = "" if s["version"] == 1 else f" besides the two 1x1 convolutions of each of its {bottlenecks} bottleneck blocks"
        return (f"forward calls {projections} projection shortcut(s) (1x1 convolutions{inside}); expected {want}: one only "
                f"in {where}. Every other block adds its input unchanged (the identity shortcut).")
    return None


def _source(calls, name):
    """What feeds the call `name`, followed back through activation layers: (feeding call, through a ReLU)."""
    by_name = {c["name"]: c for c in calls}
    call, relu = by_name[name], False
    while call["fed_by"] is not None:
        relu = relu or call["relu"]
        source = by_name.get(call["fed_by"])
        if source is None or source["kind"] not in judges.ACTIVATIONS:
            return source, relu
        relu, call = relu or source["kind"] == "ReLU", source
    return None, relu


def _preact_test(calls, s):
    if s["version"] != 2:
        return judges.SKIP
    for conv in _convs(calls)[1:]:
        source, relu = _source(calls, conv["name"])
        if source is None or source["kind"] != "BatchNorm2d" or not relu:
            fed = f"`{source['name']}` ({source['kind']})" if source else "a tensor no batch norm made (the block's input)"
            return (f"the convolution `{conv['name']}` is fed by {fed}; in a full pre-activation block every convolution, "
                    "the projection shortcut included, takes the output of a batch norm and a ReLU (BN -> ReLU -> conv).")
    return None


def _momentum_test(norms, s):
    tf_like = [n for n in norms if n["momentum"] is not None and n["momentum"] > 0.5]
    if tf_like:
        n = tf_like[0]
        return (f"the batch norm `{n['name']}` replaces {n['momentum']:.1%} of its running mean with each batch (its "
                f"momentum, measured, is {n['momentum']:.3g}). TensorFlow's momentum 0.997 keeps 99.7% of the average; "
                "PyTorch's momentum is the weight of the new batch, so the same average is momentum=1 - 0.997 = 0.003.")
    return None


# n = 3 shows a block module reused for blocks 2 and 3; a batch of one shows an output that loses its batch axis.
NETWORKS = [network(1, 1), network(1, 3), network(2, 1, batch=1), network(2, 2)]
NET = dict(probe="networks", args={"settings": NETWORKS, "seed": SEED, "parts": ["structure", "forward", "calls", "momentum"]},
           cells=("network",))


def net_output_judge(what: str):
    return judges.output_shape(lambda s: [s["input"][0], s["classes"]], what, describe)


def net_params_judge(what: str):
    """Parameters against the specification, per setting, from the structure alone (a crash
    in forward does not stop it). A setting whose forward shows a layer called twice or the
    wrong depth is left to net.distinct / net.layers: their mistake changes the count too,
    and one mistake is charged once."""
    by_structure = judges.each_setting("structure", _params_test, what, describe)

    def judge(rows: list) -> Verdict:
        if not all("calls" in row for row in rows):  # a probe that measured the structure only
            return by_structure(rows)
        calls = outcomes(rows, "calls")
        own = [row for row, c in zip(rows, calls)
               if not (c.ok and (_distinct_test(c.value, c.setting) or _layers_test(c.value, c.setting)))]
        if rows and not own:
            return passed(f"{what}: not judged on its own: in every setting the layers are shared or the depth is "
                          "wrong, which net.distinct / net.layers charge.")
        return by_structure(own)
    return judge


# --- training, checkpoints and testing -----------------------------------------------------------

MODEL_CONFIG = dict(resnet_version=1, resnet_size=1, num_classes=10, first_num_filters=8, batch_size=8,
                    learning_rate=0.01, weight_decay=2e-4, lr_step=100, save_interval=1)
CHECKPOINT = dict(probe="checkpoints", args={"config": MODEL_CONFIG, "rows": 8, "epochs": 2, "restore": 1, "seed": SEED + 2},
                  cells=("preprocess", "network", "model"))


def _checkpoint_judge(data):
    what = "Checkpoints"
    args = CHECKPOINT["args"]
    files, restored, tested = (Outcome.of(data[k]) for k in ("files", "restored", "tested"))
    if not files.ok:
        return failed(f"{what}: Cifar(config).train(x, y, {args['epochs']}) on {args['rows']} uint8 rows raised an "
                      f"error:\n{files.error}")
    if not restored.ok:
        return failed(f"{what}: {restored.error}. Save self.network.state_dict() with torch.save to "
                      "config.modeldir/model-<epoch>.ckpt every save_interval epochs.")
    if not tested.ok:
        return failed(f"{what}: test_or_validate(x, y, [{args['restore']}]) raised an error:\n{tested.error}")
    ours, theirs = restored.value, tested.value
    if tuple(ours["out"].shape) != tuple(theirs["out"].shape) or not torch.allclose(ours["out"], theirs["out"], atol=1e-5):
        return failed(f"{what}: after test_or_validate(x, y, [{args['restore']}]), the model's network does not give the "
                      f"outputs of model-{args['restore']}.ckpt's weights: test_or_validate must restore each checkpoint "
                      "before testing it.")
    y = torch.from_numpy(__import__("numpy").random.default_rng(args["seed"]).integers(0, 10, args["rows"]))
    accuracy = float((ours["predictions"] == y).double().mean())
    if len(theirs["accuracies"]) != 1 or abs(theirs["accuracies"][0] - accuracy) > 1e-6:
        return failed(f"{what}: test_or_validate(x, y, [{args['restore']}]) returned {theirs['accuracies']}; the "
                      f"checkpoint's accuracy on these {args['rows']} images is {accuracy:.4f} (one accuracy per "
                      "checkpoint, a fraction, with parse_record(row, False) for each image).")
    return passed(f"{what}: model-{args['restore']}.ckpt restores the network's outputs exactly, and test_or_validate "
                  f"reports its accuracy ({accuracy:.4f}).")


RESULTS_FILE = "results/test_results.json"


def _accuracy_judge(record):
    what = "Test accuracy"
    o = Outcome.of(record)
    if not o.ok:
        return failed(f"{what}: {o.error}")
    value = judges.number(o.value.get("test_accuracy")) if isinstance(o.value, dict) else None
    if value is None or not 0 <= value <= 1:
        return failed(f"{what}: {RESULTS_FILE} holds no test_accuracy between 0 and 1 (the fraction test_or_validate "
                      "returns); run the last cell of the notebook.")
    return passed(f"{what}: {value:.4f} on the CIFAR-10 test set.", value=value)


# --- the public checks, in rubric order (hidden ones: hidden_checks.py) ---------------------

_reader = dict(probe="reader", args={"sizes": READER_SIZES, "seed": SEED}, cells=("data_reader",))

CHECKS = [
    Check("reader.arrays", judge=reader_arrays_judge(READER_SIZES, SEED, "load_data shapes"), **_reader),
    Check("reader.order", judge=reader_order_judge(READER_SIZES, SEED, "load_data values"), **_reader),
    Check("reader.split", judge=_split_judge, **SPLIT),
    Check("parse.layout", judge=_parse_judge, **PARSE),
    Check("preprocess.standardize", judge=_standardize_judge, **PREPROCESS),
    Check("preprocess.testing", judge=_testing_judge, **PREPROCESS),
    Check("preprocess.crop", judge=_crop_judge, **PREPROCESS),
    Check("preprocess.flip", judge=_flip_judge, **PREPROCESS),
    Check("net.output", judge=net_output_judge("ResNet output"), **NET),
    Check("net.params", judge=net_params_judge("ResNet parameters"), **NET),
    Check("net.layers", judge=judges.each_setting("calls", _layers_test, "ResNet depth", describe, errors="skip"), **NET),
    Check("net.distinct", judge=judges.each_setting("calls", _distinct_test, "ResNet shared layers", describe, errors="skip"), **NET),
    Check("net.strides", judge=judges.each_setting("calls", _strides_test, "ResNet strides", describe, errors="skip"), **NET),
    Check("net.shortcuts", judge=judges.each_setting("calls", _shortcuts_test, "ResNet projection shortcuts", describe,
                                                     errors="skip"), **NET),
    Check("net.preact", judge=judges.each_setting("calls", _preact_test, "ResNet v2 pre-activation", describe, errors="skip"),
          **NET),
    Check("net.momentum", judge=judges.each_setting("momentum", _momentum_test, "Batch norm momentum", describe,
                                                    errors="skip"), **NET),
    Check("model.checkpoints", judge=_checkpoint_judge, **CHECKPOINT),
    Check("model.accuracy", "results_file", _accuracy_judge, {"path": RESULTS_FILE}, files=(RESULTS_FILE,)),
]
