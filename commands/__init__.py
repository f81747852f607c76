"""Chat commands, one module each. A module registers its commands with
`crmbot.chat.registry.command`; crmbot imports every module here at start-up.
"""
