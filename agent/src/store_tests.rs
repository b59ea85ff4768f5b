use super::*;
use proptest::prelude::*;
use std::os::unix::fs::MetadataExt;

fn spec(id: u16, iface: &str) -> EndpointSpec {
    EndpointSpec {
        id,
        iface: iface.into(),
        labels: vec!["id=app1".into()],
        ipv4: None,
        ipv6: None,
        pod: None,
        container_id: None,
    }
}

/// Applies a change putting `text` at `path` to `st`, and returns its edit.
fn put(st: &mut Persisted, path: &str, text: &str) -> Edit {
    let mut e = Edit::default();
    e.sources.insert(path.into(), Some(text.into()));
    st.apply(&mut e, "put", vec![path.into()]);
    e
}

fn load(dir: &Path) -> Result<Persisted, StoreError> {
    Store::new(dir)?.load()
}

#[test]
fn state_survives_a_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut store = Store::new(dir).unwrap();
    assert_eq!(store.load().unwrap(), Persisted::default());
    let mut st = Persisted::default();
    let mut e1 = Edit::default();
    e1.sources.insert("a.json".into(), Some("[]".into()));
    e1.sources.insert("b.json".into(), Some("[1]".into()));
    e1.endpoints.insert(7, Some(spec(7, "veth7")));
    st.apply(&mut e1, "put", vec!["a.json".into()]);
    assert_eq!(e1.revision, 1);
    store.save(&e1, &st).unwrap();
    // A second change: one source removed, one deletion by labels recorded.
    let mut e2 = Edit::default();
    e2.sources.insert("b.json".into(), None);
    e2.deleted
        .insert("a.json".into(), Some(vec![vec!["team=a".into()]]));
    let before = st.clone();
    let inverse = st.apply(&mut e2, "delete", vec!["b.json".into()]);
    store.save(&e2, &st).unwrap();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 2);
    assert!(
        !journal.lines().nth(1).unwrap().contains("veth7"),
        "only what changed"
    );
    drop(store);
    assert_eq!(load(dir).unwrap(), st);
    assert_eq!(st.sources.len(), 1);
    assert_eq!(st.endpoints[&7], spec(7, "veth7"));
    // The inverse restores the previous state.
    let mut undone = st.clone();
    undone.undo(&inverse);
    assert_eq!(undone, before);
    // The snapshot takes over the journal.
    let mut again = Store::new(dir).unwrap();
    assert_eq!(again.load().unwrap(), st);
    again.snapshot(&st).unwrap();
    assert_eq!(std::fs::read(dir.join("journal.jsonl")).unwrap(), b"");
    drop(again);
    assert_eq!(load(dir).unwrap(), st);
    std::fs::write(dir.join("state.json"), b"{not json").unwrap();
    match load(dir) {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(e.to_string().contains("state.json"), "{e}")
        }
        other => panic!("expected a corrupt snapshot, got {other:?}"),
    }
}

#[test]
fn state_files_are_private_and_the_directory_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut store = Store::new(&dir).unwrap();
    let mut st = store.load().unwrap();
    let e = put(&mut st, "a.json", "[]");
    store.save(&e, &st).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in ["state.json", "journal.jsonl", "lock"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    match Store::new(&dir) {
        Err(e @ StoreError::Lock(_)) => {
            assert!(e.to_string().contains("in use by another agent"), "{e}")
        }
        Err(e) => panic!("expected the lock error, got {e}"),
        Ok(_) => panic!("a second store on one directory was allowed"),
    }
    // The refused store changed nothing.
    drop(store);
    assert_eq!(load(&dir).unwrap(), st);
}

#[test]
fn a_journal_without_its_snapshot_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path()).unwrap();
    let mut st = store.load().unwrap();
    let e = put(&mut st, "a.json", "[]");
    store.save(&e, &st).unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join("state.json")).unwrap();
    let e = load(dir.path()).unwrap_err();
    assert!(matches!(e, StoreError::MissingSnapshot { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("state.json") && msg.contains("journal.jsonl"),
        "{msg}"
    );
}

#[test]
fn an_unframed_journal_of_an_earlier_agent_is_migrated_into_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = Persisted::default();
    let e1 = put(&mut st, "a.json", "[]");
    let e2 = put(&mut st, "b.json", "[\"ü\"]");
    let mut text = String::new();
    for e in [&e1, &e2] {
        text += &serde_json::to_string(e).unwrap();
        text.push('\n');
    }
    // Earlier agents ignored a torn last line too.
    std::fs::write(dir.path().join("journal.jsonl"), format!("{text}{{\"revis")).unwrap();
    assert_eq!(load(dir.path()).unwrap(), st);
    assert_eq!(
        std::fs::read(dir.path().join("journal.jsonl")).unwrap(),
        b""
    );
    assert_eq!(load(dir.path()).unwrap(), st, "from the snapshot now");
}

#[test]
fn two_writers_of_one_revision_are_detected_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path()).unwrap();
    let mut st = store.load().unwrap();
    let base = st.clone();
    let e1 = put(&mut st, "a.json", "[]");
    store.save(&e1, &st).unwrap();
    // Another writer that started from the same state.
    let mut other = base;
    let e1b = put(&mut other, "b.json", "[]");
    store.save(&e1b, &other).unwrap();
    drop(store);
    match load(dir.path()) {
        Err(
            e @ StoreError::RevisionOutOfOrder {
                line: 2,
                found: 1,
                expected: 2,
                ..
            },
        ) => assert!(e.to_string().contains("journal.jsonl:2:"), "{e}"),
        other => panic!("expected a revision out of order, got {other:?}"),
    }
}

#[test]
fn a_corrupt_record_before_the_last_stops_the_load_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(dir.path()).unwrap();
    let mut st = store.load().unwrap();
    for p in ["a.json", "b.json", "c.json"] {
        let e = put(&mut st, p, "[]");
        store.save(&e, &st).unwrap();
    }
    drop(store);
    let j = dir.path().join("journal.jsonl");
    let mut bytes = std::fs::read(&j).unwrap();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[second + 20] ^= 0x20;
    std::fs::write(&j, &bytes).unwrap();
    match load(dir.path()) {
        Err(e @ StoreError::CorruptRecord { line: 2, .. }) => {
            assert!(e.to_string().contains("journal.jsonl:2:"), "{e}")
        }
        other => panic!("expected a corrupt record at line 2, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// A journal whose last record (non-ASCII policy text) is cut at any byte — inside a
    /// UTF-8 character too — loads as the state before that change, has the torn bytes cut
    /// off, and the next change is appended cleanly and survives a restart.
    #[test]
    fn a_torn_last_record_is_dropped_at_every_byte(text in "[a-z\u{e9}\u{6f22}\u{1f980}]{1,12}") {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.jsonl");
        let mut st = Persisted::default();
        let (e1, e2);
        {
            let mut store = Store::new(dir.path()).unwrap();
            store.load().unwrap();
            e1 = put(&mut st, "a.json", "[]");
            store.save(&e1, &st).unwrap();
        }
        let after1 = st.clone();
        let full1 = std::fs::read(&j).unwrap();
        e2 = put(&mut st, "ü.json", &text);
        let record = journal_frame::encode(&serde_json::to_vec(&e2).unwrap());
        for cut in 1..record.len() {
            let mut bytes = full1.clone();
            bytes.extend_from_slice(&record[..cut]);
            std::fs::write(&j, &bytes).unwrap();
            let mut store = Store::new(dir.path()).unwrap();
            prop_assert_eq!(store.load().unwrap(), after1.clone());
            prop_assert_eq!(std::fs::read(&j).unwrap(), full1.clone(), "torn bytes cut off");
            if cut % 7 == 0 {
                store.save(&e2, &st).unwrap();
                drop(store);
                prop_assert_eq!(load(dir.path()).unwrap(), st.clone());
                std::fs::write(&j, &full1).unwrap();
            }
        }
    }
}

/// Mounts a tmpfs of `size` on `dir` (directly, without a forked `mount`: a child forked by
/// one test holds the other tests' lock files open until it execs); unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, size: &str) -> Tmpfs<'a> {
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (src, target, fs, opts) = (
            c("tmpfs"),
            c(dir.to_str().unwrap()),
            c("tmpfs"),
            c(&format!("size={size}")),
        );
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fs.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A full file system under the journal (a small tmpfs): the failed append is refused and cut
/// off; once space is freed, later changes are appended after the last complete record and
/// every acknowledged change survives a restart.
#[test]
fn root_full_disk_append_is_cut_off_and_later_changes_survive() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping root_full_disk_append_is_cut_off_and_later_changes_survive: not root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _tmpfs = Tmpfs::mount(dir, "256k");
    let state = dir.join("state");
    let mut store = Store::new(&state).unwrap();
    let mut st = store.load().unwrap();
    let e1 = put(&mut st, "a.json", "[]");
    store.save(&e1, &st).unwrap();
    let acked = st.clone();
    let len = std::fs::metadata(state.join("journal.jsonl"))
        .unwrap()
        .len();
    // Fill the file system, leaving less room than the next record needs.
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 4096]).is_ok() {}
    let _ = f.write_all(&[0u8; 1]);
    drop(f);
    let big = "x".repeat(8192);
    let mut failed = st.clone();
    let e2 = put(&mut failed, "big.json", &big);
    let err = store.save(&e2, &failed).unwrap_err();
    assert!(
        matches!(&err, StoreError::Append { source, cut: None, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(state.join("journal.jsonl"))
            .unwrap()
            .len(),
        len,
        "the partial record is cut off"
    );
    // Space comes back: two more acknowledged changes, then a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut st = acked;
    for p in ["b.json", "c.json"] {
        let e = put(&mut st, p, &big);
        store.save(&e, &st).unwrap();
    }
    drop(store);
    assert_eq!(load(&state).unwrap(), st);
}
