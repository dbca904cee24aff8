#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Real inputs (a backup_label, a backup_manifest, a history file, the first page of a WAL segment)
come from a PostgreSQL cluster: pass the folder prepared by `scripts/fuzz.sh --real-seeds` (or
any folder holding `backup_label`, `backup_manifest`, `00000002.history` and a WAL segment named
`segment`); without it the committed copies in fuzz/seeds/real/ are used. Everything else is
built here. Run from anywhere: python3 fuzz/seeds/make_seeds.py [REAL_DIR]
"""
import gzip, bz2, lzma, hashlib, io, json, os, struct, subprocess, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")
REAL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "real")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def real(name):
    with open(os.path.join(REAL, name), "rb") as f:
        return f.read()


# --- CRC-32C (for CRC32CSUMS), Castagnoli polynomial, reflected.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# --- config_ini
put("config_ini", "barman_style.conf", """; pgbak configuration
[pgbak]
home = /var/lib/pgbak
log_level = INFO
compression = gzip
retention_policy = RECOVERY WINDOW OF 4 WEEKS
minimum_redundancy = 1

[pg]
description = "Main PostgreSQL server"
conninfo = host=pg user=barman dbname=postgres
streaming_conninfo = host=pg user=streaming_barman
backup_method = postgres
streaming_archiver = on
slot_name = barman
create_slot = auto
backup_directory = %(home)s/custom/%(name)s
path_prefix = /usr/lib/postgresql/15/bin
""")
put("config_ini", "rsync.conf", """[barman]
barman_home = /srv/barman
barman_user: barman

[ssh-pg]
ssh_command = ssh postgres@pg
  -o BatchMode=yes
conninfo = host=pg port=5433 user=barman
backup_method = rsync
reuse_backup = link
parallel_jobs = 2
archiver = on
wal_retention_policy = main
bandwidth_limit = 4000
network_compression = true
pre_backup_script = echo %%before
""")

# --- conninfo
for i, s in enumerate([
    "host=db1 port=5432 user=backup dbname=postgres password=s3cret",
    "host='/var/run/postgresql' user='backup user' application_name=pgbak connect_timeout=10 sslmode=disable",
    "postgresql://bob:s3cret@db.example:5433/app?sslmode=prefer&application_name=pgbak",
    "postgres://%2Fvar%2Frun%2Fpostgresql/db?password=x&options=-c%20statement_timeout%3D0",
    "postgresql://[::1]:5432/postgres?ssl=true&connect_timeout=1",
    "hostaddr=127.0.0.1 host=db options='-c wal_sender_timeout=0' fallback_application_name=barman",
    "user=a\\ b password='it\\'s' channel_binding=prefer gssencmode=disable",
]):
    put("conninfo", f"seed{i}", s)

# --- pgpass
put("pgpass", "file", "db1 5432 postgres backup\n# comment\ndb1:5432:*:backup:s3cret\n*:*:*:*:fallback\n")
put("pgpass", "escapes", "/var/run/postgresql 5433 app bob\nlocalhost:5433:app:bob:pa\\:ss\\\\word\n")

# --- backup_label
put("backup_label", "pg15", real("backup_label"))
put("backup_label", "pg17_incremental",
    "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n"
    "CHECKPOINT LOCATION: 0/4000080\nBACKUP METHOD: streamed\nBACKUP FROM: standby\n"
    "START TIME: 2025-01-01 10:00:00 UTC\nLABEL:  spaced label \nSTART TIMELINE: 1\n"
    "INCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\n")

# --- history: first byte + 1 is the timeline
put("history", "tli2", b"\x01" + real("00000002.history"))
put("history", "tli4", b"\x03" + b"1\t0/3000000\tno recovery target specified\n\n"
    b"# comment\n2\t0/5000158\tat restore point \"before upgrade\"\n3\t0/7A000000\tbefore 2025-01-01 00:00:00+00\n")

# --- manifest: the real one cut to a few files, and a version 2 one with an Encoded-Path.
def manifest(version, sysid, files, ranges):
    out = '{ "PostgreSQL-Backup-Manifest-Version": %d,\n' % version
    if sysid is not None:
        out += '"System-Identifier": %d,\n' % sysid
    out += '"Files": [\n' + ",\n".join(files) + "\n],\n"
    out += '"WAL-Ranges": [\n' + ",\n".join(ranges) + "\n],\n"
    return (out + '"Manifest-Checksum": "%s"}\n' % hashlib.sha256(out.encode()).hexdigest()).encode()

text = real("backup_manifest").decode()
lines = text.split("\n")
files = [l.rstrip(",") for l in lines if l.startswith('{ "Path"')][:4]
ranges = [l.rstrip(",") for l in lines if l.startswith('{ "Timeline"')]
put("manifest", "pg15_v1", manifest(1, None, files, ranges))
put("manifest", "v2_encoded", manifest(2, 7383950117355521234, [
    '{ "Encoded-Path": "706773716c5f74626c7370632f31363338352fff", "Size": 0, "Last-Modified": "2025-01-01 00:00:00 GMT" }',
    '{ "Path": "base/1/1259", "Size": 8192, "Last-Modified": "2025-01-01 00:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "a1b2c3d4" }',
    '{ "Path": "global/pg_control", "Size": 8192, "Last-Modified": "2025-01-01 00:00:00 GMT", "Checksum-Algorithm": "NONE" }',
], ['{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }',
    '{ "Timeline": 2, "Start-LSN": "0/3000000", "End-LSN": "0/3000200" }']))

# --- backup_info (backup.json as the catalogue writes it)
info = {
    "format_version": 1, "backup_id": "20250101T100000", "server_name": "pg", "status": "DONE",
    "mode": "postgres", "backup_format": "tar", "compression": "zstd",
    "begin_time": "2025-01-01T10:00:00.123456789Z", "end_time": "2025-01-01T10:05:00Z",
    "begin_lsn": "0/2000028", "end_lsn": "0/2000100", "begin_wal": "000000010000000000000002",
    "end_wal": "000000010000000000000002", "timeline": 1, "end_timeline": 1,
    "systemid": "7383950117355521234", "version": 150004, "wal_segment_size": 16777216,
    "pgdata": "/var/lib/postgresql/15/main",
    "tablespaces": [{"name": "tbs", "oid": 16385, "location": "/srv/tbs"}],
    "data_size": 31457280, "size": 4194304,
    "files": [{"name": "data/base.tar.zst", "size": 4000000}, {"name": "data/16385.tar.zst", "size": 194304}],
    "backup_label": real("backup_label").decode(), "has_manifest": True, "copy_seconds": 1.25,
    "error": None,
}
put("backup_info", "tar_done.json", json.dumps(info, indent=2))
rsync = dict(info, status="FAILED", mode="rsync", backup_format="plain", compression="none",
             error="connection lost", copied_bytes=100, reused_bytes=900, network_bytes=50,
             reuse_mode="link", reuse_backup_id="20241231T100000",
             server_begin_time="2025-01-01T10:00:00+00:00", server_end_time=None)
put("backup_info", "rsync_failed.json", json.dumps(rsync))

# --- wal_index: flag byte, then xlog.db lines (the first line's name is searched)
idx = ("000000010000000000000003\t16384\t1735725600.123\tzstd\tNone\tcrc32c=1a2b3c4d\tsize=16777216\n"
       "000000010000000000000002\t16777216\t1735725500.000\tNone\tNone\n"
       "00000002.history\t42\t1735725700.5\tNone\tNone\n"
       "000000010000000000000003\t16390\t1735725800.000\tgzip\tNone\tcrc32c=deadbeef\tsize=16777216\n")
put("wal_index", "plain", b"\x00" + idx.encode())
put("wal_index", "cut", b"\x81" + idx.encode())

# --- tar streams
def tar_bytes(fmt, members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            ti = tarfile.TarInfo(m[0])
            ti.mtime = 1735725600
            ti.mode = 0o600
            kind = m[1]
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o700
                t.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = m[2]
                t.addfile(ti)
            elif kind == "hard":
                ti.type = tarfile.LNKTYPE
                ti.linkname = m[2]
                t.addfile(ti)
            else:
                ti.size = len(m[2])
                t.addfile(ti, io.BytesIO(m[2]))
    # tarfile pads to 10 KiB records; keep only the two end blocks, as seeds stay small.
    data = buf.getvalue().rstrip(b"\0")
    return data + b"\0" * (-len(data) % 512) + b"\0" * 1024

long = "base/16384/" + "x" * 120 + "/file_with_a_long_name_" + "y" * 40
pg_like = [("PG_VERSION", "file", b"15\n"), ("base", "dir"), ("base/1", "dir"),
           ("base/1/1259", "file", bytes(range(256)) * 4), ("pg_tblspc", "dir"),
           ("pg_tblspc/16385", "sym", "/srv/tbs"), ("backup_label", "file", real("backup_label"))]
put("tar_parser", "pax", b"\x00" + tar_bytes(tarfile.PAX_FORMAT, pg_like + [(long, "file", b"long\n"), ("h", "hard", "PG_VERSION")]))
put("tar_parser", "gnu", b"\x00" + tar_bytes(tarfile.GNU_FORMAT, pg_like + [(long, "file", b"long\n"), ("l", "sym", "t" * 150)]))
put("tar_parser", "ustar", b"\x00" + tar_bytes(tarfile.USTAR_FORMAT, pg_like))

put("tar_extract", "pg_like", b"\x00" + tar_bytes(tarfile.PAX_FORMAT, pg_like + [(long, "file", b"long\n"), ("h", "hard", "PG_VERSION")]))
put("tar_extract", "through_link", b"\x00" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("pg_tblspc", "dir"), ("pg_tblspc/16385", "sym", "../outside"), ("pg_tblspc/16385/evil", "file", b"x")]))
put("tar_extract", "through_abs_link", b"\x02" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("l", "sym", "/tmp/pgbak-fuzz-extract/outside"), ("l/canary", "file", b"x"), ("./l/new", "file", b"y")]))
put("tar_extract", "remap", b"\x04" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("pg_tblspc/16385", "sym", "/elsewhere"), ("pg_tblspc/16385/PG_15", "dir")]))
put("tar_extract", "dotdot", b"\x00" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("a", "dir"), ("a/../../outside/canary", "file", b"x"), ("/tmp/pgbak-fuzz-extract/outside/new", "file", b"y")]))
put("tar_extract", "hardlink_out", b"\x02" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("x", "hard", "../outside/canary"), ("y", "hard", "/tmp/pgbak-fuzz-extract/outside/canary"),
    ("z", "sym", "../outside/canary"), ("w", "hard", "z"), ("z", "file", b"replaced")]))

# --- replication: op byte, then what the server sends
def frame(tag, body):
    return tag + struct.pack(">I", len(body) + 4) + body

def cstr(*parts):
    return b"".join(p.encode() + b"\0" for p in parts)

def rows(names, values):
    desc = struct.pack(">H", len(names))
    for n in names:
        desc += n.encode() + b"\0" + b"\0" * 6 + struct.pack(">IhiH", 25, -1, -1, 0)
    out = frame(b"T", desc)
    for r in values:
        b = struct.pack(">H", len(r))
        for c in r:
            b += struct.pack(">i", -1) if c is None else struct.pack(">i", len(c)) + c
        out += frame(b"D", b)
    return out + frame(b"C", cstr("SELECT %d" % len(values)))

def hello(version="15.4"):
    return (frame(b"R", struct.pack(">i", 0)) + frame(b"S", cstr("server_version", version))
            + frame(b"S", cstr("integer_datetimes", "on")) + frame(b"K", struct.pack(">ii", 1, 2))
            + frame(b"Z", b"I"))

ready = frame(b"Z", b"I")
ident = rows(["systemid", "timeline", "xlogpos", "dbname"], [[b"7383950117355521234", b"1", b"0/3000148", None]])
show = rows(["wal_segment_size"], [[b"16MB"]])
slot = rows(["slot_type", "restart_lsn", "restart_tli"], [[b"physical", b"0/3000000", b"1"]])
hist = rows(["filename", "content"], [[b"00000002.history", real("00000002.history")]])
err = frame(b"E", cstr("SERROR", "VERROR", "C42704", "Mreplication slot \"pgbak\" does not exist") + b"\0")
notice = frame(b"N", cstr("SWARNING", "VWARNING", "C01000", "Mpage verification failed") + b"\0")

def copy_data(payload):
    return frame(b"d", payload)

def xlog(start, data):
    return copy_data(b"w" + struct.pack(">QQq", start, start + len(data), 0) + data)

def keepalive(end, reply):
    return copy_data(b"k" + struct.pack(">Qqb", end, 0, reply))

tar_small = tar_bytes(tarfile.USTAR_FORMAT, [("PG_VERSION", "file", b"15\n")])
start_rs = rows(["recptr", "tli"], [[b"0/2000028", b"1"]])
ts_rs = rows(["spcoid", "spclocation", "size"], [[None, None, b"100"], [b"16385", b"/srv/tbs", b"10"]])
end_rs = rows(["recptr", "tli"], [[b"0/2000100", b"1"]])
copy_out = frame(b"H", b"\0\0\0")
bb15 = (start_rs + ts_rs + copy_out
        + copy_data(b"n" + cstr("base.tar", "")) + copy_data(b"d" + tar_small)
        + copy_data(b"p" + struct.pack(">q", 512))
        + copy_data(b"n" + cstr("16385.tar", "/srv/tbs")) + copy_data(b"d" + tar_small)
        + copy_data(b"m") + copy_data(b"d" + manifest(1, None, files[:1], ranges))
        + frame(b"c", b"") + end_rs + frame(b"C", cstr("BASE_BACKUP")) + ready)
bb14 = (start_rs + ts_rs + copy_out + copy_data(tar_small) + frame(b"c", b"")
        + copy_out + copy_data(tar_small) + frame(b"c", b"")
        + end_rs + frame(b"C", cstr("BASE_BACKUP")) + ready)
stream = (frame(b"W", b"\0\0\0") + xlog(0x1000000, b"\x10\xd1" + b"\0" * 30) + keepalive(0x1000020, 1)
          + xlog(0x1000020, b"\0" * 64) + frame(b"c", b"")
          + rows(["next_tli", "next_tli_startpos"], [[b"2", b"0/1000060"]]) + frame(b"C", cstr("START_STREAMING")) + ready)

# ops byte: low 3 bits the first command, next 3 bits the second.
put("replication", "identify_show", bytes([0 | 1 << 3]) + hello() + ident + ready + show + ready)
put("replication", "slot_history", bytes([2 | 3 << 3]) + hello() + slot + ready + notice + hist + ready)
put("replication", "create_slot_error", bytes([4 | 0 << 3]) + hello() + err + ready + ident + ready)
put("replication", "base_backup_15", bytes([5 | 0 << 3]) + hello() + bb15 + ident + ready)
put("replication", "base_backup_14", bytes([6 | 0 << 3]) + hello("14.10") + bb14)
put("replication", "streaming", bytes([7 | 0 << 3]) + hello() + stream + ident + ready)
put("replication", "md5", bytes([0]) + frame(b"R", struct.pack(">i", 5) + b"salt") + hello() + ident + ready)
put("replication", "scram", bytes([0]) + frame(b"R", struct.pack(">i", 10) + cstr("SCRAM-SHA-256") + b"\0")
    + frame(b"R", struct.pack(">i", 11) + b"r=abc,s=c2FsdA==,i=4096"))

# --- protocol_messages: bodies of single messages
put("protocol_messages", "frame", ident[:40])
put("protocol_messages", "copy_both", b"\0\0\x01\0\0")
put("protocol_messages", "error", cstr("SERROR", "VERROR", "C42704", "Mno such slot", "Dmore", "Hhint") + b"\0")
put("protocol_messages", "new_archive", b"n" + cstr("base.tar", "/srv/tbs"))
put("protocol_messages", "progress", b"p" + struct.pack(">q", 123456))
put("protocol_messages", "xlog", b"w" + struct.pack(">QQq", 0x1000000, 0x1000010, 5) + b"\0" * 16)
put("protocol_messages", "keepalive", b"k" + struct.pack(">Qqb", 0x1000000, 5, 1))
put("protocol_messages", "status", b"r" + struct.pack(">QQQqb", 3, 2, 0, 7, 0))
put("protocol_messages", "version", "15.4 (Debian 15.4-1.pgdg120+1)")
put("protocol_messages", "size", "16MB")
put("protocol_messages", "slot_row", "physical\t0/3000000\t1")
put("protocol_messages", "end_row", "2\t0/5000000")

# --- wal_segment: name, NUL, first bytes of the file
segment = real("segment")
put("wal_segment", "first_page", b"000000010000000000000002\0" + segment[:8192])
put("wal_segment", "header_only", b"000000010000000000000002\0" + segment[:64])
put("wal_segment", "names", b"000000010000000000000002.00000028.backup\0")
put("wal_segment", "partial", b"000000020000000A000000FF.partial\0" + segment[:40])

# --- put_wal: raw tar streams (flag 0) and packed file lists (flag bit 0)
seg_body = segment[:2048]
def sums(kind, entries):
    out = ""
    for name, data in entries:
        d = {"SHA256SUMS": hashlib.sha256(data).hexdigest(), "MD5SUMS": hashlib.md5(data).hexdigest(),
             "CRC32CSUMS": "%08x" % crc32c(data)}[kind]
        out += "%s *%s\n" % (d, name)
    return out.encode()

for kind in ["SHA256SUMS", "MD5SUMS", "CRC32CSUMS"]:
    entries = [("000000010000000000000002", seg_body), ("00000002.history", real("00000002.history"))]
    t = tar_bytes(tarfile.USTAR_FORMAT, [(n, "file", d) for n, d in entries] + [(kind, "file", sums(kind, entries))])
    put("put_wal", "raw_" + kind.lower(), b"\x00" + t)
gz = gzip.compress(seg_body[:512], mtime=0)
put("put_wal", "raw_gzip", b"\x00" + tar_bytes(tarfile.USTAR_FORMAT, [
    ("000000010000000000000002", "file", gz), ("SHA256SUMS", "file", sums("SHA256SUMS", [("000000010000000000000002", gz)]))]))
# packed: control (name index, compression in bits 3-4, damage bit 5, no line bit 6), length/4, bytes
put("put_wal", "packed", bytes([0x01, 0x00, 16]) + seg_body[:64] + bytes([0x13, 4]) + b"1\t0/3000000\treason\n")
put("put_wal", "packed_gzip", bytes([0x03, 0x08, 8]) + seg_body[:32])

# --- wal_sums
put("wal_sums", "sha256", sums("SHA256SUMS", [("000000010000000000000002", b"a"), ("00000002.history", b"b")]))
put("wal_sums", "styles", "AB12  000000010000000000000001\ncd34 *00000002.history\n\n")

# --- decompress: flag 0 = the stream as is, flag 1 | codec << 1 = compress the input first
plain = b"".join(b"line %d of a small file\n" % i for i in range(50))
put("decompress", "gzip", b"\x00" + gzip.compress(plain, mtime=0))
put("decompress", "bzip2", b"\x00" + bz2.compress(plain))
put("decompress", "xz", b"\x00" + lzma.compress(plain))
for tool, args, name in [("zstd", ["-q", "-c"], "zstd"), ("lz4", ["-q", "-c"], "lz4")]:
    try:
        out = subprocess.run([tool] + args, input=plain, capture_output=True, check=True).stdout
        put("decompress", name, b"\x00" + out)
    except (OSError, subprocess.CalledProcessError):
        pass
for i in range(6):
    put("decompress", "roundtrip%d" % i, bytes([1 | i << 1]) + plain[:200])
put("decompress", "plain", b"\x00" + seg_body[:256])
print("seeds written to", os.path.normpath(CORPUS))
