"""Probes of where a run starts: interactive shell, program file, git, identity.

Everything here is read from the process and from files; no subprocess is started,
so ``init()`` stays fast.  Nothing here imports IPython: an interactive shell is
recognised only if IPython is already loaded.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

MASK = "***"
# words that make a flag or parameter name a secret's: --password, --hf-token, AWS_SECRET_ACCESS_KEY, api_key=
_SECRET_WORDS = frozenset(
    ("password", "passwd", "passphrase", "pwd", "token", "secret", "credential", "credentials", "apikey", "auth")
)


def ipython_shell() -> Any | None:
    """The running IPython shell, if IPython is loaded and has one, else ``None``."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    getter = getattr(ipython, "get_ipython", None)
    try:
        return getter() if getter else None
    except Exception:
        return None


def in_notebook() -> bool:
    """Whether notebook defaults apply: an interactive IPython shell (a kernel or a terminal)."""
    return ipython_shell() is not None


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (an IPython shell with a kernel)."""
    shell = ipython_shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def program_path() -> Path | None:
    """The script being run (``__main__.__file__``), if there is one."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    p = Path(path)
    if p.suffix not in (".py", ".pyw") or not p.is_file():
        return None
    return p.resolve()


def git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git_dir(root: Path) -> Path | None:
    dot = root / ".git"
    if dot.is_dir():
        return dot
    try:  # a worktree or submodule: ".git" is a file naming the real folder
        text = dot.read_text().strip()
    except OSError:
        return None
    if text.startswith("gitdir:"):
        target = Path(text.split(":", 1)[1].strip())
        return target if target.is_absolute() else (root / target).resolve()
    return None


def _read_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text().strip()).resolve()
    for base in (git_dir, common):
        try:
            return (base / ref).read_text().strip()
        except OSError:
            pass
    try:
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return None


def git_info(start: Path, *, with_author: bool) -> dict[str, Any]:
    """The repository around ``start``: root, branch, commit, origin URL, author e-mail."""
    root = git_root(start)
    if root is None:
        return {}
    info: dict[str, Any] = {"root": str(root)}
    git_dir = _git_dir(root)
    if git_dir is None:
        return info
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return info
    if head.startswith("ref:"):
        ref = head[4:].strip()
        info["branch"] = ref.rsplit("/", 1)[-1] if ref.startswith("refs/heads/") else ref
        commit = _read_ref(git_dir, ref)
    else:
        commit = head
    if commit:
        info["commit"] = commit
    import configparser

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    paths = [git_dir / "config"]
    if with_author:
        paths.insert(0, Path.home() / ".gitconfig")
    try:
        parser.read([str(p) for p in paths])
    except configparser.Error:
        return info
    url = parser.get('remote "origin"', "url", fallback=None)
    if url:
        info["remote"] = redact_url(url)  # a remote may carry a token: https://user:TOKEN@host/org/repo
    if with_author:
        email = os.environ.get("GIT_AUTHOR_EMAIL") or parser.get("user", "email", fallback=None)
        if email:
            info["author_email"] = email
    return info


def is_secret_name(name: str) -> bool:
    """Whether a flag or parameter name (``--api-key``, ``password``, ``AWS_SECRET_ACCESS_KEY``)
    says its value is a secret."""
    words = [w for w in re.split(r"[-_.]", name.strip().lstrip("-").lower()) if w]
    return bool(words) and (words[-1] == "key" or not _SECRET_WORDS.isdisjoint(words))


def redact_url(url: str) -> str:
    """``url`` without credentials: no ``user:password@`` (or ``token@``) part, and the
    values of secret-looking query parameters masked.  Text that is not a URL with a
    scheme (``git@host:org/repo.git``, whose ``git`` is no secret) is returned as it is."""
    try:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _ in pairs):
            query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with secrets masked: the value after a flag named like a secret
    (``--password X``, ``--api-key=X``), ``name=value`` pairs with such names, and
    credentials inside URLs."""
    out: list[str] = []
    mask_next = False
    for item in argv:
        if mask_next and not item.startswith("-"):
            out.append(MASK)
            mask_next = False
            continue
        mask_next = False
        if item.startswith("-") and "=" not in item:
            mask_next = is_secret_name(item)
            out.append(item)
            continue
        name, sep, value = item.partition("=")
        if sep and name and is_secret_name(name):
            out.append(f"{name}={MASK}")
        elif "://" in item:
            out.append(f"{name}={redact_url(value)}" if sep and "://" not in name else redact_url(item))
        else:
            out.append(item)
    return out


def anonymise_text(text: str) -> str:
    """``text`` with the home folder's path replaced by ``~`` and the user name by
    ``<user>`` (for ``anonymous="must"``: what nbtrack saves must not say who ran it)."""
    home = str(Path.home()).rstrip("/")
    if len(home) > 1:
        text = re.sub(rf"(?<![\w.-]){re.escape(home)}(?![\w.-])", "~", text)
    try:
        user = _user()
    except Exception:
        return text
    if len(user) >= 3:
        text = re.sub(rf"(?<![\w.-]){re.escape(user)}(?![\w-])", "<user>", text)
    return text


def identity() -> dict[str, str]:
    """The user and host a run records (left out entirely when ``anonymous='must'``)."""
    out: dict[str, str] = {}
    try:
        out["user"] = _user()
    except Exception:
        pass
    import socket  # here, not at import: it costs milliseconds of every import nbtrack

    out["host"] = socket.gethostname()
    return out


def default_project(cwd: Path) -> str | None:
    """The git root's name plus the sub-directory (``repo-sub-dir``), else the program's name."""
    root = git_root(cwd)
    if root is not None:
        parts = [root.name, *cwd.relative_to(root).parts]
        return "-".join(p for p in parts if p)[:128]
    program = program_path()
    if program is not None:
        return program.stem[:128]
    return None


def runtime_metadata(cwd: Path, *, anonymous: bool, git: bool = True) -> dict[str, Any]:
    """What a run records about where it started (``git=False``: nothing of the repository)."""
    # os.uname(), not platform.platform(): the latter starts a `uname -p` subprocess (~7 ms)
    uname = os.uname()
    meta: dict[str, Any] = {
        "python": ".".join(map(str, sys.version_info[:3])),
        "os": f"{uname.sysname}-{uname.release}-{uname.machine}",
        "interactive": in_notebook(),
    }
    program = program_path()
    repo = git_info(cwd, with_author=not anonymous) if git else {}
    if anonymous:
        # Paths can carry a home folder's user name: keep only what is relative.
        if program is not None:
            root = git_root(program.parent)
            meta["program"] = str(program.relative_to(root)) if root else program.name
        repo.pop("root", None)
    else:
        meta.update(identity())
        meta["cwd"] = str(cwd)
        if program is not None:
            meta["program"] = str(program)
        meta["argv"] = redact_argv(list(sys.argv))
    if repo:
        meta["git"] = repo
    return meta


def _user() -> str:
    """The login name, as ``getpass.getuser()`` finds it (without importing getpass)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    import pwd

    return pwd.getpwuid(os.getuid())[0]
