"""The chat request pipeline shared by every transport: the command registry, parsing,
the access check and the audit (`dispatch`), and what commands share (`commandkit`).
"""
