"""hw_utils.data: batched augmentation on the device, and train() on such datasets."""
import pytest
import torch
from torch import nn

from hw_utils import DeviceImages, cifar10, train
from demo.digits import digits_datasets


def numbered_images(n=8, size=8):
    """Images whose pixel (y, x) holds 10*y + x in every channel: easy to track."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = (10 * yy + xx).to(torch.uint8)
    return image.expand(n, 3, size, size).clone()


def to_pixels(x):
    """Undo the default normalisation ((x/255) - 0.5) back to pixel values."""
    return torch.round((x + 0.5) * 255).long()


def test_batches_have_the_shape_dtype_and_range_of_the_test_transform():
    data = DeviceImages(torch.randint(0, 256, (10, 32, 32, 3), dtype=torch.uint8), list(range(10)), train=True, cutout=8)
    x, y = next(data.batches(4, shuffle=True))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (4,)
    assert -0.5 <= x.min() and x.max() <= 0.5
    sample, label = data[3]
    assert sample.shape == (3, 32, 32) and int(label) == 3


def test_crop_really_shifts_the_image():
    data = DeviceImages(numbered_images(64), torch.zeros(64), train=True, crop_padding=2, flip=False, padding_mode="zeros")
    torch.manual_seed(0)
    x = to_pixels(data.augment(torch.arange(64)))
    shifts = set()
    for img in x[:, 0]:
        # Find the original pixel (0, 0) (value 0 inside, but padding is 0 too): use pixel (3, 3) = 33.
        ys, xs = torch.nonzero(img == 33, as_tuple=True)
        assert len(ys) == 1
        dy, dx = 3 - int(ys[0]), 3 - int(xs[0])
        assert -2 <= dy <= 2 and -2 <= dx <= 2
        # the whole window is the original shifted by (dy, dx)
        window = img[max(0, -dy):8 - max(0, dy), max(0, -dx):8 - max(0, dx)]
        original = numbered_images(1)[0, 0].long()[max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)]
        assert torch.equal(window, original)
        shifts.add((dy, dx))
    assert len(shifts) > 10  # many different shifts in one batch: per-sample randomness


def test_reflect_padding_mirrors_the_border():
    data = DeviceImages(numbered_images(1), [0], train=True, crop_padding=2, flip=False)
    padded = data.padded[0, 0].long()
    assert torch.equal(padded[2, :2], torch.tensor([2, 1]))  # row 0 of the image, reflected left
    assert torch.equal(padded[:2, 2], torch.tensor([20, 10]))


def test_flip_really_mirrors_and_varies_per_sample():
    data = DeviceImages(numbered_images(64), torch.zeros(64), train=True, crop_padding=0, flip=True)
    torch.manual_seed(1)
    x = to_pixels(data.augment(torch.arange(64)))[:, 0]
    original = numbered_images(1)[0, 0].long()
    flipped = [bool(torch.equal(img, original.flip(1))) for img in x]
    kept = [bool(torch.equal(img, original)) for img in x]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_cutout_zeroes_one_square():
    data = DeviceImages(torch.full((16, 3, 16, 16), 255, dtype=torch.uint8), torch.zeros(16), train=True,
                        crop_padding=0, flip=False, cutout=4)
    x = data.augment(torch.arange(16))
    holes = (x[:, 0] == 0).sum(dim=(1, 2))
    assert (holes == 16).all()  # exactly a 4x4 square per image, always inside it


def test_same_seed_same_batches_and_test_data_is_never_augmented():
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    data = DeviceImages(images, torch.zeros(32), train=True, cutout=4)
    torch.manual_seed(5)
    a = next(data.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))[0]
    torch.manual_seed(5)
    b = next(data.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))[0]
    assert torch.equal(a, b)
    test = DeviceImages(images, torch.zeros(32), train=False)
    x = next(test.batches(32))[0]
    assert torch.equal(to_pixels(x), images.long())


def test_nhwc_input_and_bad_input():
    nhwc = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    assert DeviceImages(nhwc, [0] * 4, train=False).images.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="uint8"):
        DeviceImages(nhwc.float(), [0] * 4, train=False)
    with pytest.raises(ValueError, match="padding_mode"):
        DeviceImages(nhwc, [0] * 4, train=True, padding_mode="wrap")


@pytest.mark.slow
def test_train_learns_from_device_images(tmp_path):
    train_ds, test_ds = digits_datasets(size=8)
    to_uint8 = lambda ds: ((ds.tensors[0] + 0.5) * 255).round().to(torch.uint8)
    train_data = DeviceImages(to_uint8(train_ds), train_ds.tensors[1], train=True, crop_padding=1, flip=False)
    test_data = DeviceImages(to_uint8(test_ds), test_ds.tensors[1], train=False)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
    tracker = train(tmp_path / "run", model, train_data, test_data, nn.CrossEntropyLoss(label_smoothing=0.1), "Adam",
                    dict(lr=3e-3), "OneCycleLR", dict(max_lr=3e-3), n_epochs=4, batch_size=64, device="cpu", seed=0)
    assert tracker.test_accs[-1] > 0.8


def test_cifar10_offline_says_what_to_do(tmp_path):
    with pytest.raises(RuntimeError, match="CIFAR-10 is not in .* could not be downloaded.*cifar-10-python.tar.gz"):
        cifar10(str(tmp_path), download=False)
