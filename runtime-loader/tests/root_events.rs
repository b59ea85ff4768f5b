//! The events ring buffer's wakeups (bpf-templates/include/events.h): events are submitted
//! without waking the ring's waiters (readers poll, as the agent's monitor thread does), except
//! the event with which the unread data crosses half the ring, which wakes a reader asleep in
//! poll/epoll.

mod common;

use codegen::maps;
use common::datapath::{run, setup_pinned, tcp};
use ir::Direction;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes one event takes in the ring: the 72-byte record and its 8-byte header.
const RECORD: u32 = 80;

#[test]
fn root_events_wake_a_sleeping_reader_once_half_the_ring_is_unread() {
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
    let ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)).unwrap();
    let fd = ring.as_raw_fd();
    let woke = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let woke = woke.clone();
        std::thread::spawn(move || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the ring (and its fd) outlives the thread (joined below).
            let n = unsafe { libc::poll(&mut p, 1, 30_000) };
            woke.store(true, Ordering::SeqCst);
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // The foe is denied: one drop event per packet. The event that makes the unread data reach
    // half the ring is number `half`.
    let foe = tcp("10.0.0.3", "10.0.0.1", 43000, 22);
    let half = (sizes.events_ringbuf / 2).div_ceil(RECORD) + 1;
    for _ in 0..half - 40 {
        assert!(!run(&dp, Direction::Ingress, &foe));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !woke.load(Ordering::SeqCst),
        "woken before half the ring was unread"
    );
    for _ in 0..80 {
        assert!(!run(&dp, Direction::Ingress, &foe));
    }
    let start = Instant::now();
    while !woke.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(woke.load(Ordering::SeqCst), "not woken at half the ring");
    assert_eq!(sleeper.join().unwrap(), 1, "poll: readable");
    drop(ring);
}
