"""Git: the remote's bare cache, commits by path, status documents, rollout progress,
trees as repository sources, revert commits, signature checks, history walking and the
dashboard's commit log.

Owns: every read and write of a Git object database (pygit2) and every network call to
a Git remote. Must never: decide what to revert (the planner names the groups) or trust
a commit's author line as identity (signatures only).
"""
