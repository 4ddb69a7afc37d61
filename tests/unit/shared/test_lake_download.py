"""``datalake.lake.download``: the one way the transformer and the modeler stream a lake object to a local file."""

from __future__ import annotations

import io

import pytest

from datalake.lake import LakeError, ObjectMissing, download


class _Lake:
    """The ``open`` of a ``LakeStore``, over a dict; a body can fail half way, as a dropped connection does."""

    def __init__(self, objects: dict[str, bytes], fail_after: int | None = None) -> None:
        self.objects = objects
        self.fail_after = fail_after
        self.closed: list[str] = []

    def open(self, key: str, version_id: str | None = None) -> io.BytesIO:
        if key not in self.objects:
            raise ObjectMissing(f"{key} does not exist")
        lake = self

        class Body(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                if lake.fail_after is not None and self.tell() >= lake.fail_after:
                    raise OSError("connection reset by peer")
                return super().read(size)

            def close(self) -> None:
                lake.closed.append(key)
                super().close()

        return Body(self.objects[key])


def test_an_object_larger_than_a_chunk_arrives_whole_and_its_body_is_closed(tmp_path):
    data = bytes(range(256)) * 1000  # 256,000 bytes in 1,000-byte chunks
    lake = _Lake({"staging/t/part-1.parquet": data})
    download(lake, "staging/t/part-1.parquet", str(tmp_path / "f"), chunk_bytes=1000)
    assert (tmp_path / "f").read_bytes() == data
    assert lake.closed == ["staging/t/part-1.parquet"]


def test_a_read_that_fails_half_way_is_a_lake_error_naming_the_key(tmp_path):
    lake = _Lake({"staging/t/part-1.parquet": b"x" * 10_000}, fail_after=5_000)
    with pytest.raises(LakeError, match="reading staging/t/part-1.parquet failed: connection reset by peer"):
        download(lake, "staging/t/part-1.parquet", str(tmp_path / "f"), chunk_bytes=1000)
    assert lake.closed == ["staging/t/part-1.parquet"]


def test_a_missing_object_is_object_missing(tmp_path):
    with pytest.raises(ObjectMissing):
        download(_Lake({}), "staging/t/gone.parquet", str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()
