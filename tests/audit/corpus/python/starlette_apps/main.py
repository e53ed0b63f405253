# ruff: noqa
# fmt: off
# Several applications in one project: facts belong to each application object.
from fastapi import APIRouter, FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Route

from limits import Gate

parent = FastAPI()
parent.add_middleware(Gate, most=512 * 1024)
child = FastAPI()
parent.mount("/child", child)


@child.post("/hook")
async def child_hook(request: Request):
    return await request.json()  # ok: starlette-body-limit


status = FastAPI()


@status.get("/health")
async def health():
    return {"ok": True}


open_app = FastAPI()  # ok: starlette-body-limit
router = APIRouter()


@router.post("/ingest")
async def ingest(request: Request):
    return {"n": len(await request.body())}  # expect: starlette-body-limit


open_app.include_router(router)


async def wrapped(request):
    return await request.body()  # ok: starlette-body-limit


tiny = Starlette(routes=[Route("/w", Gate(wrapped), methods=["POST"])])
