"""The ``reelcast`` command as a user runs it: a real process, real output, errors without tracebacks."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from reelcast.server.app import ReelcastServer


async def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reelcast.cli",
        *args,
        # Not a terminal, as in a script or CI, wherever the tests run.
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_render_writes_a_playable_mp4_and_prints_only_its_path_on_stdout(tmp_path: Path) -> None:
    from tests.media import probe

    # Longer than the 80 columns a console assumes when stdout is a pipe: the path must come out whole.
    target = tmp_path / ("a-directory-name-long-enough-to-pass-eighty-columns-" * 2) / "otters.mp4"
    code, out, err = await run_cli(
        "render",
        "--topic",
        "Why otters hold hands",
        # Without key points the video only says its topic (a few seconds, whatever the target).
        "--key-point",
        "Otters hold paws while they sleep, so they do not drift apart.",
        "--duration",
        "5",
        "--resolution",
        "640x360",
        "--data-dir",
        str(tmp_path / "data"),
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == f"{target.resolve()}\n"
    assert "Overall" in err and "Rendering" in err
    info = probe(target)
    assert (info.width, info.height) == (640, 360)
    # The hook, the key point and the close with their pauses between scenes (0.4 s each) and sentences.
    assert 4.0 < info.duration < 10.0


async def test_render_failure_prints_code_remediation_and_log_path(tmp_path: Path) -> None:
    code, _, err = await run_cli(
        "render",
        "--topic",
        "Otters",
        "--duration",
        "5",
        "--resolution",
        "640x360",
        "--data-dir",
        str(tmp_path / "data"),
        "-o",
        str(tmp_path / "never.mp4"),
        env={"REELCAST_FFMPEG_EXTRA_ARGS": "-c:v no_such_encoder"},
    )
    assert code == 1
    assert "E304-FFMPEG_RUNTIME" in err
    assert "remediation:" in err
    assert "log:" in err
    assert ".log" in err
    assert "Traceback" not in err
    assert not (tmp_path / "never.mp4").exists()


async def test_client_errors_show_the_code_and_remediation_not_a_traceback(server: ReelcastServer) -> None:
    code, _, err = await run_cli("jobs", "get", "no-such-job", "--target", server.target)
    assert code == 1
    assert "E003-JOB_NOT_FOUND" in err
    assert "remediation:" in err
    assert "Traceback" not in err


async def test_unreachable_server_is_explained(tmp_path: Path) -> None:
    code, _, err = await run_cli("jobs", "list", "--target", "127.0.0.1:1")
    assert code == 2
    assert "cannot reach the reelcast server" in err
    assert "Traceback" not in err


# -- the brief on the command line (issue 16) ---------------------------------------------------------------


async def test_render_speaks_the_key_points_in_order_and_writes_srt_and_webvtt_beside_the_mp4(
    tmp_path: Path,
) -> None:
    from reelcast.plugins.builtin.captions import parse_srt

    target = tmp_path / "out" / "bees.mp4"
    code, out, err = await run_cli(
        "render",
        "--topic",
        "Bees",
        "--key-point",
        "Bees dance to share directions.",
        "--key-point",
        "Honey keeps for years.",
        "--captions",
        "words",
        "--duration",
        "5",
        "--resolution",
        "320x180",
        "--data-dir",
        str(tmp_path / "data"),
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == f"{target.resolve()}\n"
    assert "add --key-point" not in err
    srt, vtt = target.with_suffix(".srt"), target.with_suffix(".vtt")
    spoken = " ".join(text for _, _, text in parse_srt(srt.read_text(encoding="utf-8"))).lower()
    assert spoken.index("dance") < spoken.index("directions") < spoken.index("honey") < spoken.index("years")
    # Word captions: a few words a cue, the same cues in the WebVTT.
    assert all(len(text.split()) <= 4 for _, _, text in parse_srt(srt.read_text(encoding="utf-8")))
    webvtt = vtt.read_text(encoding="utf-8")
    assert webvtt.startswith("WEBVTT") and webvtt.count(" --> ") == len(parse_srt(srt.read_text()))


async def test_jobs_create_sends_language_key_points_script_voice_and_caption_style(
    server: ReelcastServer, tmp_path: Path
) -> None:
    import json

    script = tmp_path / "script.txt"
    script.write_text("Le soleil chauffe la mer.\nL'eau s'évapore.\n\n  Les nuages donnent la pluie.  \n")
    code, out, err = await run_cli(
        "jobs", "create", "--target", server.target, "--topic", "Le cycle de l'eau", "--language", "fr",
        "--key-point", "Le soleil chauffe.", "--key-point", "La pluie tombe.", "--script", str(script),
        "--voice", "fr-fr", "--captions", "sentences", "--duration", "5",
    )  # fmt: skip
    assert code == 0, err
    code, shown, err = await run_cli("jobs", "get", out.strip(), "--target", server.target)
    assert code == 0, err
    spec = json.loads(shown)["spec"]
    assert spec["brief"]["language"] == "fr"
    assert spec["brief"]["keyPoints"] == ["Le soleil chauffe.", "La pluie tombe."]
    # A plain-text script: one scene per paragraph, its lines joined.
    assert [scene["narration"] for scene in spec["script"]] == [
        "Le soleil chauffe la mer. L'eau s'évapore.",
        "Les nuages donnent la pluie.",
    ]
    assert spec["voice"]["name"] == "fr-fr"
    assert spec["render"]["captions"] is True
    assert spec["render"]["captionStyle"] == "CAPTION_STYLE_SENTENCES"


async def test_a_json_script_file_gives_each_scene_its_title_caption_and_visual_hint(
    server: ReelcastServer, tmp_path: Path
) -> None:
    import json

    scenes = [
        {"title": "Hives", "narration": "Bees make honey.", "caption": "Honey", "visualHint": "diagram"},
        {"narration": "Thanks for watching."},
    ]
    script = tmp_path / "script.json"
    script.write_text(json.dumps(scenes), encoding="utf-8")
    code, out, err = await run_cli(
        "jobs", "create", "--target", server.target, "--topic", "Bees", "--script", str(script),
        "--duration", "5",
    )  # fmt: skip
    assert code == 0, err
    # A script says what the video says: no hint about key points.
    assert "key points" not in err.lower()
    _, shown, _ = await run_cli("jobs", "get", out.strip(), "--target", server.target)
    sent = json.loads(shown)["spec"]["script"]
    assert [(s["title"], s["narration"], s["caption"], s["visualHint"]) for s in sent[:1]] == [
        ("Hives", "Bees make honey.", "Honey", "diagram")
    ]
    assert sent[1]["narration"] == "Thanks for watching."


def _where(command: str, server: ReelcastServer, tmp_path: Path) -> list[str]:
    """Where a spec command runs: `jobs create` on the test server, `render` on its own small render."""
    if command == "render":
        return [
            "--resolution",
            "320x180",
            "--data-dir",
            str(tmp_path / "data"),
            "-o",
            str(tmp_path / "b.mp4"),
        ]
    return ["--target", server.target]


@pytest.mark.parametrize("command", ["render", "jobs create"])
async def test_without_key_points_or_a_script_the_cli_hints_that_key_points_help(
    server: ReelcastServer, tmp_path: Path, command: str
) -> None:
    where = _where(command, server, tmp_path)
    code, _, err = await run_cli(*command.split(), "--topic", "Bees", "--duration", "3", *where)
    assert code == 0, err
    hints = [line for line in err.splitlines() if "--key-point" in line]
    assert len(hints) == 1 and "key points" in hints[0].lower(), err


@pytest.mark.parametrize("command", ["render", "jobs create"])
async def test_key_points_that_need_far_longer_than_the_target_are_flagged_on_stderr(
    server: ReelcastServer, tmp_path: Path, command: str
) -> None:
    # The hook, the point and the sign-off need about 4 s: more than 10 % over a 3 s target.
    where = _where(command, server, tmp_path)
    brief = ["--topic", "Bees", "--key-point", "Honey keeps for years.", "--duration", "3"]
    code, _, err = await run_cli(*command.split(), *brief, *where)
    assert code == 0, err
    hints = [line for line in err.splitlines() if "need about" in line]
    assert len(hints) == 1, err
    said = re.search(r"key points need about (\d+) s; target 3 s", hints[0])
    assert said and int(said.group(1)) >= 4 and "--duration" in hints[0], hints
    if command == "jobs create":  # the same check in both commands: one more render would only cost time
        # A target the key points fit gets no such hint.
        code, _, err = await run_cli(*command.split(), *brief[:-1], "8", *where)
        assert code == 0, err
        assert "need about" not in err, err


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("missing.json", None, "cannot read"),
        ("broken.json", b'[{"narration": "Hi"', "not valid JSON"),
        ("object.json", b'{"narration": "Hi"}', "a JSON list"),
        ("unknown.json", b'[{"narration": "Hi", "speaker": "Ann"}]', "speaker"),
        ("number.json", b'[{"narration": 5}]', "scene 1"),
        ("empty.txt", b"\n \n", "no scene"),
        ("latin1.txt", "Café crème".encode("latin-1"), "UTF-8"),
    ],
)
@pytest.mark.parametrize("command", ["render", "jobs create"])
async def test_a_script_file_that_cannot_be_read_or_parsed_exits_2_with_its_code(
    tmp_path: Path, name: str, content: bytes | None, says: str, command: str
) -> None:
    script = tmp_path / name
    if content is not None:
        script.write_bytes(content)
    where = ["-o", str(tmp_path / "never.mp4"), "--data-dir", str(tmp_path / "data")]
    # A client command fails before it connects: the target is a closed port.
    where = where if command == "render" else ["--target", "127.0.0.1:1"]
    code, out, err = await run_cli(*command.split(), "--topic", "Bees", "--script", str(script), *where)
    assert code == 2, err
    assert "E350-SCRIPT_FILE_INVALID" in err and says in err, err
    assert "remediation:" in err
    assert "Traceback" not in err and "cannot reach" not in err
    assert out == ""
    assert not (tmp_path / "never.mp4").exists()


async def test_jobs_create_label_flags_label_the_job_and_jobs_list_label_finds_only_it(
    server: ReelcastServer,
) -> None:
    await server.runner.stop()  # the jobs stay queued: only their labels matter here
    target = ("--target", server.target)
    code, labelled, err = await run_cli(
        "jobs", "create", *target, "--topic", "Bees", "--label", "team=video", "--label", "env=prod"
    )  # fmt: skip
    assert code == 0, err
    code, other, err = await run_cli("jobs", "create", *target, "--topic", "Ants", "--label", "team=video")
    assert code == 0, err
    code, out, err = await run_cli("jobs", "list", *target, "--label", "env=prod", "--label", "team=video")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [labelled.strip()]
    code, out, err = await run_cli("jobs", "list", *target, "--label", "team=video")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == [other.strip(), labelled.strip()]


def test_render_takes_repeated_labels_and_refuses_a_malformed_one_before_any_work() -> None:
    from reelcast.cli import build_parser
    from reelcast.cli.jobs import job_spec
    from reelcast.jobs.errors import ReelcastError

    def labels(*flags: str) -> dict[str, str]:
        args = build_parser().parse_args(["render", "--topic", "Bees", "-o", "x.mp4", *flags])
        return dict(job_spec(args).labels)

    assert labels() == {}
    assert labels("--label", "team=video", "--label", " env = prod ") == {"team": "video", "env": "prod"}
    for bad in ("team", "Team=video", "team=" + "v" * 64):
        with pytest.raises(SystemExit) as exited:
            labels("--label", bad)
        assert exited.value.code == 2
    with pytest.raises(ReelcastError, match="more than once"):
        labels("--label", "team=a", "--label", "team=b")


def test_render_and_jobs_create_take_a_priority_word_and_default_to_normal() -> None:
    from reelcast.cli import build_parser
    from reelcast.cli.jobs import job_spec
    from reelcast.jobs.v1 import job_pb2

    def priority(command: list[str], *flags: str) -> int:
        return job_spec(build_parser().parse_args([*command, "--topic", "Bees", *flags])).priority

    render, create = ["render", "-o", "x.mp4"], ["jobs", "create"]
    assert priority(render, "--priority", "high") == job_pb2.JOB_PRIORITY_HIGH
    assert priority(create, "--priority", "low") == job_pb2.JOB_PRIORITY_LOW
    assert priority(create) == job_pb2.JOB_PRIORITY_NORMAL
    with pytest.raises(SystemExit) as exited:
        priority(render, "--priority", "urgent")
    assert exited.value.code == 2


def test_music_takes_a_mood_or_none_and_defaults_to_the_tones() -> None:
    from reelcast.cli import build_parser
    from reelcast.cli.jobs import job_spec

    def mood(*flags: str) -> str:
        return job_spec(build_parser().parse_args(["jobs", "create", "--topic", "Bees", *flags])).music.mood

    assert mood() == ""
    assert mood("--music", "upbeat") == "upbeat"
    assert mood("--music", "none") == "none"
    with pytest.raises(SystemExit) as exited:
        mood("--music", "loud")
    assert exited.value.code == 2


def test_captions_take_off_sentences_or_words_and_a_bare_flag_means_words() -> None:
    from reelcast.cli import build_parser
    from reelcast.cli.jobs import job_spec
    from reelcast.jobs.v1 import job_pb2

    def render_spec(*flags: str) -> job_pb2.RenderSpec:
        args = build_parser().parse_args(["jobs", "create", "--topic", "Bees", *flags])
        return job_spec(args).render

    assert not render_spec().captions
    assert not render_spec("--captions", "off").captions
    words = render_spec("--captions")
    assert words.captions and words.caption_style == job_pb2.CAPTION_STYLE_WORDS
    assert render_spec("--captions", "words") == words
    sentences = render_spec("--captions", "sentences", "--duration", "5")
    assert sentences.captions and sentences.caption_style == job_pb2.CAPTION_STYLE_SENTENCES
    with pytest.raises(SystemExit) as exited:
        render_spec("--captions", "karaoke")
    assert exited.value.code == 2


# -- render --review: the script in an editor, then the video of what was saved ---------------------------

# An "editor" as EDITOR runs it (`$EDITOR FILE`): it keeps a copy of what it was shown, then rewrites the
# narration of the key point's scene, as a user would.
EDITOR_SCRIPT = """
import json, shutil, sys
from pathlib import Path

path = Path(sys.argv[-1])
shutil.copyfile(path, path.with_name("shown.json"))
scenes = json.loads(path.read_text(encoding="utf-8"))
scenes[1]["narration"] = "Sea otters crack clams open on flat stones."
# Saved as some editors save: a new file renamed over the old one.
path.with_name("saving.json").write_text(json.dumps(scenes), encoding="utf-8")
path.with_name("saving.json").replace(path)
"""


async def test_render_review_opens_the_editor_on_the_script_and_renders_what_it_saved(tmp_path: Path) -> None:
    import json
    import shlex

    from reelcast.plugins.builtin.captions import parse_srt

    editor = tmp_path / "editor.py"
    editor.write_text(EDITOR_SCRIPT, encoding="utf-8")
    target = tmp_path / "out" / "otters.mp4"
    code, out, err = await run_cli(
        "render", "--review", "--topic", "Sea otters",
        "--key-point", "Sea otters hold paws while they sleep.",
        "--captions", "words", "--duration", "5", "--resolution", "320x180",
        "--data-dir", str(tmp_path / "data"), "-o", str(target),
        env={"VISUAL": "", "EDITOR": f"{shlex.quote(sys.executable)} {shlex.quote(str(editor))}"},
    )  # fmt: skip
    assert code == 0, err
    assert out == f"{target.resolve()}\n"  # the editor's own output went to stderr
    script = target.with_suffix(".script.json")
    assert str(script) in err
    # The editor was shown the written script, as `jobs script` prints it...
    shown = json.loads((script.parent / "shown.json").read_text(encoding="utf-8"))
    assert "hold paws" in shown[1]["narration"] and shown[1]["visualHint"] == "list"
    # A caption that is the narration is left out of the file, so it follows an edited narration.
    assert "caption" not in shown[1]
    # ...and the video says what it saved: the file keeps the approved scenes beside the MP4.
    assert json.loads(script.read_text(encoding="utf-8"))[1]["narration"].startswith("Sea otters crack")
    # The user's file, like the MP4: not owner-only like the data dir.
    assert script.stat().st_mode & 0o777 == target.stat().st_mode & 0o777
    spoken = " ".join(
        text for _, _, text in parse_srt(target.with_suffix(".srt").read_text(encoding="utf-8"))
    )
    assert "crack clams open on flat stones" in spoken.lower() and "paws" not in spoken.lower(), spoken


@pytest.mark.parametrize(
    ("editor", "status", "says"),
    [
        ("", 2, "VISUAL or EDITOR"),  # no editor, and stdin is not a terminal to wait in
        ("false", 1, "editor"),  # the editor failed: nothing is rendered
        ('sh -c \'echo "[{" > "$0"\'', 2, "cannot read the scenes"),
        ("sh -c 'echo [] > \"$0\"'", 2, "no scene"),
    ],
    ids=["no-editor", "editor-fails", "invalid-json", "no-scene"],
)
async def test_render_review_without_a_usable_edit_renders_nothing(
    tmp_path: Path, editor: str, status: int, says: str
) -> None:
    target = tmp_path / "otters.mp4"
    code, out, err = await run_cli(
        "render", "--review", "--topic", "Sea otters", "--key-point", "Otters hold paws.",
        "--duration", "5", "--resolution", "320x180", "--data-dir", str(tmp_path / "data"), "-o", str(target),
        env={"VISUAL": "", "EDITOR": editor},
    )  # fmt: skip
    assert code == status, err
    assert says in err and "remediation:" in err, err
    assert "Traceback" not in err and out == ""
    assert not target.exists()


# -- the user's own media (issue 17) ------------------------------------------------------------------------


async def test_media_upload_prints_the_id_list_shows_it_and_delete_removes_it(
    server: ReelcastServer, tmp_path: Path
) -> None:
    from tests.media import png_bytes

    picture = tmp_path / "logo.png"
    picture.write_bytes(png_bytes())
    code, out, err = await run_cli("media", "upload", str(picture), "--target", server.target)
    assert code == 0, err
    media_id = out.strip()
    assert len(media_id) == 32 and (server.settings.media_dir / media_id).is_file()

    code, out, err = await run_cli("media", "list", "--target", server.target)
    assert code == 0, err
    assert out.split()[:4] == [
        media_id,
        "image",
        str((server.settings.media_dir / media_id).stat().st_size),
        "64x48",
    ]

    code, out, err = await run_cli("media", "delete", media_id, "--target", server.target)
    assert (code, out.strip()) == (0, f"deleted: {media_id}"), err
    code, _, err = await run_cli("media", "delete", media_id, "--target", server.target)
    assert code == 1 and "E048-MEDIA_NOT_FOUND" in err and "remediation:" in err and "Traceback" not in err


async def test_media_upload_of_a_file_that_is_no_media_shows_its_code(
    server: ReelcastServer, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n" * 10)
    code, out, err = await run_cli("media", "upload", str(text), "--target", server.target)
    assert (code, out) == (1, "")
    assert "E042-MEDIA_TYPE_UNSUPPORTED" in err and "Traceback" not in err


async def _last_event(server: ReelcastServer, job_id: str, after: int) -> Any:
    """The event that ends the job's stream after ``after`` (the server's own watch, as WatchJob runs it)."""
    from reelcast.server.rpc.watch import follow_job_events

    last = None
    async for event in follow_job_events(server.store, server.notifier, job_id, after):
        last = event
    return last


async def test_jobs_retry_and_delete_act_on_a_failed_job_and_explain_a_refusal(
    server: ReelcastServer,
) -> None:
    from reelcast.jobs.v1 import job_pb2
    from tests.stages import PipelinePlugin

    plugin = PipelinePlugin(fail_at="render", fail_times=1)
    server.host.register(plugin, "pipeline")
    code, out, err = await run_cli("jobs", "create", "--target", server.target, "--topic", "Bees")
    assert code == 0, err
    job = await server.store.get_job(out.strip())
    assert job is not None
    failed = await asyncio.wait_for(_last_event(server, job.id, 0), 60)
    assert failed.job_status == job_pb2.JOB_STATUS_FAILED
    code, out, err = await run_cli("jobs", "retry", job.id, "--target", server.target)
    assert code == 0, err
    assert out == f"retried: {job.id} (attempt 2)\n"
    done = await asyncio.wait_for(_last_event(server, job.id, failed.sequence), 60)
    assert done.job_status == job_pb2.JOB_STATUS_SUCCEEDED
    code, _, err = await run_cli("jobs", "retry", job.id, "--target", server.target)
    assert code == 1 and "E060-JOB_NOT_RETRYABLE" in err and "remediation:" in err and "Traceback" not in err
    code, out, err = await run_cli("jobs", "delete", job.id, "--target", server.target)
    assert code == 0, err
    assert out == f"deleted: {job.id}\n"
    assert await server.store.get_job(job.id) is None
