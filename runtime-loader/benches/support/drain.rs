//! A reader draining a pinned ring buffer for the whole of a measurement, as `monitor` does
//! (`runtime_loader::ring::wait`: a drain, then a pause of `COALESCE` when it found events),
//! on CPU 0 so that the measured thread keeps CPU 1 to itself.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Drain {
    stop: Arc<AtomicBool>,
    /// Wakes the reader out of its wait once the measurement is over.
    wake: OwnedFd,
    thread: JoinHandle<u64>,
}

impl Drain {
    pub fn start(pin: &Path) -> Drain {
        let data = aya::maps::MapData::from_pin(pin).expect("the pinned ring buffer");
        let mut ring = aya::maps::RingBuf::try_from(aya::maps::Map::RingBuf(data)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: plain eventfd(2); the descriptor is owned from here on.
        let wake = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        let stopped = wake.try_clone().unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            pin_to_cpu(0);
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let mut drained = 0;
                while let Some(item) = ring.next() {
                    drained += 1;
                    n += u64::from(!item.is_empty());
                }
                runtime_loader::ring::wait(ring.as_raw_fd(), Some(stopped.as_raw_fd()), drained)
                    .unwrap();
            }
            n
        });
        Drain { stop, wake, thread }
    }

    /// Stops the reader; the events it got.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&1u64 as *const u64).cast(), 8) };
        self.thread.join().unwrap()
    }
}

/// Binds the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}
