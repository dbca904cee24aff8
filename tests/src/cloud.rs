//! A pgbak home whose backups and WAL live in an object store (one of the emulators of
//! [`crate::emulators`]), for the end-to-end tests on S3, Azure and GCS.
//!
//! Every pgbak call gets the store's standard environment (as an operator would export it), and
//! so does the PostgreSQL server that runs `archive_command` and `restore_command`. Every call
//! is checked for leaks: the secret access key or account key of the environment never shows in
//! what pgbak prints.

use crate::emulators::{Emulator, Kind, Repository, AZURITE_KEY};
use crate::{Cluster, ClusterOptions, PgbakEnv, PgbakOutput};
use std::time::Duration;

/// The secrets of the emulators' environments, which no pgbak output may show.
pub const SECRETS: [&str; 2] = ["pgbak-test-secret", AZURITE_KEY];

/// A pgbak home for server `main` with `basebackups_directory = <bucket>/base` and
/// `wals_directory = <bucket>/wals` in a fresh bucket of an emulator.
pub struct CloudEnv {
    /// The home, configuration file and local folders (incoming, errors, locks).
    pub pgbak: PgbakEnv,
    /// Which store.
    pub kind: Kind,
    /// The bucket (container) and how to reach it.
    pub repo: Repository,
    /// The environment of every pgbak call and of the server.
    pub env: Vec<(String, String)>,
    /// The emulator's endpoint, as the environment names it.
    endpoint: String,
}

impl CloudEnv {
    /// A home using a fresh bucket of `emu`, reached through its standard environment.
    pub fn new(emu: &Emulator) -> CloudEnv {
        let repo = emu.repository("");
        CloudEnv {
            pgbak: PgbakEnv::new(),
            kind: emu.kind(),
            env: repo.env.clone(),
            repo,
            endpoint: emu.endpoint(),
        }
    }

    /// The store's environment with `endpoint` in place of the emulator's (a proxy in front of
    /// it, or a port where nothing answers).
    pub fn env_via(&self, endpoint: &str) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(&self.endpoint, endpoint)))
            .collect()
    }

    /// Writes a configuration for server `main` without a PostgreSQL server behind it (for
    /// `archive-wal` and the commands that only need the repository), with the repository
    /// lines and `extra`.
    pub fn write_config_without_server(&self, extra: &str) {
        self.pgbak.write_config_conninfo(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
                crate::free_port()
            ),
            &format!("{}{extra}", self.repository_lines()),
        );
    }

    /// URL of the backups.
    pub fn base_url(&self) -> String {
        format!("{}/base", self.repo.url)
    }

    /// URL of the WAL archive.
    pub fn wals_url(&self) -> String {
        format!("{}/wals", self.repo.url)
    }

    /// The server lines that put backups and WAL into the bucket.
    pub fn repository_lines(&self) -> String {
        format!(
            "basebackups_directory = {}\nwals_directory = {}\n",
            self.base_url(),
            self.wals_url()
        )
    }

    /// Writes the configuration of `main` for `cluster` with the repository lines and `extra`.
    pub fn write_config(&self, cluster: &Cluster, extra: &str) {
        self.pgbak
            .write_config(cluster, &format!("{}{extra}", self.repository_lines()));
    }

    /// A started cluster archiving into the bucket with `pgbak archive-wal` (the server gets
    /// the store's environment), configured with `extra` server lines.
    pub fn cluster(&self, extra: &str) -> Cluster {
        self.cluster_with(extra, ClusterOptions::default())
    }

    /// [`CloudEnv::cluster`] with `opts` (a major, settings) as well.
    pub fn cluster_with(&self, extra: &str, opts: ClusterOptions) -> Cluster {
        let mut env = self.env.clone();
        env.extend(opts.env.iter().cloned());
        let opts = ClusterOptions {
            archive_command: Some(self.pgbak.archive_command()),
            env,
            ..opts
        };
        let mut cluster = Cluster::init(opts);
        self.write_config(&cluster, extra);
        cluster.start_now();
        cluster
    }

    /// Runs pgbak with `args` and the store's environment; panics if the output shows a secret.
    pub fn run(&self, args: &[&str]) -> PgbakOutput {
        self.run_with_env(args, &self.env)
    }

    /// Runs pgbak with `args` and exactly `env` (on top of the test's own environment);
    /// panics if the output shows a secret.
    pub fn run_with_env(&self, args: &[&str], env: &[(String, String)]) -> PgbakOutput {
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = self.pgbak.run_plain_env(args, &envs);
        assert_no_secret(&format!("pgbak {}", args.join(" ")), &out);
        out
    }

    /// Starts pgbak with `args` and `env` in the background (its output piped).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(String, String)]) -> std::process::Child {
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.pgbak.spawn_plain_env(args, &envs)
    }

    /// `-f json backup main --wait`, which must succeed and end DONE; returns its JSON.
    pub fn backup(&self) -> serde_json::Value {
        let out = self
            .run(&[
                "-f",
                "json",
                "backup",
                "main",
                "--wait",
                "--wait-timeout",
                "120",
            ])
            .ok();
        let j = out.json();
        assert_eq!(j["status"], "DONE", "{}", out.stdout);
        j
    }

    /// Closes the current WAL segment and waits until it is archived.
    pub fn switch_wal_archived(&self) {
        self.run(&[
            "switch-wal",
            "main",
            "--force",
            "--archive",
            "--archive-timeout",
            "60",
        ])
        .ok();
    }

    /// Backups of `main` as (id, status), oldest first.
    pub fn backups(&self) -> Vec<(String, String)> {
        let out = self.run(&["-f", "json", "list-backups", "main"]).ok();
        let mut v: Vec<(String, String)> = out
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|b| {
                (
                    b["backup_id"].as_str().unwrap().to_string(),
                    b["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// A handle on the bucket opened by pgbak's own storage layer (with the emulator's options),
    /// under `prefix` (`base`, `wals` or empty for the whole bucket).
    pub fn store(&self, prefix: &str) -> std::sync::Arc<dyn pgbak_storage::StorageBackend> {
        let url = if prefix.is_empty() {
            self.repo.url.clone()
        } else {
            format!("{}/{prefix}", self.repo.url)
        };
        pgbak_storage::open(&url, &self.repo.options)
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    /// Every key in the bucket, through pgbak's storage layer.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut k: Vec<String> = self
            .store("")
            .list(prefix)
            .unwrap_or_else(|e| panic!("list {prefix}: {e}"))
            .into_iter()
            .map(|m| m.key)
            .collect();
        k.sort();
        k
    }

    /// Recovers backup `id` into folder `folder` with `args`, starts it with the store's
    /// environment (for `get-wal`), and waits until recovery ends.
    pub fn recover_and_start(&self, id: &str, folder: &str, args: &[&str]) -> Cluster {
        let dest = self.pgbak.restore_dir(folder);
        let dest_s = dest.display().to_string();
        let mut all = vec!["recover", "main", id, dest_s.as_str()];
        all.extend_from_slice(args);
        self.run(&all).ok();
        let restored = Cluster::start_existing_with_env(&dest, &["archive_mode=off"], &self.env);
        restored.wait_for("SELECT pg_is_in_recovery()", "f", Duration::from_secs(180));
        restored
    }
}

/// Panics if `out` shows one of [`SECRETS`].
pub fn assert_no_secret(what: &str, out: &PgbakOutput) {
    for secret in SECRETS {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(secret),
                "{what} shows a secret:\nstdout: {}\nstderr: {}",
                out.stdout,
                out.stderr
            );
        }
    }
}
