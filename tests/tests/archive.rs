//! archive-wal and get-wal against a real server's segments: the same segment twice is success,
//! different content under the same name is refused with both copies kept, and a damaged archived
//! segment is never handed to PostgreSQL.

use pgbak_tests::{give_to_owner, ClusterOptions, PgbakEnv};

fn archived_segment(env: &PgbakEnv, cluster: &pgbak_tests::Cluster) -> String {
    cluster.psql("CREATE TABLE IF NOT EXISTS t AS SELECT g FROM generate_series(1, 1000) g");
    env.switch_wal_archived()
}

#[test]
fn same_segment_twice_and_a_clash() {
    let env = PgbakEnv::new();
    let cluster = env.cluster("compression = gzip\n", ClusterOptions::default());
    let seg = archived_segment(&env, &cluster);
    let work = env.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    give_to_owner(&work);
    let copy = work.join(&seg);
    env.run(&["get-wal", "main", &seg, copy.to_str().unwrap()])
        .ok();
    let original = std::fs::read(&copy).unwrap();
    assert_eq!(original.len(), 16 << 20);

    // Same name, same content: success.
    env.run(&["archive-wal", "main", copy.to_str().unwrap()])
        .ok();

    // Same name, different content: failure, nothing lost.
    let mut changed = original.clone();
    changed[10_000] ^= 0x01;
    std::fs::write(&copy, &changed).unwrap();
    let out = env.run(&["archive-wal", "main", copy.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("different content"), "{}", out.stderr);
    let errors: Vec<_> = std::fs::read_dir(env.server_dir().join("errors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        std::fs::read(&errors[0]).unwrap(),
        changed,
        "the new copy is kept in errors/"
    );
    let back = work.join("back");
    env.run(&["get-wal", "main", &seg, back.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(&back).unwrap(),
        original,
        "the archived copy is untouched"
    );
}

#[test]
fn corrupt_or_missing_segments_are_not_handed_over() {
    for compression in ["none", "zstd"] {
        let env = PgbakEnv::new();
        let cluster = env.cluster(
            &format!("compression = {compression}\n"),
            ClusterOptions::default(),
        );
        let seg = archived_segment(&env, &cluster);
        let stored = env.server_dir().join("wals").join(&seg[..16]).join(&seg);
        let mut bytes = std::fs::read(&stored).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x20;
        std::fs::write(&stored, bytes).unwrap();
        let dest = env.dir.path().join("RECOVERYXLOG");
        let out = env.run(&["get-wal", "main", &seg, dest.to_str().unwrap()]);
        assert_eq!(out.code, 1, "{compression}: {out:?}");
        assert!(
            out.stderr.contains("corrupt"),
            "{compression}: {}",
            out.stderr
        );
        assert!(
            !dest.exists(),
            "{compression}: a damaged segment was written out"
        );

        let out = env.run(&[
            "get-wal",
            "main",
            "0000000100000000000000FE",
            dest.to_str().unwrap(),
        ]);
        assert_eq!(out.code, 1);
        assert!(out.stderr.contains("not found"), "{}", out.stderr);
        let out = env.run(&[
            "get-wal",
            "main",
            "../../etc/passwd",
            dest.to_str().unwrap(),
        ]);
        assert_ne!(out.code, 0);
        assert!(!dest.exists());
    }
}
