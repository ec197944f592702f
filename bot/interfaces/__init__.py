"""The interfaces people and systems use: the shared interaction backend of every chat
platform and the web inbox, the web inbox backend, webhook intake and the JSON API.
(The CLI and the composition root, ``bot.app``, sit above them in ``bot``.)"""
