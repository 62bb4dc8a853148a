"""The data blocks of an INSERT, encoded as clickhouse-driver does but without its per-value loops.

clickhouse-driver encodes most columns at C speed (``struct.pack`` of a whole column,
its Cython ``write_strings``), but a ``DateTime`` column and every ``Nullable`` column
go through two Python loops per value (``Column.prepare_items`` and the column's
``before_write_items``), even when the values are already the epoch integers and plain
numbers it would send.  For an aggregates insert those three columns were ~0.6 µs of the
driver's ~1 µs per row (``benchmarks/sink_throughput.py``).

:class:`FastInsertClient` is the driver's ``Client`` with one method replaced,
``send_data`` (the INSERT's data packets, after the server's sample block).  Those
columns are written here with the driver's own steps minus the loops: the null map
(1 where ``None``), ``None`` replaced by the type's null value 0, and the whole column
packed with the driver's ``struct`` format in one call.  A column ``struct`` cannot pack
(a ``datetime``, a float in an integer column, a value out of range) is left to the
driver's ``write_column``, so its conversions and its errors are the driver's; every
other type is the driver's too.  The bytes are the driver's whenever the driver accepts
the values (``tests/sinks/test_native_block.py`` compares both on random columns and
both protocol revisions); the one difference is that integer-like objects the driver
refuses in a ``DateTime`` column (numpy integers) are written as their value.
Row-oriented inserts, numpy inserts and a block bigger than the client's
``insert_block_size`` take the driver's path unchanged.

Examples
--------
>>> block = encode([("at", "DateTime('Asia/Shanghai')"), ("x", "Nullable(Float64)")],
...                [[1793577600, 1793577900], [None, 2.5]])
>>> block == encode([("at", "DateTime('Asia/Shanghai')"), ("x", "Nullable(Float64)")],
...                 [[1793577600, 1793577900], [None, 2.5]], fast=False)
True
>>> writer_for("Nullable(Float64)") is not None, writer_for("LowCardinality(String)")
(True, None)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_driver import Client, defines
from clickhouse_driver.block import BlockInfo, ColumnOrientedBlock
from clickhouse_driver.columns.service import write_column
from clickhouse_driver.protocol import ClientPacketTypes
from clickhouse_driver.varint import write_varint
from clickhouse_driver.writer import write_binary_str, write_binary_uint8

__all__ = ["FastInsertClient", "encode", "writer_for"]

#: The ``struct`` format the driver packs a column of each type with.
_FORMATS = {"Int8": "b", "Int16": "h", "Int32": "i", "Int64": "q", "UInt8": "B",
            "UInt16": "H", "UInt32": "I", "UInt64": "Q", "Float32": "f", "Float64": "d",
            "DateTime": "I"}  # epoch seconds; datetimes go the driver's way

#: ``(items, buf) -> written?``: writes the column's data and returns True, or writes
#: nothing and returns False (the values need the driver's conversions).
ColumnWriter = Callable[[list[Any], Any], bool]


def writer_for(type_: str) -> ColumnWriter | None:
    """How this module writes a column of ``type_``, or ``None`` (the driver writes it).

    Only types the driver loops over per value: ``DateTime`` and ``Nullable`` of a
    number or ``DateTime``; a plain number column is one ``struct.pack`` call in the
    driver already, and strings are its C code.
    """
    nullable = type_.startswith("Nullable(")
    inner = type_[len("Nullable("):-1] if nullable else type_
    code = _FORMATS.get("DateTime" if inner.startswith("DateTime(") else inner)
    if code is None or not (nullable or inner.startswith("DateTime")):
        return None

    def write(items: list[Any], buf: Any) -> bool:
        nulls = b""
        if nullable:
            nulls = bytes([v is None for v in items])  # the driver's null map
            if 1 in nulls:
                items = [0 if v is None else v for v in items]  # its null value, 0
        try:  # what struct cannot pack (a datetime, a float in an integer column ...)
            packed = struct.pack(f"<{len(items)}{code}", *items)
        except struct.error:  # goes the driver's way: converted, or its error raised
            return False
        buf.write(nulls)
        buf.write(packed)
        return True
    return write


def write_block(out: Any, columns_with_types: Sequence[tuple[str, str]],
                data: Sequence[list[Any]], *, types_check: bool = False) -> None:
    """Write one columnar block to a driver block stream (``connection.block_out``):
    the same bytes as its ``write(ColumnOrientedBlock(columns_with_types, data))``."""
    fout, context = out.fout, out.context
    revision = context.server_info.used_revision
    if revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO:
        BlockInfo().write(fout)
    n_rows = len(data[0]) if data else 0
    if any(len(column) != n_rows for column in data) or len(data) != len(columns_with_types):
        raise ValueError("Different rows length")  # the driver's message for the same case
    write_varint(len(columns_with_types), fout)
    write_varint(n_rows, fout)
    for (name, type_), items in zip(columns_with_types, data):
        write_binary_str(name, fout)
        write_binary_str(type_, fout)
        if revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION:
            write_binary_uint8(0, fout)  # the driver never sends custom serialization
        writer = None if types_check else writer_for(type_)
        if writer is None or not writer(items, fout):
            write_column(context, name, type_, items, fout, types_check=types_check)
    out.finalize()


class FastInsertClient(Client):
    """``clickhouse_driver.Client`` whose columnar INSERTs write DateTime and Nullable
    columns without a Python loop per value (see the module docstring)."""

    def send_data(self, sample_block: Any, data: Any, types_check: bool = False,
                  columnar: bool = False) -> int:
        settings = self.connection.context.client_settings
        if (not columnar or settings["use_numpy"] or not data or not data[0]
                or len(data[0]) > settings["insert_block_size"]):
            return super().send_data(sample_block, data, types_check=types_check,
                                     columnar=columnar)
        connection = self.connection
        # Connection.send_data's packet header, then the block itself (write_block).
        write_varint(ClientPacketTypes.DATA, connection.fout)
        if connection.server_info.used_revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
            write_binary_str("", connection.fout)
        write_block(connection.block_out, sample_block.columns_with_types, data,
                    types_check=types_check)
        self.receive_profile_events()
        connection.send_data(ColumnOrientedBlock())  # an empty block ends the data
        self.receive_profile_events()
        return len(data[0])


def encode(columns_with_types: Sequence[tuple[str, str]], data: list[list[Any]], *,
           fast: bool = True, revision: int = defines.CLIENT_REVISION,
           strings_as_bytes: bool = True) -> bytes:
    """The bytes of one columnar block as sent to a server of protocol ``revision``
    (Asia/Shanghai), by :func:`write_block` (``fast``) or by the driver's own stream."""
    from clickhouse_driver.bufferedwriter import BufferedSocketWriter
    from clickhouse_driver.connection import ServerInfo
    from clickhouse_driver.context import Context
    from clickhouse_driver.streams.native import BlockOutputStream

    sent: list[bytes] = []

    class Socket:
        def sendall(self, chunk: Any) -> None:
            sent.append(bytes(chunk))

    context = Context()
    context.server_info = ServerInfo("ClickHouse", 24, 8, 4, revision, "Asia/Shanghai",
                                     "encode", revision)
    context.settings = {}
    context.client_settings = Client("localhost").client_settings | {
        "strings_as_bytes": strings_as_bytes}
    out = BlockOutputStream(BufferedSocketWriter(Socket(), 1 << 16), context)
    columns = [list(c) for c in data]  # the driver overwrites NULLs in the lists it is given
    if fast:
        write_block(out, columns_with_types, columns)
    else:
        out.write(ColumnOrientedBlock(list(columns_with_types), columns))
    return b"".join(sent)
