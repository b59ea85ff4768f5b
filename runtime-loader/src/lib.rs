//! Runtime loader: bpffs, load, attach, pin, map images and deltas.
