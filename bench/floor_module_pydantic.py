"""The light handlers' cold-start floor: the floor plus pydantic's BaseModel and one model built, the least a handler
with pydantic contracts (docs/contracts.md) can import. pydantic is part of the design, and alone it costs about
1.24x the bare floor, so the light handlers' bar is measured against this module (docs/bars.md)."""

from pydantic import BaseModel

import bench.floor_module  # noqa: F401


class _One(BaseModel):
    value: int


_One(value=1)
