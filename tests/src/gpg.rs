//! Throwaway GPG keys for the encryption tests: a GnuPG home made by `gpg` itself, with no
//! passphrase cache, and the `gpg` command for cross-checks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The passphrase of [`BACKUP_KEY`].
pub const PASSPHRASE: &str = "correct horse battery staple";
/// A key with [`PASSPHRASE`], whose secret part is in the home.
pub const BACKUP_KEY: &str = "backup@pgbak.test";
/// A key whose secret part is not in the home (only its public key is).
pub const OTHER_KEY: &str = "other@pgbak.test";

/// A GnuPG home with [`BACKUP_KEY`] and [`OTHER_KEY`], made once per test binary (ed25519 and
/// cv25519 keys: quick to make); its agent is stopped and the folder removed at exit.
pub struct TestKeys {
    /// The GnuPG home (short: the agent's socket path must fit in 108 bytes).
    pub home: PathBuf,
    /// The home belongs to the cluster owner, and `gpg` runs as that user.
    as_owner: bool,
}

impl TestKeys {
    /// The keys of this test binary, for this process.
    pub fn get() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| TestKeys::make(false))
    }

    /// The same keys in a home of the cluster owner, for pgbak and PostgreSQL (which run as
    /// that user); pass `GNUPGHOME` to them.
    pub fn for_owner() -> &'static TestKeys {
        static KEYS: OnceLock<TestKeys> = OnceLock::new();
        KEYS.get_or_init(|| TestKeys::make(true))
    }

    /// `GNUPGHOME` for a process.
    pub fn env(&self) -> (String, String) {
        ("GNUPGHOME".to_string(), self.home.display().to_string())
    }

    fn make(as_owner: bool) -> TestKeys {
        use std::os::unix::fs::PermissionsExt;
        let tag = if as_owner { "o" } else { "" };
        let home = PathBuf::from(format!("/tmp/pgbak-gpg{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        // No passphrase cache: a wrong passphrase must fail even after a right one.
        std::fs::write(
            home.join("gpg-agent.conf"),
            "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n",
        )
        .unwrap();
        if as_owner {
            crate::give_to_owner(&home);
        }
        let keys = TestKeys { home, as_owner };
        for (uid, pass) in [(BACKUP_KEY, PASSPHRASE), (OTHER_KEY, "")] {
            keys.gpg_ok(&[
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                pass,
                "--quick-generate-key",
                uid,
                "future-default",
                "default",
                "never",
            ]);
        }
        let fpr = keys.fingerprint(OTHER_KEY);
        keys.gpg_ok(&["--yes", "--delete-secret-keys", &fpr]);
        // SAFETY: registering a plain function to run at exit.
        unsafe { libc::atexit(remove_homes) };
        HOMES.lock().unwrap().push((keys.home.clone(), as_owner));
        keys
    }

    /// Runs `gpg --batch` in the home with `args`; panics if it fails.
    pub fn gpg_ok(&self, args: &[&str]) -> Output {
        let out = self.gpg(args, None);
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `gpg --batch` in the home with `args` and `input` on its standard input.
    pub fn gpg(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut child = self
            .command("gpg")
            .env("GNUPGHOME", &self.home)
            .args(["--batch", "--quiet", "--no-tty"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gpg");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.unwrap_or_default().to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        let _ = feeder.join();
        out
    }

    fn command(&self, program: &str) -> Command {
        if self.as_owner {
            crate::command_as_owner(program)
        } else {
            Command::new(program)
        }
    }

    /// The fingerprint of the primary key of `uid`.
    pub fn fingerprint(&self, uid: &str) -> String {
        let out = self.gpg_ok(&["--with-colons", "--list-keys", uid]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_string()
    }
}

static HOMES: std::sync::Mutex<Vec<(PathBuf, bool)>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_homes() {
    if let Ok(homes) = HOMES.lock() {
        for (home, as_owner) in homes.iter() {
            remove_home(home, *as_owner);
        }
    }
}

fn remove_home(home: &Path, as_owner: bool) {
    let mut kill = if as_owner {
        crate::command_as_owner("gpgconf")
    } else {
        Command::new("gpgconf")
    };
    let _ = kill
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .status();
    let _ = std::fs::remove_dir_all(home);
}
