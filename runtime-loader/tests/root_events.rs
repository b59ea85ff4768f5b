//! The events ring buffer's wakeups (bpf-templates/include/events.h): an event submitted while
//! the reader had caught up (asleep in poll/epoll, as the agent's monitor thread is, without a
//! timeout) wakes it at once; events submitted while it still has unread data do not wake it
//! again.

mod common;

use codegen::maps;
use common::datapath::{run, setup_pinned, tcp};
use ir::Direction;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes one event takes in the ring: the 72-byte record and its 8-byte header.
const RECORD: u32 = 80;

/// How long a woken reader may take to return from poll (the wakeup itself takes
/// microseconds; this bounds a loaded machine's scheduling).
const PROMPT: Duration = Duration::from_millis(100);

#[test]
fn root_events_wake_a_sleeping_reader_at_the_first_event() {
    if !runtime_loader::testkit::require_root("root_events_wake_a_sleeping_reader") {
        return;
    }
    assert_eq!(
        std::mem::size_of::<codegen::layout::Event>() as u32 + 8,
        RECORD
    );
    let fs = runtime_loader::testkit::PrivateBpffs::new();
    let pin = fs.path.join(maps::EVENTS.name);
    let sizes = codegen::MapSizes::default();
    let dp = setup_pinned(false, &sizes, vec![(maps::EVENTS.name, pin.clone())]).expect("root");
    let data = aya::maps::MapData::from_pin(&pin).unwrap();
    let mut ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)).unwrap();
    let fd = ring.as_raw_fd();
    // The sleeper reports each return from poll (no timeout) and waits to be told to sleep again.
    let (woke_tx, woke) = mpsc::channel::<i32>();
    let (again, again_rx) = mpsc::channel::<bool>();
    let sleeper = std::thread::spawn(move || {
        while again_rx.recv() == Ok(true) {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the ring (and its fd) outlives the thread (joined below).
            let n = unsafe { libc::poll(&mut p, 1, -1) };
            woke_tx.send(n).unwrap();
        }
    });
    let foe = tcp("10.0.0.3", "10.0.0.1", 43000, 22);
    for round in 0..3 {
        again.send(true).unwrap();
        // Asleep: nothing wakes it while no event comes.
        assert!(
            woke.recv_timeout(Duration::from_millis(200)).is_err(),
            "round {round}: woken without an event"
        );
        let sent = Instant::now();
        assert!(!run(&dp, Direction::Ingress, &foe));
        let n = woke.recv_timeout(Duration::from_secs(10)).expect("woken");
        let took = sent.elapsed();
        assert_eq!(n, 1, "poll: readable");
        assert!(took < PROMPT, "round {round}: woken after {took:?}");
        // More events before the reader drains: they are there for it, one drain reads all.
        for _ in 0..9 {
            assert!(!run(&dp, Direction::Ingress, &foe));
        }
        let mut got = 0;
        while ring.next().is_some() {
            got += 1;
        }
        assert_eq!(got, 10, "round {round}: every event read");
    }
    again.send(false).unwrap();
    sleeper.join().unwrap();
    drop(ring);
}
