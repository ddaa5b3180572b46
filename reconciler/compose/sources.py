"""The source ``reconciler run --repo`` names, built with its reconciler.

Owns: telling a watched directory from a Git remote, refusing at start what could never
publish (a local non-bare repository: pushes to it are refused, so status and reverts
would queue forever), and wiring the remote's bare
cache, its history, its status writer and the reconciler that loads from it — with the
daemon's commit signer, when it has a signing key, handed to every one that commits.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.adapters.errors import PermanentError
from reconciler.adapters.fs.status import FileStatusWriter
from reconciler.adapters.git.history import History
from reconciler.adapters.git.remote import RemoteAuth, RemoteRepo
from reconciler.adapters.git.sign import Signer
from reconciler.adapters.git.signing import SigningPolicy
from reconciler.adapters.git.status import StatusWriter
from reconciler.adapters.render import Limits as RenderLimits
from reconciler.compose.oneshot import read_policy
from reconciler.compose.reconciler import (
    REAL,
    BackendSettings,
    Environment,
    directory_reconciler,
    git_reconciler,
    live_status_target,
)
from reconciler.compose.tools import RenderSettings
from reconciler.core.policy import PolicyError
from reconciler.daemon.config import ConfigError, DaemonConfig
from reconciler.daemon.sources import GitSource, Source, WatchedDirectory


def backend_settings(cfg: DaemonConfig) -> BackendSettings:
    """The backends' settings from the operator's configuration (ConfigError when the
    policy file is unusable)."""
    try:
        policy = read_policy(cfg.policy_file) if cfg.policy_file else None
    except PolicyError as e:
        raise ConfigError(f"policy_file: {e}") from None
    return BackendSettings(
        state_dir=Path(cfg.state_dir), prometheus_url=cfg.prometheus_url,
        terraform_cli_config=Path(cfg.terraform_cli_config)
        if cfg.terraform_cli_config else None, terraform_sandbox=cfg.terraform_sandbox,
        terraform_network=cfg.terraform_network,
        terraform_provider_mirror=Path(cfg.terraform_provider_mirror)
        if cfg.terraform_provider_mirror else None, policy=policy,
        limits=cfg.concurrency, kube_qps=cfg.kube_qps, kube_burst=cfg.kube_burst,
        terraform_state_dir=Path(cfg.terraform_state_dir)
        if cfg.terraform_state_dir else None,
        replica=cfg.shards.replica_id if cfg.shards else None,
        render=RenderSettings(RenderLimits(cfg.render_timeout, cfg.render_max_output),
                              Path(cfg.chart_cache) if cfg.chart_cache else None))


def is_plain_directory(url: str) -> bool:
    """A local directory that is not a Git repository (no ``.git``, not bare)."""
    local = Path(url)
    return "://" not in url and local.is_dir() and not (local / ".git").exists() and \
        not (local / "HEAD").exists()


def refuse_non_bare(url: str) -> None:
    """A local non-bare repository cannot take our pushes (libgit2's local transport
    refuses them), so status and reverts would queue forever: refuse it at start."""
    local = Path(url.removeprefix("file://"))
    if "://" in url and not url.startswith("file://"):
        return
    if (local / ".git").exists():
        raise PermanentError(
            f"{url} is a non-bare repository: pushes to it are refused, so status and "
            f"revert commits could never be published. Follow a bare repository instead "
            f"(git clone --bare {local} {local.name}.git; push your commits there; "
            f"reconciler run --repo {local.name}.git)")


def _signer(cfg: DaemonConfig) -> Signer | None:
    """The daemon's commit signer (its key is checked at start); None when it has no key.
    Verification on without a key is refused: our own commits could never verify."""
    r = cfg.repo
    if r.verify_kind and not r.signing_key:
        raise PermanentError("repo.verify needs a signing_key: the daemon must sign its "
                             "own commits when verification is on")
    return Signer(r.signing_key, cfg.git_author[1]) if r.signing_key else None


def _policy(cfg: DaemonConfig, signer: Signer | None) -> SigningPolicy | None:
    """The revision policy: the operator's allowed keys, and the daemon's own public key
    (trusted implicitly for the daemon's commits, under the ``git_author`` email)."""
    r = cfg.repo
    if not r.verify_kind:
        return None
    return SigningPolicy(r.verify_kind, r.allowed_signers, r.gpg_home, r.fingerprints,
                         daemon_key=signer.public_key if signer else None,
                         daemon_principal=cfg.git_author[1])


def _remote(cfg: DaemonConfig, status_dir: Callable[[], str],
            signer: Signer | None = None) -> RemoteRepo:
    r, local = cfg.repo, Path(cfg.repo.url)
    auth = RemoteAuth(username=r.username, password_file=r.password_file,
                      password_env=r.password_env, ssh_private_key=r.ssh_private_key,
                      known_hosts=r.known_hosts)
    url = str(local.resolve()) if "://" not in r.url and local.exists() else r.url
    state = Path(cfg.state_dir)  # the daemon's own: 0700 (the cache and progress live here)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    state.chmod(0o700)
    return RemoteRepo(url, cfg.git_cache, branch=r.branch, auth=auth, author=cfg.git_author,
                      status_dir=status_dir, signer=signer)


def _git_source(cfg: DaemonConfig, env: Environment = REAL) -> GitSource:
    """Status (and progress) go to the live Fleet's ``status.path``, by its
    ``status.author`` or else the operator's ``git_author``; both identities' status
    commits are the daemon's own (no new plan). Reverts stay by ``git_author``."""
    refuse_non_bare(cfg.repo.url)
    signer = _signer(cfg)
    box: list[GitSource] = []
    target = live_status_target(lambda: box[0].reconciler if box else None, cfg.git_author)
    remote = _remote(cfg, lambda: target().directory, signer)
    head = remote.sync()
    rec = git_reconciler(cfg.git_cache, cfg.repo.branch, cfg.git_author,
                         lambda: box[0].revision, backend_settings(cfg), signer, env)
    status = StatusWriter(remote.repo, f"refs/heads/{cfg.repo.branch}", cfg.git_author,
                          target, signer)
    history = History(cfg.git_cache, cfg.git_author[1], _policy(cfg, signer), target)
    source = GitSource(remote, history, status, rec)
    box.append(source)
    source.adopt(head)
    return source


def open_source(cfg: DaemonConfig, env: Environment = REAL) -> Source:
    """The source for ``cfg.repo.url``: a directory without ``.git`` → watched directory
    (status under the state directory); anything else → a Git remote. ``env``: the fleet
    and clock the reconciler runs against (the real ones by default)."""
    if is_plain_directory(cfg.repo.url):
        path = Path(cfg.repo.url).resolve()
        return WatchedDirectory(path, FileStatusWriter(Path(cfg.state_dir)),
                                directory_reconciler(path, backend_settings(cfg), env))
    return _git_source(cfg, env)
