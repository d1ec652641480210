"""`make demo`: the kit's main job on bundled offline data.

Trains a small convnet on scikit-learn's digits with hw_utils.train, exactly as
a student trains on CIFAR-10, and writes demo_out/ with the files a student gets;
then grades sample HW4, HW2, HW1, HW3 and HW5 submissions in the sandbox, as a grader would
(HW5's accuracy verified on the grader's own test images, with the class leaderboard).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from torch import nn

from hw_utils import save_yaml, train
from demo.digits import digits_datasets

OUT = Path("demo_out")


class SmallConvNet(nn.Module):
    """Two conv blocks and a linear head: enough to learn 16x16 digits in seconds."""

    def __init__(self, channels: int = 16, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def demo_training() -> None:
    print("== 1. Training a small convnet on the bundled digits with hw_utils.train ==")
    save_path = OUT / "train"
    shutil.rmtree(save_path, ignore_errors=True)
    train_data, test_data = digits_datasets()
    model_config = dict(channels=16)
    train_config = dict(optim_name="Adam", optim_config=dict(lr=3e-3), lr_scheduler_name="StepLR",
                        lr_scheduler_config=dict(step_size=3, gamma=0.5), n_epochs=4, batch_size=32)
    save_yaml(model_config, save_path / "model_config.yaml")
    save_yaml(train_config, save_path / "train_config.yaml")
    torch.manual_seed(0)
    tracker = train(save_path=save_path, model=SmallConvNet(**model_config), train_data=train_data,
                    test_data=test_data, loss_fn=nn.CrossEntropyLoss(), device="cpu", seed=0, **train_config)
    print(f"final test accuracy {tracker.test_accs[-1]:.3f} (chance is 0.100)")
    for path in sorted(save_path.rglob("*")):
        if path.is_file():
            print(f"  wrote {path} ({path.stat().st_size:,} bytes)")


def _unsafe() -> bool:
    """The demo grades its own samples: where the sandbox cannot isolate (no root or
    namespaces), it says so and grades without isolation, as `--unsafe-no-isolation` does."""
    from autograder.container import missing_mechanisms

    missing = missing_mechanisms()
    if missing:
        print("Note: this machine cannot isolate student code (" + "; ".join(m.split(":")[0] for m in missing)
              + "); the demo grades its own samples without isolation, and the results say so.")
    return bool(missing)


def grade_samples(homework: str, samples, flawed: dict[str, str], leaderboard: bool = False) -> Path:
    """Build one homework's reference, blank release and flawed variants (student
    name -> mutant) into demo_out/, grade them as a class with grade-all and print
    the gradebook. Returns the folder of graded results."""
    from autograder.batch import grade_all, gradebook_table

    folder, graded = OUT / f"{homework}_samples", OUT / f"{homework}_graded"
    for path in (folder, graded):
        shutil.rmtree(path, ignore_errors=True)
    samples.build(folder / "reference")
    samples.build_blank(folder / "blank_release")
    for student, mutant in flawed.items():
        samples.build(folder / student, samples.MUTANTS[mutant])
    print(f"The class, as `python -m autograder grade-all {folder} --assignment {homework}` grades it:")
    rows = grade_all(folder, homework, graded, jobs=2, unsafe_no_isolation=_unsafe())
    print(gradebook_table(rows))
    if leaderboard:
        from autograder.batch import leaderboard_table
        from checklib.assignment import load_assignment

        print("\nThe leaderboard (results.json's `leaderboard`, as Gradescope shows it):")
        print(leaderboard_table(rows, load_assignment(homework)))
    print(f"gradebook: {graded / 'gradebook.csv'} (and .xlsx); feedback: {graded}/<student>/feedback.html")
    return graded


def demo_grading() -> None:
    print("\n== 2. Grading bundled HW4 sample submissions in the sandbox ==")
    from checklib.assignment import load_assignment
    from autograder.pipeline import grade
    from autograder.reporters import text_table
    from autograder.sandbox import Sandbox
    from demo import hw4_samples

    grade_samples("hw4", hw4_samples, {"flawed_softmax": "softmax_output", "flawed_shortcut": "no_shortcut_activation"})
    print("\nOne submission, as `python -m autograder grade` shows it:")
    with Sandbox(unsafe_no_isolation=_unsafe()) as sandbox:
        print(text_table(grade(OUT / "hw4_samples" / "flawed_shortcut", load_assignment("hw4"), sandbox)))


def demo_grading_hw2() -> None:
    print("\n== 3. The same engine grades HW2 (Convolutional Architectures) ==")
    from demo import hw2_samples

    graded = grade_samples("hw2", hw2_samples, {"flawed_linears_first": "linears_first",
                                                "flawed_early_stopping": "early_stopping_late"})
    feedback = graded / "flawed_linears_first" / "feedback.md"
    print(f"\nWhat the student with the linear layers created first reads ({feedback}):")
    lines = [line for line in feedback.read_text().splitlines() if "Expected output" in line]
    print("\n".join(lines[:1]) or feedback.read_text()[:800])


def demo_grading_hw1() -> None:
    print("\n== 4. The same engine grades HW1 (CNN basics on MNIST) ==")
    from demo import hw1_samples

    graded = grade_samples("hw1", hw1_samples, {"flawed_softmax": "shallow_softmax",
                                                "flawed_padding": "q1b_padding_kept",
                                                "flawed_no_skip": "skip_missing"})
    feedback = graded / "flawed_padding" / "feedback.md"
    print(f"\nWhat the student who kept the padding in (b) reads ({feedback}):")
    lines = [line for line in feedback.read_text().splitlines() if "first wrong one" in line]
    print("\n".join(lines[:1]) or feedback.read_text()[:800])


def demo_grading_hw3() -> None:
    print("\n== 5. The same engine grades HW3 (ResNet from the ground up on CIFAR-10) ==")
    from demo import hw3_samples

    graded = grade_samples("hw3", hw3_samples, {"flawed_hwc_reshape": "parse_hwc",
                                                "flawed_vertical_flip": "flip_vertical",
                                                "flawed_tf_momentum": "tensorflow_momentum"})
    feedback = graded / "flawed_tf_momentum" / "feedback.md"
    print(f"\nWhat the student who passed TensorFlow's momentum to PyTorch reads ({feedback}):")
    lines = [line for line in feedback.read_text().splitlines() if "momentum=1 - 0.997" in line]
    print("\n".join(lines[:1]) or feedback.read_text()[:800])


def demo_grading_hw5() -> None:
    print("\n== 6. HW5 (the CIFAR-10 challenge): the accuracy is verified, not reported ==")
    from demo import hw5_samples

    print("The reference is the source notebook at demo size, trained for seconds on synthetic CIFAR-10 by its own cells.")
    graded = grade_samples("hw5", hw5_samples, {"flawed_inflated_report": "inflated_report",
                                                "flawed_pickle_bomb": "pickle_bomb",
                                                "flawed_wrong_classes": "wrong_class_count",
                                                "flawed_too_slow": "too_slow"}, leaderboard=True)
    feedback = graded / "flawed_inflated_report" / "feedback.md"
    print(f"\nWhat the student whose report claims more than the model reaches reads ({feedback}):")
    lines = [line.strip() for line in feedback.read_text().splitlines() if line.strip().startswith(("Verified accuracy", "- accuracy.verified"))]
    print("\n".join(lines[:2]) or feedback.read_text()[:800])


def main() -> int:
    OUT.mkdir(exist_ok=True)
    demo_training()
    demo_grading()
    demo_grading_hw2()
    demo_grading_hw1()
    demo_grading_hw3()
    demo_grading_hw5()
    return 0


if __name__ == "__main__":
    sys.exit(main())
