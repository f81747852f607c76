"""The local chat shell: a transport like Slack's, over stdin and stdout.

Each line goes through the same dispatcher (registry, access checks, audit) as a Slack
request; piped input makes it scriptable: `echo "/crm help" | crmbot shell`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from crmbot.chat.dispatch import Dispatcher
from crmbot.reply import Reply
from crmbot.reply.charts import draw
from crmbot.reply.people import People
from crmbot.shell.text import render

PROMPT = "crm> "
QUIT_WORDS = {"quit", "exit", ":q", "/quit"}


class Shell:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        user_id: str = "shell",
        chart_dir: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        people: People | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.user_id = user_id
        self.chart_dir = chart_dir or Path(dispatcher.settings.chart_dir)
        self.clock = clock
        # Account owners by name (Slack's directory, when the CLI has a bot token).
        self.people = people

    def ask(self, line: str, progress: Callable[[str], None] | None = None) -> str:
        """Run one line as the shell user; the rendered reply. Slow commands (retrain)
        report their steps through `progress` as they go."""
        reply = self.dispatcher.handle(
            line,
            user_id=self.user_id,
            channel_id="shell",
            transport="shell",
            progress=progress or (lambda message: None),
        )
        return self.render(reply)

    def reply_for(self, line: str) -> Reply:
        return self.dispatcher.handle(
            line, user_id=self.user_id, channel_id="shell", transport="shell"
        )

    def render(self, reply: Reply) -> str:
        chart_path = None
        if reply.chart is not None:
            stamp = self.clock().strftime("%Y%m%d-%H%M%S-%f")
            slug = re.sub(r"[^a-z0-9]+", "-", reply.chart.title.lower()).strip("-")[:40]
            chart_path = draw(reply.chart, self.chart_dir / f"{slug or 'chart'}-{stamp}.png")
        file_path = None
        if reply.attachment is not None:
            # An export is written to a temporary folder; it is kept beside the charts.
            source = Path(reply.attachment.path)
            self.chart_dir.mkdir(parents=True, exist_ok=True)
            file_path = Path(shutil.move(source, self.chart_dir / reply.attachment.filename))
            with contextlib.suppress(OSError):
                source.parent.rmdir()
        return render(reply, chart_path=chart_path, file_path=file_path, people=self.people)

    def loop(self, lines: Iterable[str], out: TextIO, *, interactive: bool) -> None:
        if interactive:
            out.write("crmbot shell — type `/crm help` (or just `help`), `quit` to leave.\n")

        def progress(message: str) -> None:
            out.write(f"… {message}\n")
            out.flush()

        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            if line.lower() in QUIT_WORDS:
                break
            if not interactive:
                out.write(f"{PROMPT}{line}\n")
            out.write(self.ask(line, progress) + "\n\n")
            out.flush()


def run_shell(
    dispatcher: Dispatcher,
    *,
    user_id: str = "shell",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    people: People | None = None,
) -> None:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    shell = Shell(dispatcher, user_id=user_id, people=people)
    interactive = stdin.isatty()
    if interactive:

        def prompted() -> Iterable[str]:
            while True:
                try:
                    yield input(PROMPT)
                except EOFError:
                    return

        shell.loop(prompted(), stdout, interactive=True)
    else:
        shell.loop(stdin, stdout, interactive=False)
