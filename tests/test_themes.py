"""The visual themes over the contract: ``ListThemes`` lists the installed visuals stage's themes with a PNG
preview each, CreateJob refuses a style none of them names with ``E405-UNKNOWN_THEME``, and the bridge
serves the list and the previews (``GET /api/themes``, ``GET /api/themes/{name}/preview.png``)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from google.rpc import error_details_pb2
from grpc import StatusCode, aio
from grpc_status import rpc_status
from PIL import Image

from reelcast.jobs.v1 import job_pb2, job_service_pb2
from reelcast.plugins.builtin import visuals
from reelcast.server.app import ReelcastServer
from tests.stages import PipelinePlugin

if TYPE_CHECKING:
    from reelcast.jobs.v1.job_service_pb2_grpc import JobServiceAsyncStub as Stub


@pytest.fixture
def with_visuals(server: ReelcastServer) -> None:
    """The built-in visuals stage (and its themes) as the server's one stage."""
    server.host.register_builtin(visuals, "visuals")


def _spec(style: str) -> job_pb2.JobSpec:
    return job_pb2.JobSpec(brief=job_pb2.Brief(topic="Otters"), plan=job_pb2.Plan(style=style))


@pytest.mark.usefixtures("with_visuals")
async def test_list_themes_gives_the_three_themes_with_a_png_preview_of_each(stub: Stub) -> None:
    reply = await stub.ListThemes(job_service_pb2.ListThemesRequest())
    assert [theme.name for theme in reply.themes] == ["clean", "bold", "paper"]
    previews = []
    for theme in reply.themes:
        assert theme.title and theme.description
        image = Image.open(io.BytesIO(theme.preview_png))
        assert image.format == "PNG" and image.size == (320, 180)
        previews.append(image.convert("RGB").tobytes())
    assert len(set(previews)) == 3


async def test_without_a_stage_that_has_themes_the_list_is_empty_and_any_style_passes(
    server: ReelcastServer, stub: Stub
) -> None:
    server.host.register(PipelinePlugin(), "pipeline")
    assert not (await stub.ListThemes(job_service_pb2.ListThemesRequest())).themes
    created = await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=_spec("neon")))
    assert created.job.id


@pytest.mark.usefixtures("with_visuals")
async def test_create_job_refuses_a_style_no_theme_has_with_e405(stub: Stub) -> None:
    with pytest.raises(aio.AioRpcError) as raised:
        await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=_spec("neon")))
    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    reasons: set[str] = set()
    fields: set[str] = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.add(info.reason)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.update(v.field for v in bad_request.field_violations)
    assert reasons == {"E405-UNKNOWN_THEME"}
    assert fields == {"spec.plan.style"}
    for style in ("", "bold", "Paper"):
        assert (await stub.CreateJob(job_service_pb2.CreateJobRequest(spec=_spec(style)))).job.id
