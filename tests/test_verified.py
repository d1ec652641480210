"""Verified accuracy (checklib/verified.py): the test-set loader, the secret order, the
interval and subset arithmetic, the probe's verdicts on broken weights and models, the
judges, and the leaderboard the engine fills from them. Fast: tiny models, few images."""
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from checklib import verified
from checklib.checks import Check, passed
from checklib.probes import decode, encode


def tiny_images(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def write_batch(path, images, labels, **extra):
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    path.write_bytes(pickle.dumps({b"data": rows, b"labels": [int(v) for v in labels], **extra}, protocol=2))
    return path


# --- the grader's test set ---------------------------------------------------------------------

def test_reads_a_python_batch_a_folder_of_batches_and_the_course_npy_layout(tmp_path):
    images, labels = tiny_images()
    batch = write_batch(tmp_path / "test_batch", images, labels)
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    write_batch(tmp_path / "data" / "cifar-10-batches-py" / "test_batch", images, labels)
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "x_test.npy", images)
    np.save(tmp_path / "npy" / "y_test.npy", labels[:, None])      # labels shaped (N, 1), as the course shipped them
    for where in (batch, tmp_path / "data", tmp_path / "npy"):
        got_images, got_labels = verified.read_image_set(where)
        assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels), where


def test_a_batch_that_names_other_globals_is_refused_unrun(tmp_path):
    class Bomb:
        def __reduce__(self):
            return (os.system, ("echo hacked > /dev/null",))
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Bomb(), b"labels": []}))
    with pytest.raises(verified.TestSetError, match="posix.system|os.system|may hold only"):
        verified.read_image_set(tmp_path / "test_batch")


def test_a_missing_or_malformed_test_set_is_named(tmp_path):
    with pytest.raises(verified.TestSetError, match="missing"):
        verified.read_image_set(tmp_path / "nothing")
    images, labels = tiny_images()
    with pytest.raises(verified.TestSetError, match="40 images but 39 labels"):
        verified.read_image_set(write_batch(tmp_path / "test_batch", images, labels[:-1]))


def test_secret_order_is_a_permutation_fixed_per_submission_and_test_set(tmp_path):
    images, labels = tiny_images(200)
    test_set = write_batch(tmp_path / "test_batch", images, labels)
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "other.pt").write_bytes(b"other weights")
    first = verified.secret_order(test_set, {"model.pt": tmp_path / "model.pt"}, 200)
    assert sorted(first) == list(range(200))
    assert np.array_equal(first, verified.secret_order(test_set, {"model.pt": tmp_path / "model.pt"}, 200))
    assert not np.array_equal(first, verified.secret_order(test_set, {"model.pt": tmp_path / "other.pt"}, 200))
    write_batch(test_set, images, (labels + 1) % 10)   # same images, other labels: another order
    assert not np.array_equal(first, verified.secret_order(test_set, {"model.pt": tmp_path / "model.pt"}, 200))


# --- statistics ---------------------------------------------------------------------------------

def test_wilson_interval_matches_the_formula_and_stays_in_0_1():
    low, high = verified.wilson(94, 100)
    assert (round(low, 4), round(high, 4)) == (0.8752, 0.9722)   # the Wilson 95% interval of 94/100
    assert verified.wilson(0, 50)[0] == 0.0 and verified.wilson(50, 50)[1] == pytest.approx(1.0)
    assert verified.wilson(9000, 10000)[1] - verified.wilson(9000, 10000)[0] < 0.012


def test_images_within_budget_is_all_or_whole_batches():
    assert verified.images_within(0.001, 60, 10_000, 100) == 10_000
    assert verified.images_within(0.05, 60, 10_000, 100) == 1_200
    assert verified.images_within(0.0123, 10, 10_000, 100) == 800      # 813 fit: whole batches only
    assert verified.images_within(10.0, 60, 10_000, 100) == 0


def test_thresholds_use_the_accuracy_on_the_whole_set_and_the_upper_end_on_a_subset():
    assert verified.threshold_value(930, 1000, 1000) == pytest.approx(0.93)
    assert verified.threshold_value(930, 1000, 10_000) == pytest.approx(verified.wilson(930, 1000)[1])
    assert verified.threshold_value(930, 1000, 10_000) > 0.94  # 93% on 1,000 images does not rule out 94%


# --- the probe, in this process ---------------------------------------------------------------

class Tiny(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images, _ = tiny_images(60)
    verified.write_images(images, tmp_path / "test_images.npy")
    torch.manual_seed(0)
    torch.save(Tiny().state_dict(), tmp_path / "model.pt")
    return tmp_path


def probe(ns, **kw):
    args = dict(images="test_images.npy", weights="model.pt", seconds=30, batch_size=16, min_images=10)
    return decode(encode(verified.predictions(ns, **{**args, **kw})))


def test_probe_predicts_every_image_within_the_budget(folder):
    data = probe({"Net": Tiny})
    assert data["model"]["value"] == sum(p.numel() for p in Tiny().parameters())
    assert data["cost"]["value"]["n"] == 60 and len(data["predictions"]["value"]["classes"]) == 60
    assert verified.judge_loads(data).passed and verified.judge_outputs(data).passed


def test_probe_names_missing_and_unexpected_keys(folder):
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3), "fc.weight": torch.zeros(10, 4)}, folder / "model.pt")
    verdict = verified.judge_loads(probe({"Net": Tiny}))
    assert not verdict.passed
    assert "missing from the file: conv.bias, head.weight, head.bias" in verdict.message
    assert "in the file but not in Net(): fc.weight" in verdict.message


def test_probe_refuses_a_pickle_bomb_without_running_it(folder):
    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {folder / 'ran'}",))
    with open(folder / "model.pt", "wb") as f:
        pickle.dump(Bomb(), f)
    verdict = verified.judge_loads(probe({"Net": Tiny}))
    assert not verdict.passed and "not a plain state dict" in verdict.message and "weights_only" in verdict.message
    assert not (folder / "ran").exists()


def test_probe_refuses_a_whole_model_and_a_model_over_the_budget(folder):
    torch.save([torch.zeros(1)], folder / "model.pt")
    assert "not a state dict" in verified.judge_loads(probe({"Net": Tiny})).message
    torch.save(Tiny().state_dict(), folder / "model.pt")
    assert "the budget is 10" in verified.judge_loads(probe({"Net": Tiny}, max_parameters=10)).message


def test_probe_names_a_wrong_class_count_and_nan_outputs(folder):
    torch.save(Tiny(7).state_dict(), folder / "model.pt")
    verdict = verified.judge_outputs(probe({"Net": lambda: Tiny(7)}))
    assert not verdict.passed and "expected (1, 10)" in verdict.message

    class NaN(Tiny):
        def forward(self, x):
            return super().forward(x) * float("nan")
    torch.save(Tiny().state_dict(), folder / "model.pt")
    assert "NaN" in verified.judge_outputs(probe({"Net": NaN})).message


def test_probe_calls_a_model_too_slow_for_the_limits_too_slow(folder):
    class Slow(Tiny):
        def forward(self, x):
            import time
            time.sleep(0.05 * len(x))
            return super().forward(x)
    verdict = verified.judge_outputs(probe({"Net": Slow}, seconds=0.5, min_images=50))
    assert not verdict.passed and "too slow for the limits" in verdict.message


# --- the judge, in the grader -----------------------------------------------------------------

def measured(classes, total, reported=None):
    data = {"total": total, "test_set": True, "model": {"value": 100}, "weights": {"value": True},
            "cost": {"value": {"seconds_per_image": 0.001, "n": len(classes)}},
            "predictions": {"value": {"classes": torch.tensor(classes, dtype=torch.uint8), "seconds": 0.1}}}
    if reported is not None:
        data["reported"] = {"value": reported}
    return data


def test_judge_computes_accuracy_on_the_whole_set_and_flags_an_inflated_report():
    labels = np.array([1, 2, 3, 4] * 25)
    classes = labels.copy()
    classes[:10] = 0                                            # 90 of 100 right
    verdict = verified.judge_accuracy(0.02)(measured(classes, 100, reported=0.97), labels)
    assert verdict.passed and verdict.value == pytest.approx(0.9)
    assert "all 100" in verdict.message and verdict.flag and "97.00%" in verdict.flag
    assert dict(verdict.figures)["accuracy"] == pytest.approx(0.9)
    honest = verified.judge_accuracy(0.02)(measured(classes, 100, reported=0.905), labels)
    assert not honest.flag


def test_judge_on_a_subset_reports_the_interval_and_scores_its_upper_end():
    labels = np.arange(1000) % 10
    classes = labels[:400].copy()
    classes[:40] = (classes[:40] + 1) % 10                      # 360 of the first 400 right
    # 400 images in 61 s by the grader's clock: about 393 fit a 60 s budget, so all 400 count
    verdict = verified.judge_accuracy(0.02)(measured(classes, 1000), labels, seconds=61.0, args={"seconds": 60.0})
    low, high = verified.wilson(360, 400)
    assert verdict.value == pytest.approx(high) and "Wilson 95% interval" in verdict.message
    assert "400 of the 1,000" in verdict.message and "count as wrong" not in verdict.message


def test_images_required_follows_the_graders_clock():
    assert verified.images_required(1000, 1000, 5.0, 60.0) == 1000     # all returned
    assert verified.images_required(400, 1000, 61.0, 60.0) == 400       # a slow model, honest: what it returned
    assert verified.images_required(1, 1000, 0.5, 60.0) == 120          # stopped after one image: held to its speed
    assert verified.images_required(100, 1000, 20.0, 60.0) == 300
    assert verified.images_required(100, 1000, None, 60.0) == 1000      # no timing by the grader: every image counts


def test_stopping_early_cannot_narrow_the_sample():
    """A child that returns one right prediction (the channel's whole record forged, or a loop cut
    short) is held to the images its speed fits by the grader's clock; the rest count as wrong."""
    labels = np.arange(500) % 10
    judge = verified.judge_accuracy(0.02, budget=240.0)
    verdict = judge(measured(labels[:1], 500), labels, seconds=0.01)
    assert verdict.value == pytest.approx(1 / 500) and "499 it did not return count as wrong" in verdict.message
    assert dict(verdict.figures)["accuracy"] == pytest.approx(1 / 500)
    assert judge(measured(labels[:0], 500), labels, seconds=0.01).value == 0.0


def test_an_implausibly_high_accuracy_is_flagged_for_a_ta():
    labels = np.arange(100) % 10
    verdict = verified.judge_accuracy(0.02, suspicious_above=0.99)(measured(labels, 100, reported=1.0), labels)
    assert verdict.passed and verdict.value == 1.0 and "leaked test labels" in verdict.flag
    assert not verified.judge_accuracy(0.02, suspicious_above=0.99)(measured(labels, 100), labels * 0).flag  # 10%


def test_judge_never_sees_labels_it_was_not_given():
    verdict = verified.judge_accuracy()(measured([1, 2], 2), None)
    assert not verdict.passed and "labels" in verdict.message


# --- the engine: plan, judging and leaderboard --------------------------------------------------

def test_test_set_checks_get_the_images_name_and_the_labels_where_the_grader_has_them():
    from types import SimpleNamespace

    from checklib import job

    seen = []
    check = Check("acc", "predictions", lambda data, labels, seconds=None, args=None: seen.append(labels) or passed("ok"),
                  {"weights": "model.pt"}, test_set=True)
    assignment = SimpleNamespace(setup_cell="setup", setup_source="", graded_cells={}, checks=(check,), required_files=())
    assert job.plan(assignment, {}, {})[1][0]["args"] == {"weights": "model.pt", "images": None}  # the self-check
    probes = job.plan(assignment, {}, {}, test_images="test_images.npy")[1]
    assert probes[0]["args"] == {"weights": "model.pt", "images": "test_images.npy"}
    run = SimpleNamespace(cells={}, probes={check.probe_key: {"ok": True, "data": {}}})
    job.judge_checks(assignment, {}, {}, run)
    assert job.judge_checks(assignment, {}, {}, run, labels=[3, 1])["acc"].passed and seen == [None, [3, 1]]


def test_without_a_test_set_the_probe_checks_the_model_on_random_images(folder):
    data = probe({"Net": Tiny}, images=None)
    assert verified.judge_loads(data).passed and verified.judge_outputs(data).passed
    assert "autograder only" in verified.judge_accuracy()(data, None).message


def test_leaderboard_columns_come_from_the_figures_of_passed_checks():
    from types import SimpleNamespace

    from autograder.batch import leaderboard_table
    from autograder.pipeline import leaderboard

    columns = ({"name": "Accuracy", "figure": "accuracy", "order": "desc"},
               {"name": "Parameters", "figure": "parameters", "order": "asc"})
    assignment = SimpleNamespace(leaderboard=columns)
    verdicts = {"a": passed("", figures=(("accuracy", 0.91),)), "b": passed("", figures=(("parameters", 1e6),))}
    assert leaderboard(assignment, verdicts) == [{"name": "Accuracy", "value": 0.91, "order": "desc"},
                                                 {"name": "Parameters", "value": 1e6, "order": "asc"}]
    rows = [{"student": "low", "Accuracy": 0.5, "Parameters": 10}, {"student": "none"},
            {"student": "high", "Accuracy": 0.9, "Parameters": 20}]
    ranked = [line.split()[1] for line in leaderboard_table(rows, assignment).splitlines()[1:]]
    assert ranked == ["high", "low", "none"]


@pytest.mark.slow  # generating the images takes a second (scikit-learn's digits)
def test_reads_the_synthetic_cifar_files_in_both_layouts(tmp_path):
    from demo.cifar_like import write_cifar_npy, write_cifar_python

    batches = write_cifar_python(tmp_path, n_train=10, n_test=30)       # pickled as Python 2 did
    write_cifar_npy(tmp_path / "npy", n_train=10, n_test=30)
    images, labels = verified.read_image_set(batches / "test_batch")
    same_images, same_labels = verified.read_image_set(tmp_path / "npy")
    assert images.shape == (30, 32, 32, 3) and np.array_equal(images, same_images) and np.array_equal(labels, same_labels)


def test_a_batch_the_memory_limit_cannot_hold_is_split_until_it_fits():
    calls = []

    class Hungry(Tiny):
        def forward(self, x):
            calls.append(len(x))
            if len(x) > 3:
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 26214400 bytes")
            return super().forward(x)
    x = torch.rand(10, 3, 32, 32)
    model = Hungry().eval()
    with torch.inference_mode():
        assert torch.equal(verified._classify(model, x, 10), Tiny.forward(model, x).argmax(1))
    assert max(c for c in calls if c <= 3) <= 3 and calls[0] == 10


# --- what the red team found -----------------------------------------------------------------

def test_weights_kept_in_buffers_count_toward_the_size(folder):
    """Registering the weights as buffers instead of parameters neither shrinks the leaderboard's
    size nor escapes the parameter budget."""
    class Buffered(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.zeros(1000))
            self.head = nn.Linear(4, 10)

        def forward(self, x):
            return self.head(x.mean(dim=(2, 3)).repeat(1, 2)[:, :4])

    torch.save(Buffered().state_dict(), folder / "model.pt")
    data = decode(encode(verified.model_weights({"Net": Buffered}, "model.pt")))
    assert data["model"]["value"] == 1000 + 50 and verified.judge_loads(data).passed
    over = decode(encode(verified.model_weights({"Net": Buffered}, "model.pt", max_parameters=500)))
    assert "parameters and buffers; the budget is 500" in verified.judge_loads(over).message


def test_predictions_of_the_wrong_form_are_not_scored():
    labels = np.arange(100) % 10
    judge = verified.judge_accuracy(0.02)
    for classes in (np.array([list(range(10))]), labels + 10, labels.astype(np.float32) + 0.5):
        data = measured(labels, 100)
        data["predictions"]["value"]["classes"] = torch.as_tensor(classes)
        verdict = judge(data, labels, seconds=1.0, args={"seconds": 60.0, "classes": 10})
        assert not verdict.passed and "one class index" in verdict.message, classes


def test_a_reported_accuracy_that_is_not_a_number_is_flagged(folder):
    (folder / "results.yaml").write_text("test_accuracy: .nan\n")
    data = probe({"Net": Tiny}, reported=["results.yaml", "test_accuracy"])
    assert "no accuracy between 0 and 1" in data["reported"]["error"]
    labels = np.zeros(60, dtype=np.int64)
    verdict = verified.judge_accuracy(0.02)(data, labels, seconds=1.0, args={"seconds": 30})
    assert "no reported accuracy to compare" in verdict.flag
