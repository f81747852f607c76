"""The local chat shell: a transport like Slack's, over a terminal's input and output."""
