//! Command-line arguments of the WAL commands: get-wal, put-wal, the SSH helpers for the database
//! host (wal-archive, wal-restore), rebuild-xlogdb, check-wal-archive and replication-status.
//! Flags follow Barman's `barman get-wal`, `put-wal`, `barman-wal-archive` and `barman-wal-restore`.

use clap::Args;
use pgbak_compress::Compression;
use std::path::PathBuf;

/// `get-wal`.
#[derive(Args, Debug)]
pub struct GetWalArgs {
    pub server: String,
    /// The WAL file name (`%f`); not needed with --test.
    #[arg(required_unless_present = "test")]
    pub wal_name: Option<String>,
    /// Where to write it (`%p`); without it the file goes to standard output.
    pub dest: Option<PathBuf>,
    /// Write the file into this folder under its own name.
    #[arg(short = 'o', long = "output-directory", conflicts_with = "dest")]
    pub output_directory: Option<PathBuf>,
    /// List the file and up to N-1 following archived segments instead of fetching.
    #[arg(short = 'p', long = "peek", value_name = "N")]
    pub peek: Option<usize>,
    /// Write a tar stream with the file and up to N-1 following segments (used by wal-restore).
    #[arg(long = "bundle", value_name = "N", conflicts_with_all = ["peek", "dest", "output_directory"])]
    pub bundle: Option<usize>,
    /// Compress what goes to standard output with gzip.
    #[arg(short = 'z', long = "gzip")]
    pub gzip: bool,
    /// Compress what goes to standard output with bzip2.
    #[arg(short = 'j', long = "bzip2")]
    pub bzip2: bool,
    /// Compress what goes to standard output with this format.
    #[arg(long = "network-compression", value_name = "FORMAT")]
    pub network_compression: Option<Compression>,
    /// Only check that the server's archive can be read.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}

impl GetWalArgs {
    /// The compression asked for on standard output, if any.
    pub fn wire_compression(&self) -> Option<Compression> {
        if self.gzip {
            Some(Compression::Gzip)
        } else if self.bzip2 {
            Some(Compression::Bzip2)
        } else {
            self.network_compression.filter(|c| *c != Compression::None)
        }
    }
}

/// `put-wal`.
#[derive(Args, Debug)]
pub struct PutWalArgs {
    pub server: String,
    /// Only check that the server accepts WAL.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}

/// How the helpers reach pgbak on the backup host. The global `-c/--config` names the
/// configuration file on the backup host, as in Barman's helpers.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// User on the backup host (default: ssh's own default).
    #[arg(short = 'U', long = "user")]
    pub user: Option<String>,
    /// SSH port of the backup host.
    #[arg(long = "port")]
    pub port: Option<u16>,
    /// The pgbak program on the backup host.
    #[arg(long = "pgbak-path", default_value = "pgbak")]
    pub pgbak_path: String,
    /// The ssh program and options (split on white space), e.g. "ssh -i /path/key".
    #[arg(long = "ssh-command", default_value = "ssh")]
    pub ssh_command: String,
}

/// `wal-archive` (pgbak's barman-wal-archive): `archive_command = 'pgbak wal-archive HOST SERVER %p'`.
#[derive(Args, Debug)]
pub struct WalArchiveArgs {
    /// The backup host.
    pub backup_host: String,
    /// The server's name in the backup host's configuration.
    pub server: String,
    /// The WAL file to archive (`%p`); not needed with --test.
    #[arg(required_unless_present = "test")]
    pub wal_path: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only check the connection and that the backup host accepts WAL for the server.
    #[arg(short = 't', long = "test")]
    pub test: bool,
    /// Compress with gzip before sending.
    #[arg(short = 'z', long = "gzip")]
    pub gzip: bool,
    /// Compress with bzip2 before sending.
    #[arg(short = 'j', long = "bzip2")]
    pub bzip2: bool,
    /// Compress with xz before sending.
    #[arg(long = "xz")]
    pub xz: bool,
    /// Compress with snappy before sending.
    #[arg(long = "snappy")]
    pub snappy: bool,
    /// Compress with zstd before sending.
    #[arg(long = "zstd")]
    pub zstd: bool,
    /// Compress with lz4 before sending.
    #[arg(long = "lz4")]
    pub lz4: bool,
    /// Send an MD5SUMS file (Barman's --md5) instead of CRC32CSUMS.
    #[arg(long = "md5", conflicts_with = "sha256")]
    pub md5: bool,
    /// Send a SHA256SUMS file (what barman-wal-archive sends) instead of CRC32CSUMS.
    #[arg(long = "sha256")]
    pub sha256: bool,
}

impl WalArchiveArgs {
    /// The compression chosen with the format flags.
    pub fn compression(&self) -> Compression {
        [
            (self.gzip, Compression::Gzip),
            (self.bzip2, Compression::Bzip2),
            (self.xz, Compression::Xz),
            (self.snappy, Compression::Snappy),
            (self.zstd, Compression::Zstd),
            (self.lz4, Compression::Lz4),
        ]
        .into_iter()
        .find(|(on, _)| *on)
        .map_or(Compression::None, |(_, c)| c)
    }
}

/// `wal-restore` (pgbak's barman-wal-restore): `restore_command = 'pgbak wal-restore HOST SERVER %f %p'`.
#[derive(Args, Debug)]
pub struct WalRestoreArgs {
    /// The backup host.
    pub backup_host: String,
    /// The server's name in the backup host's configuration.
    pub server: String,
    /// The WAL file name PostgreSQL asks for (`%f`); not needed with --test.
    #[arg(required_unless_present = "test")]
    pub wal_name: Option<String>,
    /// Where PostgreSQL wants it (`%p`); not needed with --test.
    #[arg(required_unless_present = "test")]
    pub wal_dest: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Fetch the requested segment and up to N-1 following ones in one round trip, keeping the
    /// extra ones in the spool folder for the next calls.
    #[arg(short = 'p', long = "parallel", value_name = "N", default_value_t = 0)]
    pub parallel: usize,
    /// Where prefetched segments wait.
    #[arg(long = "spool-dir", default_value = "/var/tmp/walrestore")]
    pub spool_dir: PathBuf,
    /// Seconds to sleep after a failure other than "not in the archive" (slows retry loops).
    #[arg(
        short = 's',
        long = "sleep",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    pub sleep: u64,
    /// Compress the transfer with gzip.
    #[arg(short = 'z', long = "gzip")]
    pub gzip: bool,
    /// Compress the transfer with bzip2.
    #[arg(short = 'j', long = "bzip2")]
    pub bzip2: bool,
    /// Compress the transfer with this format (e.g. zstd, lz4).
    #[arg(long = "network-compression", value_name = "FORMAT")]
    pub network_compression: Option<Compression>,
    /// Only check the connection and that the backup host serves WAL for the server.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}

/// `check-wal-archive`.
#[derive(Args, Debug)]
pub struct CheckWalArchiveArgs {
    pub server: String,
    /// Ignore WAL of timelines below this one.
    #[arg(long = "timeline")]
    pub timeline: Option<u32>,
    /// Compare with this system identifier instead of asking the server.
    #[arg(long = "system-id")]
    pub system_id: Option<u64>,
}
