"""The results channel (framing, caps, the grader's protocol) and the static scan of
graded cells: fast unit tests, no sandbox."""
import json
import math

import pytest

from autograder import static
from autograder.channel import MAX_RECORD, ChannelBroken, FrameReader, Protocol, make_encoder
from checklib.cells import disallowed_imports, imports_in


def frames(*records):
    encode = make_encoder()
    return b"".join(encode(r) for r in records)


def test_encoder_round_trips_plain_data_and_ignores_a_replaced_json():
    import json as json_module

    record = {"event": "result", "key": '["p", {}]', "data": {"a": [1, 2.5, None, True, "é\n\"\\\x00"],
                                                             "inf": math.inf, "big": 10**30}}
    encode = make_encoder()
    saved = json_module._default_encoder
    json_module._default_encoder = None  # a student replacing json's encoder changes nothing
    try:
        payload = encode(record)
    finally:
        json_module._default_encoder = saved
    assert int.from_bytes(payload[:4], "big") == len(payload) - 4
    assert json.loads(payload[4:]) == record


def test_reader_splits_records_across_reads():
    data = frames({"event": "ready", "isolation": []}, {"event": "cell_start", "id": "setup"})
    reader = FrameReader()
    got = [r for i in range(len(data)) for r in reader.feed(data[i:i + 1])]
    assert [r["event"] for r in got] == ["ready", "cell_start"]


@pytest.mark.parametrize("garbage", [b"\xff\xfe\xfd\xfc not a frame", (10).to_bytes(4, "big") + b"\xff" * 10,
                                     (100_000).to_bytes(4, "big") + b"[" * 100_000,
                                     (5).to_bytes(4, "big") + b"[1,2]", (MAX_RECORD + 1).to_bytes(4, "big")])
def test_malformed_bytes_break_the_channel_not_the_grader(garbage):
    with pytest.raises(ChannelBroken):
        FrameReader().feed(garbage)


def test_a_flood_breaks_the_channel():
    reader = FrameReader(max_stream=2**20)
    record = frames({"event": "ready", "isolation": ["x" * 1000]})
    with pytest.raises(ChannelBroken, match="MiB"):
        for _ in range(2000):  # valid records, far too many bytes
            reader.feed(record)


def walk(protocol, records):
    return [protocol.accept(r) for r in records]


def test_protocol_accepts_the_expected_sequence_only():
    p = Protocol(["setup", "resnet"], ["k1"])
    walk(p, [{"event": "ready", "isolation": []}, {"event": "cell_start", "id": "setup"},
             {"event": "cell", "id": "setup", "ok": True}, {"event": "cell_start", "id": "resnet"},
             {"event": "cell", "id": "resnet", "ok": False, "error": "boom"}])
    assert p.phase == "probes"
    walk(p, [{"event": "start", "key": "k1"}, {"event": "result", "key": "k1", "data": [1]}, {"event": "done"}])
    assert p.finished
    with pytest.raises(ChannelBroken, match="after the end"):
        p.accept({"event": "done"})


@pytest.mark.parametrize("forged", [
    {"event": "start", "key": "k1"},                       # a forged probe start during the cells (moves no deadline)
    {"event": "result", "key": "k1", "data": 1},           # a result before its probe
    {"event": "cell", "id": "other", "ok": True},          # a cell the grader did not send
    {"event": "cell", "id": "setup", "ok": "yes"},         # malformed outcome
    {"event": "cell", "id": "setup", "ok": True, "error": 5},
])
def test_protocol_refuses_forged_or_out_of_order_records(forged):
    p = Protocol(["setup"], ["k1"])
    walk(p, [{"event": "ready", "isolation": []}, {"event": "cell_start", "id": "setup"}])
    with pytest.raises(ChannelBroken):
        p.accept(forged)


def test_a_record_without_the_runs_secret_breaks_the_channel():
    """A graded cell can plan the whole protocol from the public rubric and write it on the
    pipe; what it cannot know is the run's secret, which every record of the runner carries."""
    p = Protocol(["setup"], ["k1"], secret="c0ffee")
    walk(p, [{"event": "ready", "isolation": [], "secret": "c0ffee"}, {"event": "cell_start", "id": "setup", "secret": "c0ffee"}])
    for forged in ({"event": "cell", "id": "setup", "ok": True},
                   {"event": "cell", "id": "setup", "ok": True, "secret": "guess"},
                   {"event": "cell", "id": "setup", "ok": True, "secret": ["c0ffee"]}):
        with pytest.raises(ChannelBroken, match="secret"):
            p.accept(forged)
    assert p.accept({"event": "cell", "id": "setup", "ok": True, "secret": "c0ffee"}) == \
        {"event": "cell", "id": "setup", "ok": True, "error": ""}


def test_a_duplicate_outcome_breaks_the_channel():
    p = Protocol([], ["k1", "k2"])
    walk(p, [{"event": "ready"}, {"event": "start", "key": "k1"}, {"event": "result", "key": "k1", "data": 1}])
    with pytest.raises(ChannelBroken):
        p.accept({"event": "result", "key": "k1", "data": 2})


# --- imports by any means (the same rule as the students' self-check) ---------------------

@pytest.mark.parametrize("code, found", [
    ("import numpy as np", "numpy"),
    ("import importlib\nnp = importlib.import_module('numpy')", "numpy"),
    ("np = __import__('numpy')", "numpy"),
    ("m = importlib.import_module(name)", "importlib.import_module(...)"),
    ("exec('import numpy')", "exec(...)"),
    ("x = eval('1 + 1')", "eval(...)"),
    ("np = sys.modules['numpy']", "sys.modules"),
    ("np = os.sys.modules['numpy']", "sys.modules"),
])
def test_imports_by_any_means_are_found(code, found):
    assert found in imports_in(code)
    assert found in disallowed_imports(code, ["torch", "os", "math"])


def test_ordinary_code_is_not_an_import():
    assert disallowed_imports("model.eval()\nx = torch.stack([a, b])\nF.relu(x)\nimport math", ["torch", "math"]) == []


# --- the tamper scan ---------------------------------------------------------------------

PROTECTED = {"torch", "nn", "F", "sys", "os", "pd"}


@pytest.mark.parametrize("code", [
    "f = sys._getframe()",
    "g = f.f_back.f_globals",
    "import inspect",
    "import gc\nobjs = gc.get_objects()",
    "fn = getattr(sys, '_get' + 'frame')",
    "x = open('/proc/self/fd/3', 'wb')",
    "os.write(3, b'x')",
    "import ctypes",
    "import json\njson._default_encoder = None",
    "import json as j\nj._default_encoder = None",
    "torch.allclose = lambda *a, **k: True",
    "nn.Module.named_modules = lambda self: iter(())",
    "setattr(torch, 'equal', lambda *a: True)",
    "__builtins__['len'] = None",
    "exec(code)",
    "importlib.import_module('numpy')",
    "x = (lambda: 0).__globals__",
    "np = sys.modules['numpy']",
    "_o = os\n_o.write(3, b'x')",                    # an alias of os, out of the `os.write` rule's sight
    "_j = torch.hub.json",                            # a module reached through another one (no import)
    "_s = np.sys",
    "_f = getattr(e.__traceback__, 'tb_' + 'frame')",  # attribute names put together at run time
    "g = getattr(f, f'f_{\"back\"}')",
    "w = open(1 + 2, 'wb')",                          # a descriptor number by arithmetic
    "w = open(int('3'), 'wb', closefd=False)",
])
def test_tampering_is_flagged(code):
    assert static.scan("resnet", code, PROTECTED), code


@pytest.mark.parametrize("code", [
    "self.act = getattr(F, activation)",
    "layer = getattr(self, f'layer{i}')",
    "w = open(os.path.join('results', name + '.json'), 'w')",
    "for m in self.modules():\n    pass",
    "x = torch.stack([a, b])\nmodel.eval()",
    "os.makedirs('results', exist_ok=True)\nwith open(os.path.join('results', 'a.json'), 'w') as f:\n    pass",
    "Block.expansion = 2\nself.weight = nn.Parameter(torch.ones(1))",
])
def test_ordinary_code_is_not_flagged(code):
    assert static.scan("resnet", code, PROTECTED) == []


def test_source_notebooks_and_their_mutants_are_not_flagged():
    from checklib.assignment import available, load_assignment
    from checklib.cells import extract_cells, read_notebook
    from demo import samples_of

    homeworks = [(name, samples_of(name)) for name in available() if samples_of(name)]
    assert len(homeworks) >= 3
    for name, samples in homeworks:
        assignment = load_assignment(name)
        protected = static.module_names(assignment.setup_source)
        cells, _ = extract_cells(read_notebook(assignment.source_notebook), list(assignment.graded_cells))
        for gid, source in cells.items():
            assert static.scan(gid, source, protected) == [], (name, gid)
            for mutant, sample in samples.MUTANTS.items():
                edited = source
                for old, new in getattr(sample, "edits", {}).get(gid, []):
                    edited = edited.replace(old, new)
                assert static.scan(gid, edited, protected) == [], (name, mutant)
