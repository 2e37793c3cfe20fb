"""One error shape for the API: FastAPI's `{"detail": [{"type", "loc", "msg"}]}`."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    # FastAPI's default echoes each offending `input`: that leaks transaction data into responses
    # and logs, and a NaN input cannot even be encoded as JSON (the request would end in a 500).
    detail = [
        {"type": item["type"], "loc": list(item["loc"]), "msg": item["msg"]}
        for item in error.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(RequestValidationError, validation_error)
