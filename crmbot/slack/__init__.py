"""The Slack transport: the Bolt app, Block Kit rendering, HTTP and Socket Mode serving,
the app manifest and digest delivery. The only package that imports slack_sdk or
slack_bolt.
"""
