"""A spool shared by two users through a group stays writable for both (issue 14).

The finding: the shim created `decisions/` as `drwxr-sr-x agent shield`, so the approver (in
the group) got Permission denied, and `shield doctor` called the spool ok. Each side that
creates a spool subdirectory must give it the spool's group and group write.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from shim.approval.spool import AGENT_READS, SUBDIRS, prepare, sharing_problems
from tests.approval.support import write_held
from tests.conftest import REPO

GROUP = 4242  # any gid: root may hand a directory to a group it is not in


@pytest.fixture
def shared_spool(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("handing a directory to another group needs root (CI runs as root)")
    spool = tmp_path / "spool"
    spool.mkdir()
    os.chown(spool, -1, GROUP)
    spool.chmod(0o2770)
    old = os.umask(0o022)
    try:
        yield spool
    finally:
        os.umask(old)


def test_subdirectories_a_hold_creates_get_the_spool_group_and_group_write(
    shared_spool: Path,
) -> None:
    write_held(str(shared_spool), 60)
    made = [p for p in shared_spool.iterdir() if p.is_dir()]
    assert {p.name for p in made} >= {"requests", "decisions", "tmp"}
    for path in made:
        st = path.stat()
        assert st.st_gid == GROUP, path
        assert stat.S_IMODE(st.st_mode) == 0o2770, (path, oct(st.st_mode))
    (request,) = (shared_spool / "requests").iterdir()
    assert stat.S_IMODE(request.stat().st_mode) == 0o644  # the other side can read it
    assert sharing_problems(str(shared_spool)) == []


def test_the_group_is_set_even_without_setgid_on_the_spool(shared_spool: Path) -> None:
    shared_spool.chmod(0o0770)
    prepare(str(shared_spool))
    for name in SUBDIRS:
        st = (shared_spool / name).stat()
        others = 0o005 if name in AGENT_READS else 0  # the agent only reads these
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (GROUP, 0o770 | others), name


def test_a_file_made_under_umask_077_is_still_readable_by_the_other_side(
    shared_spool: Path,
) -> None:
    os.umask(0o077)
    write_held(str(shared_spool), 60)
    (request,) = (shared_spool / "requests").iterdir()
    assert stat.S_IMODE(request.stat().st_mode) == 0o644


def test_sharing_problems_names_a_subdirectory_the_group_cannot_write(
    shared_spool: Path,
) -> None:
    (shared_spool / "decisions").mkdir()  # as the old shim did: 2755 under umask 022
    os.chown(shared_spool / "decisions", -1, GROUP)
    (shared_spool / "closed").mkdir()
    os.chown(shared_spool / "closed", -1, 0)
    (shared_spool / "closed").chmod(0o2770)
    problems = sharing_problems(str(shared_spool))
    assert len(problems) == 2, problems
    assert "decisions is drwxr-sr-x: not writable by the group" in problems[0]
    assert "closed belongs to group" in problems[1]


def test_a_spool_for_one_user_has_no_sharing_problems(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o755)
    prepare(str(spool))
    assert sharing_problems(str(spool)) == []


def test_an_agent_outside_the_group_keeps_setgid_and_group_write(tmp_path: Path) -> None:
    # The agent's user owns the spool but is not in the approver's group: a chmod after mkdir
    # would drop the setgid bit for it, so the mode is set at mkdir.
    python, setpriv = "/usr/bin/python3", shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not os.access(python, os.X_OK):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as another user")
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        spool = base / "spool"
        spool.mkdir()
        os.chown(spool, 23456, GROUP)
        spool.chmod(0o2770)
        code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from shim.approval.spool import prepare; prepare({str(spool)!r})"
        user = ["--reuid=23456", "--regid=23456", "--clear-groups"]
        subprocess.run([setpriv, *user, python, "-I", "-c", code], check=True, timeout=60)
        for name in SUBDIRS:
            st = (spool / name).stat()
            assert (st.st_uid, st.st_gid) == (23456, GROUP), name
            others = 0o005 if name in AGENT_READS else 0  # the agent only reads these
            assert stat.S_IMODE(st.st_mode) == 0o2770 | others, (name, oct(st.st_mode))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_grant_the_approver_drops_is_readable_by_an_agent_outside_the_group() -> None:
    """Two users: the agent's user owns the spool (not in the approver's group), the approver
    writes through the group. The first grant used to create `grants/` as the approver's
    (2770): the agent could not list it and ignored every grant. Made at install (`prepare`,
    as install.sh does before handing the spool to the agent), the agent reads it."""
    python, setpriv = "/usr/bin/python3", shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None or not os.access(python, os.X_OK):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to act as another user")
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        spool = base / "spool"
        spool.mkdir()
        prepare(str(spool))  # install: root makes the spool, then hands it over (install.sh)
        for path in [spool, *spool.iterdir()]:
            os.chown(path, 23456, GROUP)
            path.chmod(0o2770)
        head = f"import sys; sys.path.insert(0, {str(REPO)!r}); "
        approver = ["--reuid=23457", "--regid=23457", f"--groups={GROUP}"]
        drop = (
            "from shim.approval.spool import write_statement; "
            f"write_statement({str(spool)!r}, 'grants', {{'id': 'g1', 'type': 'grant'}})"
        )
        subprocess.run([setpriv, *approver, python, "-I", "-c", head + drop], check=True)
        agent = ["--reuid=23456", "--regid=23456", "--clear-groups"]
        read = (
            "from shim.approval.grants import read_statements; "
            f"print([name for name, st, _ in read_statements({str(spool)!r}, 'grants')])"
        )
        out = subprocess.run(
            [setpriv, *agent, python, "-I", "-c", head + read],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.stdout.strip() == "['g1.json']"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_doctor_names_a_grants_directory_the_agent_cannot_read() -> None:
    """An approver-made `grants/` from before install made it (2770, the approver's): the
    agent outside the group ignores every grant there, and doctor says it cannot *read* it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        spool = base / "spool"
        spool.mkdir()
        prepare(str(spool))
        for path in [spool, *spool.iterdir()]:
            os.chown(path, 23456, GROUP)
            path.chmod(0o2770)
        os.chown(spool / "grants", 23457, GROUP)  # the approver's, as a first grant made it
        code = (
            f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "from shim.commands.doctor import Report, check_spool; rep = Report(); "
            f"check_spool(rep, {str(spool)!r}); print(rep.items)"
        )
        agent = ["--reuid=23456", "--regid=23456", "--clear-groups"]
        out = subprocess.run(
            [setpriv, *agent, sys.executable, "-c", code],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if "Permission denied" in out.stderr and "python" in out.stderr.lower():
            pytest.skip("this checkout's Python is not usable by another user")
        assert out.returncode == 0, out.stderr
        assert f"cannot read {spool / 'grants'}" in out.stdout
        assert "cannot write" not in out.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
