"""crmbot: data-driven customer relationship management in Slack."""

__version__ = "0.1.0"
