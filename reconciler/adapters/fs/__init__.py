"""The local filesystem: a directory as a repository source, the file-based rollout
progress store (the twin of ``adapters.git.progress``) and the leader file lock.

Owns: walking a directory without following symlinks, atomic JSON writes, ``flock``.
"""
