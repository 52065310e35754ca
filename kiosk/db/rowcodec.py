"""Database rows to JSON and back, by the model's column types (dates as ISO text,
bytes as base64). Unknown keys are dropped, so a newer peer's extra columns do no harm."""
from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, DateTime, LargeBinary
from sqlalchemy.types import TypeDecorator


def _kind(col) -> str:
    t = col.type
    if isinstance(t, TypeDecorator):
        t = t.impl if not isinstance(t.impl, type) else t.impl()
    if isinstance(t, DateTime):
        return "datetime"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, LargeBinary):
        return "bytes"
    return "plain"


def _enc(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode()
    return v


def dump(obj: Any, exclude: tuple[str, ...] = ()) -> dict:
    """An ORM object's columns as JSON-ready values."""
    return {c.name: _enc(getattr(obj, c.name)) for c in obj.__table__.columns if c.name not in exclude}


def dump_row(model: Any, row: Any, exclude: tuple[str, ...] = ()) -> dict:
    """A Core row (mapping) of ``model``'s table as JSON-ready values."""
    m = row._mapping if hasattr(row, "_mapping") else row
    out = {}
    for name, k in _kinds(model):
        if name in exclude or name not in m:
            continue
        v = m[name]
        if v is not None and k != "plain":
            v = v.isoformat() if k in ("date", "datetime") else base64.b64encode(bytes(v)).decode()
        out[name] = v
    return out


_KINDS: dict = {}


def _kinds(model: Any) -> list[tuple[str, str]]:
    k = _KINDS.get(model)
    if k is None:
        k = _KINDS[model] = [(c.name, _kind(c)) for c in model.__table__.columns]
    return k


def load(model: Any, data: dict) -> dict:
    """JSON values back to Python values for ``model``'s columns (unknown keys dropped)."""
    out = {}
    for name, k in _kinds(model):
        if name not in data:
            continue
        v = data[name]
        if v is not None:
            if k == "datetime":
                v = datetime.fromisoformat(v)
            elif k == "date":
                v = date.fromisoformat(v)
            elif k == "bytes":
                v = base64.b64decode(v)
        out[name] = v
    return out
