"""The daemon's read-only web dashboard: the fleet map, rollouts, canary health, history
and cell pages, served on the daemon's listener and updated by Server-Sent Events after
every tick.

Owns: the views of the latest tick and the event streams (``state``, ``sse``), access and
routing (``web``), and the page itself (``static/``: plain HTML, CSS and JavaScript, no
build step, no third-party code).
"""
