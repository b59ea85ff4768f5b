use super::*;
use crate::fqdn::{FqdnCache, FqdnConfig};
use ir::DnsRule;

fn selectors() -> Vec<DnsRule> {
    vec![DnsRule::MatchPattern("*.allowed.test".into())]
}

fn learned(addr: &str, name: &str, ttl: u32) -> Learned {
    Learned {
        addr: addr.parse().unwrap(),
        ttl,
        names: vec![name.into()],
    }
}

fn cache(now: Instant, entries: &[Learned]) -> FqdnCache {
    let mut c = FqdnCache::default();
    let cfg = FqdnConfig {
        min_ttl: Duration::ZERO,
        ..FqdnConfig::default()
    };
    c.learn(now, entries, &selectors(), &cfg);
    c
}

#[test]
fn entries_come_back_with_the_time_they_had_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = FqdnFile::new(dir.path());
    let now = Instant::now();
    let c = cache(
        now,
        &[
            learned("192.0.2.80", "api.allowed.test.", 300),
            learned("2001:db8::80", "api.allowed.test.", 30),
        ],
    );
    file.changed(now);
    assert_eq!(file.due(), Some(now), "the first write is not held back");
    file.save_if_due(now, &c).unwrap();
    assert_eq!(file.due(), None);

    // Read back 10 s later (the agent was down meanwhile).
    let wall = SystemTime::now() + Duration::from_secs(10);
    let mut back = file.load(wall).unwrap();
    back.sort_by_key(|l| l.ttl);
    let got: Vec<(String, u32, Vec<String>)> = back
        .iter()
        .map(|l| (l.addr.to_string(), l.ttl, l.names.clone()))
        .collect();
    // Whole seconds left, rounded down.
    assert!(
        matches!(&got[..], [(a6, 19 | 20, _), (a4, 289 | 290, n)]
            if a6 == "2001:db8::80" && a4 == "192.0.2.80" && n == &["api.allowed.test.".to_string()]),
        "{got:?}"
    );
    // Past the shorter one's expiry only the longer one is left.
    let later = file
        .load(SystemTime::now() + Duration::from_secs(31))
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].addr.to_string(), "192.0.2.80");
}

#[test]
fn writes_are_held_back_to_one_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = FqdnFile::new(dir.path());
    let now = Instant::now();
    let c = cache(now, &[learned("192.0.2.80", "api.allowed.test.", 300)]);
    file.changed(now);
    file.save_if_due(now, &c).unwrap();
    let soon = now + Duration::from_millis(100);
    file.changed(soon);
    assert_eq!(file.due(), Some(now + MIN_INTERVAL));
    // Not due yet: nothing written (the file still has the first version's one entry).
    let c2 = cache(
        now,
        &[
            learned("192.0.2.80", "api.allowed.test.", 300),
            learned("192.0.2.81", "www.allowed.test.", 300),
        ],
    );
    file.save_if_due(soon, &c2).unwrap();
    assert_eq!(file.load(SystemTime::now()).unwrap().len(), 1);
    file.save_if_due(now + MIN_INTERVAL, &c2).unwrap();
    assert_eq!(file.load(SystemTime::now()).unwrap().len(), 2);
    assert_eq!(file.due(), None);
}

#[test]
fn no_file_is_nothing_learned() {
    let dir = tempfile::tempdir().unwrap();
    assert!(FqdnFile::new(dir.path())
        .load(SystemTime::now())
        .unwrap()
        .is_empty());
}

#[test]
fn a_bad_file_is_an_error_naming_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = FqdnFile::new(dir.path());
    let write = |s: &str| std::fs::write(dir.path().join(FILE), s).unwrap();

    write("{\"version\": 1,\n \"entries\": [{\"addr\": \"not-an-address\"");
    let e = file.load(SystemTime::now()).unwrap_err().to_string();
    assert!(
        e.contains("fqdn.json:2:") && e.contains("invalid IP address"),
        "{e}"
    );

    write(r#"{"version": 2, "entries": []}"#);
    let e = file.load(SystemTime::now()).unwrap_err().to_string();
    assert!(e.contains("version 2"), "{e}");

    write(r#"{"version": 1, "entries": [], "extra": 1}"#);
    let e = file.load(SystemTime::now()).unwrap_err().to_string();
    assert!(e.contains("unknown field `extra`"), "{e}");

    let f = std::fs::File::create(dir.path().join(FILE)).unwrap();
    f.set_len(MAX_BYTES + 1).unwrap();
    let e = file.load(SystemTime::now()).unwrap_err();
    assert!(matches!(e, FqdnFileError::TooLarge { .. }), "{e}");
}

#[test]
fn names_the_proxy_would_not_learn_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let far = unix_ms(SystemTime::now()) + 60_000;
    let entry = |name: &str| {
        format!(r#"{{"addr": "192.0.2.1", "name": "{name}", "expires_unix_ms": {far}}}"#)
    };
    let long = format!("{}.", "a".repeat(300));
    let text = format!(
        r#"{{"version": 1, "entries": [{}, {}, {}, {}]}}"#,
        entry("ok.allowed.test."),
        entry("UPPER.allowed.test."),
        entry("no-dot.allowed.test"),
        entry(&long),
    );
    std::fs::write(dir.path().join(FILE), text).unwrap();
    let back = FqdnFile::new(dir.path()).load(SystemTime::now()).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].names, vec!["ok.allowed.test.".to_string()]);
}

#[test]
fn a_failed_write_stays_due() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = FqdnFile::new(&dir.path().join("missing"));
    let now = Instant::now();
    let c = cache(now, &[learned("192.0.2.80", "api.allowed.test.", 300)]);
    file.changed(now);
    let e = file.save_if_due(now, &c).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(file.due(), Some(now + MIN_INTERVAL));
}
