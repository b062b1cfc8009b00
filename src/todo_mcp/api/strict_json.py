"""Request bodies read as JSON (RFC 8259), not as what Python's json module also accepts.

`json.loads` reads `NaN`, `Infinity` and `-Infinity`, and turns `1e999999` into infinity. None
of them is JSON, no field of this API takes one, and a body that carries one beside valid
fields (ignored extras) would otherwise be served. The route class is FastAPI's documented way
to give its routes another request class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise json.JSONDecodeError("a number too large for a double is not supported", text, 0)
    return value


def loads_strict(body: bytes) -> Any:
    return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
