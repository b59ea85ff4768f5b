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
    // Edge-triggered: each of the kernel's wakeups of the ring's waiters is one epoll event, so
    // a wakeup that should not happen is seen even while the ring has unread data (a
    // level-triggered poll would return at once then, woken or not).
    // SAFETY: plain epoll_create1; the descriptor is owned from here on.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    // SAFETY: takes ownership of the new descriptor.
    let ep = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 0,
    };
    // SAFETY: valid epoll and ring descriptors and a valid event.
    let added = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(added, 0);
    let wakeups = |timeout: Duration| -> i32 {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: one valid output slot.
        unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                out.as_mut_ptr(),
                1,
                timeout.as_millis() as i32,
            )
        }
    };
    let foe = tcp("10.0.0.3", "10.0.0.1", 43000, 22);
    for round in 0..3 {
        // Caught up: nothing wakes the reader while no event comes.
        assert_eq!(
            wakeups(Duration::from_millis(200)),
            0,
            "round {round}: woken without an event"
        );
        // The first event wakes it at once, from another thread while it waits.
        let (woke_tx, woke) = mpsc::channel::<(i32, Instant)>();
        let sleeper = {
            let ep = ep.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut out = [libc::epoll_event { events: 0, u64: 0 }];
                // SAFETY: one valid output slot; no timeout, as the monitor waits.
                let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), out.as_mut_ptr(), 1, -1) };
                woke_tx.send((n, Instant::now())).unwrap();
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        assert!(!run(&dp, Direction::Ingress, &foe));
        let (n, at) = woke.recv_timeout(Duration::from_secs(10)).expect("woken");
        sleeper.join().unwrap();
        assert_eq!(n, 1, "round {round}: one wakeup");
        let took = at.duration_since(sent);
        assert!(took < PROMPT, "round {round}: woken after {took:?}");
        // More events before the reader drains: no further wakeup, and one drain reads all.
        for _ in 0..9 {
            assert!(!run(&dp, Direction::Ingress, &foe));
        }
        assert_eq!(
            wakeups(Duration::from_millis(200)),
            0,
            "round {round}: woken again while events were unread"
        );
        let mut got = 0;
        while ring.next().is_some() {
            got += 1;
        }
        assert_eq!(got, 10, "round {round}: every event read");
    }
    drop(ring);
}
