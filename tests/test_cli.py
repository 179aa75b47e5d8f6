"""The ``reelcast`` command as a user runs it: a real process, real output, errors without tracebacks."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

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
    assert 4.0 < info.duration < 8.0


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
    assert "key points" not in err.lower()
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


@pytest.mark.parametrize("command", ["render", "jobs create"])
async def test_without_key_points_or_a_script_the_cli_hints_that_key_points_help(
    server: ReelcastServer, tmp_path: Path, command: str
) -> None:
    where = ["--target", server.target]
    if command == "render":
        where = [
            "--resolution",
            "320x180",
            "--data-dir",
            str(tmp_path / "data"),
            "-o",
            str(tmp_path / "b.mp4"),
        ]
    code, _, err = await run_cli(*command.split(), "--topic", "Bees", "--duration", "3", *where)
    assert code == 0, err
    hints = [line for line in err.splitlines() if "--key-point" in line]
    assert len(hints) == 1 and "key points" in hints[0].lower(), err


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
