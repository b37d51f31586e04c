"""rosbag2 MCAP bags: the one writer set-up, a summary, and repair after a crash (no rclpy).

Every bag of the package is written by ``rosbags.rosbag2.Writer`` (version 9, MCAP storage),
which also writes the ``metadata.yaml`` that ``ros2 bag info`` and ``rosbags`` read. Chunks
are zstd-compressed by default, as rosbag2's ``zstd_fast`` storage preset does.
A writer killed before ``close()`` leaves an MCAP file without summary and no
``metadata.yaml``; :func:`reindex` rewrites such a bag from what was written (like
``ros2 bag reindex``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from worldfm_ros.errors import WorldFMError
from worldfm_ros.resources import share_dir


def typestore():
    """The ROS 2 Jazzy types plus this package's messages (worldfm_ros/msg/*)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    for path in sorted((share_dir() / "msg").glob("*.msg")):
        store.register(get_types_from_msg(path.read_text(), f"worldfm_ros/msg/{path.stem}"))
    return store


def open_writer(path: str | Path, compress: bool = True) -> Writer:
    """An open rosbag2 MCAP writer for the new bag folder ``path``; ``compress``: zstd chunks."""
    path = Path(path)
    if path.exists():
        raise WorldFMError(f"{path}: bag output already exists (rosbag2 never overwrites)")
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    if compress:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    return writer


def flush(writer: Writer) -> None:
    """Write the writer's pending MCAP chunk to disk now (rosbags buffers up to 1 MiB in memory),
    so that a crash loses nothing written before this call."""
    storage = writer.storage
    if storage is not None and storage.chunk.bio.tell():
        storage.close_chunk()
        storage.bio.flush()


@dataclass
class TopicSummary:
    """name, msgtype; count: messages; rate_hz: (count - 1) / span of its receive stamps (0 if < 2)."""

    name: str
    msgtype: str
    count: int
    rate_hz: float


@dataclass
class BagSummary:
    """path: bag folder; duration_s: first to last message; start_ns/end_ns: receive stamps;
    compression: MCAP chunk compression ('' = none); topics: by name."""

    path: Path
    duration_s: float
    start_ns: int
    end_ns: int
    size_bytes: int
    compression: str
    topics: dict[str, TopicSummary] = field(default_factory=dict)

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())


def _need_metadata(path: Path) -> None:
    if not (path / "metadata.yaml").is_file():
        raise WorldFMError(f"{path}: no metadata.yaml (was the recorder killed? repair it with "
                           f"'worldfm bag-reindex {path}')")


def summarize(path: str | Path) -> BagSummary:
    """Topics, types, message counts, rates and duration of the bag folder ``path``."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    _need_metadata(path)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    with Reader(path) as reader:
        for conn, stamp, _ in reader.messages():
            first.setdefault(conn.topic, stamp)
            last[conn.topic] = stamp
        topics = {}
        for conn in reader.connections:
            span = (last.get(conn.topic, 0) - first.get(conn.topic, 0)) * 1e-9
            rate = (conn.msgcount - 1) / span if conn.msgcount > 1 and span > 0 else 0.0
            topics[conn.topic] = TopicSummary(conn.topic, conn.msgtype, conn.msgcount, rate)
        start, end = (reader.start_time, reader.end_time) if reader.message_count else (0, 0)
        files = sorted(path.glob("*.mcap"))
        compression = _chunk_compression(files[0]) if files else ""
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return BagSummary(path, (end - start) * 1e-9, start, end, size, compression, topics)


def _chunk_compression(mcap_file: Path) -> str:
    from mcap.reader import make_reader

    with open(mcap_file, "rb") as f:
        summary = make_reader(f).get_summary()
    kinds = {c.compression for c in summary.chunk_indexes} if summary else set()
    return ",".join(sorted(kinds)) if kinds - {""} else ""


def reindex(path: str | Path, compress: bool = True) -> int:
    """Rewrite a bag whose writer died (MCAP without summary, no metadata.yaml) from every
    complete message in it; returns the number of messages kept. A message cut off by the
    crash is dropped. Raises WorldFMError if ``path`` holds no MCAP file."""
    from mcap.exceptions import McapError
    from mcap.stream_reader import StreamReader
    from mcap.records import Channel, Message, Schema
    from rosbags.rosbag2.metadata import parse_qos

    path = Path(path)
    files = sorted(path.glob("*.mcap"))
    if len(files) != 1:
        raise WorldFMError(f"{path}: expected one .mcap file in the bag folder, found {len(files)}")
    source = files[0]
    tmp = path.with_name(path.name + ".reindex")
    if tmp.exists():
        shutil.rmtree(tmp)
    store = typestore()
    writer = open_writer(tmp, compress=compress)
    schemas: dict[int, str] = {}
    connections = {}
    kept = 0
    try:
        with open(source, "rb") as f:
            try:
                for record in StreamReader(f, skip_magic=False, emit_chunks=False).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel) and record.id not in connections:
                        qos = record.metadata.get("offered_qos_profiles", "")
                        msgtype = schemas.get(record.schema_id, "")
                        if msgtype not in store.types:
                            raise WorldFMError(f"{source}: channel {record.topic!r} has type {msgtype!r}, "
                                               "which this tool does not know")
                        connections[record.id] = writer.add_connection(
                            record.topic, msgtype, typestore=store,
                            offered_qos_profiles=parse_qos(qos) if qos else [])
                    elif isinstance(record, Message) and record.channel_id in connections:
                        writer.write(connections[record.channel_id], record.log_time, record.data)
                        kept += 1
            except (McapError, EOFError, ValueError, KeyError):
                pass  # the crash cut the file here: keep what came before
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    writer.close()
    shutil.rmtree(path)
    tmp.rename(path)
    (path / f"{tmp.name}.mcap").rename(path / f"{path.name}.mcap")
    # metadata.yaml names the storage file; point it at the renamed one.
    meta = path / "metadata.yaml"
    meta.write_text(meta.read_text().replace(f"{tmp.name}.mcap", f"{path.name}.mcap"))
    return kept
