"""`/crm help`: the commands the asker may run, written from each command's docstring."""

from __future__ import annotations

from crmbot.chat.dispatch import access_denial
from crmbot.chat.registry import Request, command, find_command, load_commands
from crmbot.reply import Reply


@command("help", usage="help [command]", aliases=("?", "commands"))
def help_command(request: Request) -> Reply:
    """List the commands, or explain one: `help customer`."""
    commands = load_commands()
    prefix = request.settings.slash_command
    if request.args:
        cmd = find_command(request.args[0], commands)
        if cmd is None:
            return Reply.usage(
                f"There is no command `{request.args[0][:40]}`. Try `{prefix} help`."
            )
        return Reply(
            title=f"{prefix} {cmd.name}", text=f"`{prefix} {cmd.usage}`\n\n{cmd.description}"
        )
    # The same check that guards running a command decides what is listed.
    allowed = [cmd for cmd in commands.values() if access_denial(cmd, request) is None]
    lines = []
    for cmd in allowed:
        admin = " _(admin)_" if cmd.admin_only else ""
        lines.append(f"`{prefix} {cmd.usage}` — {cmd.help}{admin}")
    return Reply(
        title="crmbot commands",
        text="\n".join(lines),
        footer="Add `--share` to post a reply in the channel (emails and phones masked), "
        "`--csv` to get a list's every row as a CSV file.",
    )
