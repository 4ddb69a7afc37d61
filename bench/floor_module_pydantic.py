"""Reference only, not a bar: the floor plus pydantic's BaseModel and one model built, the least a handler with
pydantic contracts (DESIGN section 3) can import. It shows how much of a handler's margin pydantic itself uses."""

from pydantic import BaseModel

import bench.floor_module  # noqa: F401


class _One(BaseModel):
    value: int


_One(value=1)
