"""The child's results channel: framing (both sides) and the grader's reading of it.

Records travel on a pipe whose read end only the grader holds. Each record is
a 4-byte big-endian length then that many bytes of JSON, written by code the
child bound before any student code ran (`encode_record`, a small encoder of
its own: replacing `json`'s encoder changes nothing). The grader parses bytes,
caps every record and the whole stream, and catches every error: a malformed,
oversized, duplicate, out-of-order or unexpected record breaks the channel for
that child (`ChannelBroken`), never the grader.

Student code runs in the same process, so it can write records too. Every
record must carry the run's secret (a random token per child, in the job the
runner takes it from before student code runs): a record without it breaks the
channel, so replaying the protocol from a graded cell (which can be planned from
the public rubric) fails unless the cell reaches into the runner's memory for the
token, which the static scan flags. Beyond that nothing on this channel is proof
of anything: the protocol keeps the grader in charge (it knows from its own job
which record may come next, so a forged record can neither move a deadline nor
stall it), and the checks judge the measured values against expectations
computed in the grader.
"""
from __future__ import annotations

import hmac
import json
import math

MAX_RECORD = 128 * 2**20     # bytes of one record (a probe's tensors, base64)
MAX_STREAM = 512 * 2**20     # bytes of one child's whole channel
MAX_TEXT = 20_000            # characters of an error message kept


class ChannelBroken(Exception):
    """The child sent something the protocol does not allow; the message says what."""


# --- child side: bound before student code runs -----------------------------------------

_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\"})


def make_encoder():
    """A JSON encoder for plain data whose every helper is bound now (default arguments),
    so that student code replacing builtins, `json` or `str` methods later cannot reach it."""
    def dump(value, out, _dict=dict, _list=list, _tuple=tuple, _str=str, _int=int, _float=float, _bool=bool,
             _type=type, _isnan=math.isnan, _isinf=math.isinf, _escapes=dict(_ESCAPES),
             _translate=str.translate, _frepr=float.__repr__, _irepr=int.__repr__, _items=dict.items,
             _append=list.append, _enumerate=enumerate):
        kind = _type(value)
        if value is None:
            _append(out, "null")
        elif kind is _bool:
            _append(out, "true" if value else "false")
        elif kind is _int:
            _append(out, _irepr(value))
        elif kind is _float:
            _append(out, "NaN" if _isnan(value) else ("Infinity" if value > 0 else "-Infinity") if _isinf(value)
                    else _frepr(value))
        elif kind is _str:
            _append(out, '"' + _translate(value, _escapes) + '"')
        elif kind is _dict:
            _append(out, "{")
            for i, (k, v) in _enumerate(_items(value)):
                if _type(k) is not _str:
                    raise TypeError("record keys must be strings")
                _append(out, ("," if i else "") + '"' + _translate(k, _escapes) + '":')
                dump(v, out)
            _append(out, "}")
        elif kind is _list or kind is _tuple:
            _append(out, "[")
            for i, v in _enumerate(value):
                if i:
                    _append(out, ",")
                dump(v, out)
            _append(out, "]")
        else:
            raise TypeError(f"cannot send a {kind.__name__}")

    def encode_record(record: dict, _join="".join, _encode=str.encode, _len=len) -> bytes:
        out: list = []
        dump(record, out)
        payload = _encode(_join(out), "utf-8", "backslashreplace")
        return _len(payload).to_bytes(4, "big") + payload

    return encode_record


# --- grader side ----------------------------------------------------------------------------

class FrameReader:
    """Bytes in, records out; raises ChannelBroken on anything malformed or too large."""

    def __init__(self, max_stream: int = MAX_STREAM):
        self.buffer = bytearray()
        self.total = 0
        self.max_stream = max_stream

    def feed(self, data: bytes) -> list[dict]:
        self.total += len(data)
        if self.total > self.max_stream:
            raise ChannelBroken(f"more than {self.max_stream / 2**20:g} MiB were written to the results channel")
        self.buffer += data
        records = []
        while len(self.buffer) >= 4:
            size = int.from_bytes(self.buffer[:4], "big")
            if size > MAX_RECORD:
                raise ChannelBroken(f"a record of {size} bytes (at most {MAX_RECORD} allowed)")
            if len(self.buffer) < 4 + size:
                break
            payload = bytes(self.buffer[4:4 + size])
            del self.buffer[:4 + size]
            try:
                record = json.loads(payload.decode("utf-8"))
            except (ValueError, RecursionError, MemoryError) as err:
                raise ChannelBroken(f"a record that is not valid JSON ({type(err).__name__})") from None
            if not isinstance(record, dict) or not isinstance(record.get("event"), str):
                raise ChannelBroken("a record that is not an event")
            records.append(record)
        return records

    def leftover(self) -> int:
        return len(self.buffer)


def _text(record: dict, key: str) -> str:
    value = record.get(key, "")
    if not isinstance(value, str):
        raise ChannelBroken(f"a {record['event']!r} record whose {key!r} is not text")
    return value[:MAX_TEXT]


class Protocol:
    """Where one child stands, by the grader's own count: the setup record, then each
    cell's start and outcome in order, then each probe's start and outcome in order,
    then "done". Everything else breaks the channel."""

    def __init__(self, cells: list[str], probes: list[str], secret: str | None = None):
        self.secret = secret  # every record must carry it (None: records carry none, as in the self-check)
        self.steps = [("ready", None)]
        for cid in cells:
            self.steps += [("cell_start", cid), ("cell", cid)]
        for key in probes:
            self.steps += [("start", key), ("outcome", key)]
        self.steps.append(("done", None))
        self.position = 0

    @property
    def expected(self) -> tuple[str, str | None]:
        return self.steps[min(self.position, len(self.steps) - 1)]

    @property
    def phase(self) -> str:
        kind, _ = self.expected
        return "cells" if kind in ("ready", "cell_start", "cell") else "probes" if kind != "done" else "done"

    @property
    def finished(self) -> bool:
        return self.position >= len(self.steps)

    def accept(self, record: dict) -> dict:
        """Check `record` is the next step; returns it normalised: {"event", "id"|"key", ...}."""
        if self.finished:
            raise ChannelBroken(f"a {record['event']!r} record after the end of the run")
        kind, name = self.expected
        event = record["event"]
        if self.secret is not None and not (isinstance(record.get("secret"), str)
                                            and hmac.compare_digest(record["secret"], self.secret)):
            raise ChannelBroken(f"a {event!r} record without this run's secret: written by code other than the "
                                "grader's runner (a graded cell writing the results channel itself)")
        wanted = ("result", "error") if kind == "outcome" else (kind,)
        field = "id" if kind in ("cell_start", "cell") else "key"
        if event not in wanted or (name is not None and record.get(field) != name):
            got = f"{event!r}" + (f" for {record.get(field)!r}" if field in record else "")
            raise ChannelBroken(f"a {got} record where the grader expected {'/'.join(wanted)!r}"
                                + (f" for {name!r}" if name is not None else ""))
        clean = {"event": event}
        if kind == "ready":
            notes = record.get("isolation", [])
            if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
                raise ChannelBroken("a setup record with malformed notes")
            clean["isolation"] = [n[:MAX_TEXT] for n in notes]
        elif kind == "cell_start" or kind == "start":
            clean[field] = name
        elif kind == "cell":
            if not isinstance(record.get("ok"), bool):
                raise ChannelBroken("a cell record without a true/false outcome")
            clean.update(id=name, ok=record["ok"], error=_text(record, "error"))
        elif event == "result":
            if "data" not in record:
                raise ChannelBroken("a result record without data")
            clean.update(key=name, data=record["data"])
        elif event == "error":
            clean.update(key=name, error=_text(record, "error"))
        self.position += 1
        return clean
