//! The test bed's sshd works: the cluster owner reaches it with the configured ssh command, and
//! rsync runs over it.

use pgbak_tests::{command_as_owner, give_to_owner, postgres_tempdir, Sshd};

#[test]
fn ssh_and_rsync_over_the_loopback_sshd() {
    let sshd = Sshd::start();
    let cmd = sshd.ssh_command();
    let mut parts = cmd.split_whitespace();
    let mut ssh = command_as_owner(parts.next().unwrap());
    ssh.args(parts).arg("echo hello from $(whoami)");
    let out = ssh.output().unwrap();
    assert!(
        out.status.success(),
        "ssh failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "hello from {}",
            if pgbak_tests::is_root() {
                "postgres"
            } else {
                ""
            }
        )
        .trim_end()
    );

    let src = postgres_tempdir();
    std::fs::write(src.path().join("f"), b"payload").unwrap();
    give_to_owner(src.path());
    let dst = postgres_tempdir();
    let out = command_as_owner("rsync")
        .arg("-a")
        .arg("-e")
        .arg(
            cmd.split_once(" postgres@")
                .map(|(a, _)| a.to_string())
                .unwrap_or(cmd.clone()),
        )
        .arg(format!("{}/", src.path().display()))
        .arg(format!("postgres@127.0.0.1:{}/", dst.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dst.path().join("f")).unwrap(), b"payload");
}
