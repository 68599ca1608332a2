"""What the database is never given: a text (or a string anywhere in a JSON value) holding a NUL or a lone
surrogate, or a text longer than its column. PostgreSQL refuses those with a driver error (a NUL, an overlong
VARCHAR) where SQLite keeps them, so a path nobody validated would be a 500 on one database and silent acceptance
on the other; with this guard both refuse it before anything is sent, with InvalidTextError naming the column.

Entry points check text by the stricter rule of inkloop/untrusted.py first; this is the backstop for every other
path (Label Studio's answers, imported files, a query with an unchecked id). db/session.py installs it on every
engine (`check_statement`: each statement's parameters, queries included) and session factory (`check_flush`:
each row written, by column, before the flush; `check_orm_statement`: ORM-enabled bulk inserts and updates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import JSON, Column, Enum, String, inspect
from sqlalchemy.orm import ColumnProperty, Mapper, ORMExecuteState, Session, UOWTransaction

from inkloop.errors import InvalidTextError
from inkloop.untrusted import storage_problem


def _json_problem(value: Any, path: str) -> tuple[str, str] | None:
    """(where, what) for the first string in a JSON value, key or value, that no database can store."""
    if isinstance(value, str):
        problem = storage_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (problem := storage_problem(key)) is not None:
                return f"{path} key {key!r}", problem
            found = _json_problem(item, f"{path}[{key!r}]")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _json_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def check_value(column: Column[Any], value: Any) -> None:
    """Raise InvalidTextError when `value`, about to be written to `column`, is a text or JSON value no database
    can store, or a text longer than the column."""
    name = f"{column.table.name}.{column.name}"
    kind = column.type
    if isinstance(kind, JSON):
        found = _json_problem(value, name)
        if found is not None:
            raise InvalidTextError(f"refused to store {found[0]}: it {found[1]}")
        return
    if not isinstance(value, str) or isinstance(kind, Enum):  # enum columns check their values themselves
        return
    problem = storage_problem(value)
    if problem is not None:
        raise InvalidTextError(f"refused to store {name}: it {problem}")
    length = kind.length if isinstance(kind, String) else None
    if length is not None and len(value) > length:
        raise InvalidTextError(f"refused to store {name}: {len(value):,} characters where the column holds {length:,}")


def _columns(mapper: Mapper[Any], key: str) -> Iterable[Column[Any]]:
    prop = mapper.attrs.get(key)
    if isinstance(prop, ColumnProperty):
        yield from (c for c in prop.columns if isinstance(c, Column))


def check_flush(session: Session, _flush_context: UOWTransaction, _instances: object) -> None:
    """`before_flush`: every column value of a new row, and every changed one of a loaded row."""
    for row in (*session.new, *session.dirty):
        state = inspect(row)
        for prop in state.mapper.column_attrs:
            if row in session.new:
                if prop.key not in state.dict:
                    continue
                values = [state.dict[prop.key]]
            else:
                values = list(state.attrs[prop.key].history.added)
            for value in values:
                for column in _columns(state.mapper, prop.key):
                    check_value(column, value)


def check_orm_statement(state: ORMExecuteState) -> None:
    """`do_orm_execute`: the parameter rows of an ORM-enabled insert or update (`session.execute(insert(Model),
    rows)`), which bypass the flush."""
    mapper = state.bind_mapper
    if not (state.is_insert or state.is_update) or mapper is None or not state.parameters:
        return
    rows = [state.parameters] if isinstance(state.parameters, Mapping) else list(state.parameters)
    for params in rows:
        for key, value in params.items():
            for column in _columns(mapper, str(key)):
                check_value(column, value)


def _strings(params: Any, names: list[str], key: object = None) -> Iterable[tuple[object, str]]:
    """(name, text) for every string among a statement's parameters: one set (a mapping, or a sequence in the order
    of `names`) or many, nested as executemany and insertmanyvalues batches pass them."""
    if isinstance(params, str):
        yield key, params
    elif isinstance(params, Mapping):
        for name, value in params.items():
            yield from _strings(value, names, name)
    elif isinstance(params, (list, tuple)):
        # A positional set names its values by the compiled statement's order; an insertmanyvalues batch repeats
        # that order once per row.
        named = bool(names) and len(params) % len(names) == 0 and not any(isinstance(v, (list, tuple)) for v in params)
        for position, value in enumerate(params):
            yield from _strings(value, names, names[position % len(names)] if named else position)


def check_statement(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _executemany: bool
) -> None:
    """`before_cursor_execute`: no parameter of any statement (queries too: PostgreSQL refuses a NUL in a lookup's
    id as well) holds a text no database can store. JSON is serialized and escaped by now: the flush checks it."""
    names = list(getattr(getattr(context, "compiled", None), "positiontup", None) or ())
    for key, value in _strings(parameters, names):
        problem = storage_problem(value)
        if problem is not None:
            what = " ".join(statement.split())[:80]
            raise InvalidTextError(f"refused to send parameter {key!r} to the database: it {problem} ({what} ...)")
