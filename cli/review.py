"""``reelcast render --review``: the written script in the user's editor, then the video of what was saved.

The script is written to ``<output>.script.json`` beside the MP4 (``otters.script.json``), in the form
``reelcast jobs script`` prints and ``jobs approve --script`` takes. Then, as ``git commit`` does, the command
runs ``$VISUAL`` or ``$EDITOR`` on the file through the shell and waits for it to exit; without either, in a
terminal, it waits for Enter while the user edits the file with anything. The saved file is what the job
renders; the file stays beside the video, as its script.

Nothing is rendered when the edit cannot be used: an editor that exits with a failure, a file that is not
a JSON list of scenes, or one with no scene left. The job is then cancelled, as it is on Ctrl-C, so nothing
waits for an approval that will not come. Without an editor and without a terminal (a script, CI) the
command stops before it starts anything: there would be nobody to edit.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from reelcast.cli.jobs import read_scenes_file, scenes_json
from reelcast.cli.output import console
from reelcast.client import AsyncClient

# The exit status of an edit that cannot be used (the file), as for a bad `jobs approve --script`.
UNUSABLE_EDIT = 2
EDITOR_FAILED = 1


class ReviewAbortedError(Exception):
    """The review ended without an approval; ``status`` is the command's exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class ReviewFile:
    """Where the script under review is written, and the user's usual umask: the file and the editor get
    it, while the command writes into its data dir owner-only (docs/security.md)."""

    path: Path
    umask: int


def script_path(output: Path) -> Path:
    """Where the script under review is written: beside the MP4, with its name (``otters.script.json``)."""
    return output.with_suffix(".script.json")


def editor() -> str:
    """The user's editor command, as git finds it: ``$VISUAL``, then ``$EDITOR``; empty when neither is
    set."""
    return (os.environ.get("VISUAL") or os.environ.get("EDITOR") or "").strip()


def check_reviewer() -> bool:
    """Whether someone can edit the script: an editor is set, or stdin is a terminal to wait in. When not,
    says so with its remediation."""
    if editor() or sys.stdin.isatty():
        return True
    console.print("[red]error[/]: --review needs an editor: set VISUAL or EDITOR, or run it in a terminal")
    console.print(
        "remediation: EDITOR=nano reelcast render --review ..., or create the job with `reelcast jobs create"
        " --review` and approve it with `reelcast jobs approve JOB_ID --script FILE`",
        soft_wrap=True,
        markup=False,
    )
    return False


async def review(client: AsyncClient, job_id: str, script: ReviewFile) -> None:
    """Writes the job's script under review to ``script``, lets the user edit it and approves what was
    saved; raises ReviewAbortedError (the problem printed) when the edit cannot be used."""
    job = await client.get_job(job_id)
    path = script.path
    await asyncio.to_thread(path.write_text, scenes_json(job.review.scenes) + "\n", encoding="utf-8")
    os.chmod(path, 0o666 & ~script.umask)
    command = editor()
    console.print(f"the script is ready for review: {escape(str(path))}", soft_wrap=True)
    if command:
        await _run_editor(command, script)
    else:
        console.print("edit it, then press Enter to render it (Ctrl-C: render nothing)", markup=False)
        await _enter_pressed()
    scenes = read_scenes_file(path)
    if scenes is None:
        raise ReviewAbortedError(UNUSABLE_EDIT)
    if not scenes:
        console.print(f"[red]error[/]: {escape(str(path))} has no scene left: nothing to render")
        console.print("remediation: keep at least one scene with a narration")
        raise ReviewAbortedError(UNUSABLE_EDIT)
    await client.approve_job(job_id, scenes)
    console.print(f"approved: {len(scenes)} scenes", markup=False)


async def _run_editor(command: str, script: ReviewFile) -> None:
    # Through the shell, as git runs $EDITOR, so "code --wait" or a quoted path works. Its stdout goes to
    # our stderr (the terminal in interactive use): stdout carries only the command's result. With the
    # user's umask: an editor that saves by writing a new file gives it the user's usual mode.
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        f'{command} "$@"',
        command,
        str(script.path),
        stdout=sys.stderr.fileno(),
        umask=script.umask,
    )
    try:
        status = await process.wait()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
        raise
    if status != 0:
        console.print(f"[red]error[/]: the editor ({escape(command)}) exited with status {status}")
        console.print("remediation: save the file and quit the editor normally to render it", markup=False)
        raise ReviewAbortedError(EDITOR_FAILED)


async def _enter_pressed() -> None:
    """Waits for a line on stdin without blocking the event loop, so Ctrl-C cancels the wait at once."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    descriptor = sys.stdin.fileno()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(descriptor, readable)
    try:
        await ready
    finally:
        loop.remove_reader(descriptor)
    sys.stdin.readline()
