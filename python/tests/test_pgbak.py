"""The Python package against a real cluster, prepared by the end-to-end test that runs this file
(``tests/tests/embedding.rs``): it names the pgbak configuration, the cluster's connection string,
the PostgreSQL binaries and a folder to restore into through environment variables."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import pgbak

CONFIG = os.environ.get("PGBAK_TEST_CONFIG")
CONNINFO = os.environ.get("PGBAK_TEST_CONNINFO", "")
PGBIN = Path(os.environ.get("PGBAK_TEST_PGBIN", "/usr/lib/postgresql/15/bin"))
WORK = Path(os.environ.get("PGBAK_TEST_WORK", "/tmp"))

needs_cluster = pytest.mark.skipif(CONFIG is None, reason="run by tests/tests/embedding.rs")


def sql(query: str, conninfo: str = CONNINFO) -> str:
    out = subprocess.run(
        [str(PGBIN / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", query],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def rows(conninfo: str = CONNINFO) -> str:
    return sql("SELECT count(*) || ':' || coalesce(sum(id), 0) FROM t", conninfo)


def insert(first: int, last: int) -> None:
    sql(f"INSERT INTO t SELECT g, md5(g::text) FROM generate_series({first}, {last}) g")


def test_the_library_is_loaded():
    assert pgbak.version().count(".") == 2


def test_errors_are_exceptions_with_the_message(tmp_path):
    with pytest.raises(pgbak.ConfigurationError) as e:
        pgbak.Server("main", config=tmp_path / "missing.conf")
    assert "missing.conf" in str(e.value)
    assert e.value.status == 5


@needs_cluster
def test_unknown_server_and_missing_backup():
    with pytest.raises(pgbak.ConfigurationError, match="unknown server 'nosuch'"):
        pgbak.Server("nosuch", config=CONFIG)
    with pgbak.Server("main", config=CONFIG) as server:
        with pytest.raises(pgbak.NotFoundError, match="does not exist") as e:
            server.show_backup("20000101T000000")
        assert isinstance(e.value, LookupError)
        with pytest.raises(pgbak.NotFoundError, match="not a backup id"):
            server.delete_backup("../../etc")
        with pytest.raises(pgbak.NotFoundError):
            server.get_wal("0000000100000000000000FF", WORK / "never")
        assert not (WORK / "never").exists()
    with pytest.raises(pgbak.UsageError, match="closed"):
        server.list_backups()


@needs_cluster
def test_backup_and_point_in_time_recovery():
    sql("CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, v text)")
    insert(1, 3000)
    seen = []
    with pgbak.Server("main", config=CONFIG) as server:
        backup = server.backup(wait=True, wait_timeout=120, progress=lambda d, t: seen.append((d, t)))
        assert backup["status"] == "DONE", backup
        assert seen and seen[-1][0] > 0
        listed = server.list_backups()
        assert listed[0]["backup_id"] == backup["backup_id"]
        assert server.show_backup("latest")["backup_id"] == backup["backup_id"]
        verified = server.verify_backup(backup["backup_id"])
        assert verified["problems"] == [] and verified["files_checked"] > 500, verified
        checks = server.check()
        assert checks["main"] and all(c["status"] == "OK" for c in checks["main"].values()), checks

        insert(3001, 4000)
        time.sleep(0.02)
        target = sql("SELECT clock_timestamp()::text")
        expected = rows()
        time.sleep(0.02)
        insert(4001, 5000)
        sql("SELECT pg_switch_wal()")
        sql("CHECKPOINT")
        segment = sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        insert(5001, 5001)
        sql("SELECT pg_switch_wal()")
        # Wait until the segment holding the target's commits is archived.
        deadline = time.time() + 60
        while True:
            try:
                server.get_wal(segment, WORK / "probe")
                break
            except pgbak.NotFoundError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert (WORK / "probe").stat().st_size == 16 << 20

        dest = WORK / "restored"
        report = server.recover(
            "latest", dest, target_time=target, target_action="promote"
        )
        assert report["backup_id"] == backup["backup_id"]
        assert report["wal_files_copied"] > 0, report

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = WORK / "restored.log"
    subprocess.run(
        [
            str(PGBIN / "pg_ctl"), "-D", str(dest), "-l", str(log), "-w", "-t", "120", "-o",
            f"-p {port} -k {WORK} -c listen_addresses='' -c archive_mode=off", "start",
        ],
        check=True,
    )
    try:
        conninfo = f"host={WORK} port={port} dbname=postgres user=postgres"
        deadline = time.time() + 120
        while sql("SELECT pg_is_in_recovery()", conninfo) != "f":
            assert time.time() < deadline, log.read_text()
            time.sleep(0.2)
        assert rows(conninfo) == expected, f"recovery to {target}"
    finally:
        subprocess.run([str(PGBIN / "pg_ctl"), "-D", str(dest), "-m", "immediate", "stop"], check=False)


@needs_cluster
def test_a_kept_backup_is_not_deleted():
    with pgbak.Server("main", config=CONFIG) as server:
        backup_id = server.show_backup("latest")["backup_id"]
        assert server.keep(backup_id, "standalone")["keep"] == "standalone"
        assert server.show_backup(backup_id)["keep_target"] == "standalone"
        with pytest.raises(pgbak.RefusedError, match="kept"):
            server.delete_backup(backup_id)
        with pytest.raises(pgbak.UsageError, match="not full or standalone"):
            server.keep(backup_id, "forever")
        assert server.release_keep(backup_id)["keep"] == "nokeep"
        assert server.show_backup(backup_id)["status"] == "DONE"


@needs_cluster
def test_a_progress_callback_that_raises_stops_the_restore():
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    dest = WORK / "stopped"
    with pgbak.Server("main", config=CONFIG) as server:
        with pytest.raises(Stop):
            server.recover("latest", dest, target_immediate=True, progress=stop)
        # Incomplete, and marked so: PostgreSQL would not start it.
        assert dest.is_dir()
        assert not (dest / "backup_label").exists()
        seen = []
        report = server.recover(
            "latest", WORK / "whole", target_immediate=True, progress=lambda d, t: seen.append((d, t))
        )
        assert report["restore"]["bytes_written"] > 0
        assert seen[-1][0] >= report["restore"]["bytes_written"], seen[-1]
        assert (WORK / "whole" / "backup_label").exists()


@needs_cluster
def test_a_progress_callback_that_raises_cancels_the_backup():
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    with pgbak.Server("main", config=CONFIG) as server:
        before = {b["backup_id"] for b in server.list_backups()}
        with pytest.raises(Stop):
            server.backup(wait=False, progress=stop)
        after = server.list_backups()
        new = [b for b in after if b["backup_id"] not in before]
        assert len(new) == 1 and new[0]["status"] == "FAILED", new


@needs_cluster
def test_retention_deletes_what_the_policy_makes_obsolete(tmp_path):
    # The same server with a policy of one backup: every older DONE backup becomes OBSOLETE.
    config = tmp_path / "retention.conf"
    text = Path(CONFIG).read_text().replace("[main]", "[main]\nretention_policy = REDUNDANCY 1", 1)
    config.write_text(text)
    with pgbak.Server("main", config=config) as server:
        server.backup(wait=True)
        done = [b["backup_id"] for b in server.list_backups() if b["status"] == "DONE"]
        assert len(done) >= 2, done
        report = server.enforce_retention()
        deleted = sorted(d["backup_id"] for d in report["deleted"])
        assert deleted == sorted(done[1:]), report
        assert report["errors"] == []
        left = [b["backup_id"] for b in server.list_backups() if b["status"] == "DONE"]
        assert left == done[:1]
        # Nothing more is obsolete.
        assert server.enforce_retention()["deleted"] == []
        rebuilt = server.rebuild_xlogdb()
        assert rebuilt["server"] == "main" and rebuilt["entries"] >= 1, rebuilt
        assert rebuilt["checksummed"] == rebuilt["entries"], rebuilt
