"""Reading a Rerun recording back with Rerun's own reader (rerun.chunk.RrdReader, rerun-sdk 0.41)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def read_rrd(path: Path) -> dict[str, list[dict]]:
    """Rows per entity path, each row a dict of its columns; timestamp columns (the 'ros_time' and
    'log_time' timelines) as int64 nanoseconds."""
    import pyarrow as pa
    from rerun.chunk import RrdReader

    rows: dict[str, list[dict]] = defaultdict(list)
    for chunk in RrdReader(path).stream().to_chunks():
        batch = chunk.to_record_batch()
        columns = {}
        for name in batch.schema.names:
            column = batch.column(name)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            columns[name] = column.to_pylist()
        for i in range(chunk.num_rows):
            rows[chunk.entity_path].append({k: v[i] for k, v in columns.items()})
    return rows


def frame_stamps(rows: dict[str, list[dict]], entity: str = "/world/camera/image") -> list[int]:
    """The ros_time stamps (ns) at which ``entity`` was logged, sorted."""
    return sorted(r["ros_time"] for r in rows[entity] if "ros_time" in r)
