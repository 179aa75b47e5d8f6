"""Plugin configuration: a stage declares its settings, the server fills them in, the stage reads no env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reelcast.plugins import Stage, StageContext, StageSettingsError
from reelcast.plugins.builtin.render import RenderSettings
from reelcast.plugins.settings import build_stage_settings
from reelcast.plugins.testing import ReelcastTestServer, StageHarness
from reelcast.server.config import Settings


@dataclass(frozen=True)
class BannerSettings:
    text: str = "hello"
    repeat: int = 1
    loud: bool = False
    font: Path | None = None
    words: tuple[str, ...] = ()
    legacy: float = field(default=1.5, metadata={"env": "REELCAST_BANNER_LEGACY"})


class Banner:
    """A stage that remembers the settings it was given."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __call__(self, ctx: StageContext) -> dict[str, Any]:
        self.seen.append(ctx.settings)
        ctx.path("banner.txt").write_text(ctx.settings.text * ctx.settings.repeat)
        ctx.report(1.0, "done")
        return {"banner": "banner.txt"}


def banner_stage(run: Banner) -> Stage:
    return Stage(name="banner", title="Banner", weight=1, order=1, run=run, settings=BannerSettings)


def test_environment_values_are_converted_to_the_declared_types() -> None:
    environ = {
        "REELCAST_PLUGIN_BANNER_TEXT": "hi",
        "REELCAST_PLUGIN_BANNER_REPEAT": "3",
        "REELCAST_PLUGIN_BANNER_LOUD": "yes",
        "REELCAST_PLUGIN_BANNER_FONT": "/fonts/a.ttf",
        "REELCAST_PLUGIN_BANNER_WORDS": "one 'two three'",
        "REELCAST_BANNER_LEGACY": "2.5",
    }
    built = build_stage_settings("banner", BannerSettings, environ)
    assert built == BannerSettings("hi", 3, True, Path("/fonts/a.ttf"), ("one", "two three"), 2.5)


def test_the_new_variable_wins_over_the_older_name_and_code_wins_over_both() -> None:
    environ = {"REELCAST_BANNER_LEGACY": "2.5", "REELCAST_PLUGIN_BANNER_LEGACY": "4"}
    assert build_stage_settings("banner", BannerSettings, environ).legacy == 4.0
    assert build_stage_settings("banner", BannerSettings, environ, {"legacy": 8.0}).legacy == 8.0
    assert build_stage_settings("banner", BannerSettings, {}) == BannerSettings()


def test_a_variable_belongs_to_the_stage_with_the_longest_matching_name() -> None:
    environ = {"REELCAST_PLUGIN_INTRO_CARD_TEXT": "card"}
    stages = ["intro", "intro-card"]
    assert build_stage_settings("intro-card", BannerSettings, environ, other_stages=stages).text == "card"
    assert build_stage_settings("intro", BannerSettings, environ, other_stages=stages).text == "hello"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"REELCAST_PLUGIN_BANNER_COLOUR": "red"}, "no setting 'colour'"),
        ({"REELCAST_PLUGIN_BANNER_REPEAT": "many"}, "setting 'repeat'"),
        ({"REELCAST_PLUGIN_BANNER_LOUD": "perhaps"}, "expected true or false"),
    ],
)
def test_an_unknown_key_or_a_bad_value_is_a_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(StageSettingsError, match=message):
        build_stage_settings("banner", BannerSettings, environ)


@pytest.mark.parametrize("count", ["0", "-2"])
def test_a_render_segment_count_below_one_is_a_clear_error(count: str) -> None:
    """The render stage's own check (RenderSettings.__post_init__) reaches the operator the same way."""
    with pytest.raises(StageSettingsError, match=f"segments must be 1 .* got {count}"):
        build_stage_settings("render", RenderSettings, {"REELCAST_RENDER_SEGMENTS": count})
    assert build_stage_settings("render", RenderSettings, {"REELCAST_RENDER_SEGMENTS": "2"}).segments == 2


def test_a_stage_without_settings_given_some_is_an_error() -> None:
    with pytest.raises(StageSettingsError, match="has no settings"):
        build_stage_settings("plain", None, {"REELCAST_PLUGIN_PLAIN_X": "1"})


def test_the_server_reads_the_variables_and_the_builtins_older_names_still_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REELCAST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REELCAST_X264_PRESET", "ultrafast")
    monkeypatch.setenv("REELCAST_FFMPEG_EXTRA_ARGS", "-threads 1")
    monkeypatch.setenv("REELCAST_PLUGIN_RENDER_RENDER_TIMEOUT_SECONDS", "12")
    monkeypatch.setenv("REELCAST_PLUGIN_BANNER_REPEAT", "2")
    settings = Settings.from_env()
    render = Stage(name="render", title="R", weight=1, order=1, run=lambda ctx: None, settings=RenderSettings)
    assert settings.settings_of_stage(render) == RenderSettings(
        ffmpeg_extra_args=("-threads", "1"), render_timeout_seconds=12.0, x264_preset="ultrafast"
    )
    assert settings.settings_of_stage(banner_stage(Banner())).repeat == 2
    # Settings built in code keep accepting the keywords that used to be fields.
    assert Settings(data_dir=tmp_path, x264_preset="slow").settings_of_stage(render).x264_preset == "slow"


def test_the_stage_harness_gives_a_stage_its_settings_not_the_servers(reelcast_stage: StageHarness) -> None:
    run = Banner()
    outcome = reelcast_stage.run(banner_stage(run), settings={"text": "ab", "repeat": "2"})
    assert run.seen == [BannerSettings(text="ab", repeat=2)]
    assert outcome.path("banner.txt").read_text() == "abab"


def test_a_job_on_a_real_server_gives_each_stage_its_settings_from_the_environment(
    reelcast_server: Callable[..., ReelcastTestServer],
) -> None:
    run = Banner()

    class Plugin:
        from reelcast.plugins import hookimpl

        @hookimpl
        def register_stages(self, register: Callable[[Stage], None]) -> None:
            register(banner_stage(run))

    server = reelcast_server(
        Plugin(), "banner", builtins=False, environment={"REELCAST_PLUGIN_BANNER_TEXT": "from env"}
    )
    assert server.run_job().succeeded
    assert run.seen == [BannerSettings(text="from env")]


def test_a_misspelt_stage_setting_stops_serve_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REELCAST_DATA_DIR": str(tmp_path / "data"),
        "REELCAST_PLUGIN_RENDER_X264PRESET": "fast",
    }
    argv = [sys.executable, "-m", "reelcast.cli", "serve", "--grpc-listen", "127.0.0.1:0"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert result.returncode == 2, output
    assert "stage 'render' has no setting 'x264preset'" in output
    assert "Traceback" not in output
