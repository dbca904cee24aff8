//! `pgbak.conf`: INI syntax, sections, `%(option)s` interpolation, option values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgbak_core::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/etc/pgbak.conf");
    if let Ok(config) = Config::parse_str(text, origin) {
        // Parsing is a pure function of the text.
        let again = Config::parse_str(text, origin).expect("second parse of the same text");
        assert_eq!(config, again);
        for name in config.servers.keys() {
            assert!(config.server(name).is_ok());
        }
    }
});
