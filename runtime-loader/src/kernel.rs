//! What the running kernel's BPF supports, probed by loading tiny programs (the verifier's
//! answer, not the kernel version): the agent compiles out the datapath features the kernel
//! cannot load.

use std::io;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// The `bpf_attr` prefix of BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// One BPF instruction: opcode, registers (dst low nibble, src high), offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst | (src << 4)) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

/// Whether the verifier accepts `insns` as a socket filter: `Ok(false)` when it refuses them
/// (EINVAL for an unknown instruction, EACCES for a program it cannot prove safe), an error when the load could not be tried (e.g. EPERM without CAP_BPF).
fn loads(insns: &[u64]) -> io::Result<bool> {
    let license = b"GPL\0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    // SAFETY: `attr` is a correctly laid out bpf_attr prefix whose pointers reference `insns`
    // and `license`, both alive for the call; the kernel reads at most `size_of` bytes of it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as libc::c_uint,
        )
    };
    if fd >= 0 {
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Whether BPF atomics with fetch (`atomic_fetch_add` and friends, Linux 5.12) load: the
/// flow cache's deny slots need them (codegen `MapSizes::deny_cache`).
pub fn has_fetch_atomics() -> io::Result<bool> {
    loads(&atomic_on_stack(BPF_ADD | BPF_FETCH))
}

const BPF_ADD: i32 = 0x00;
const BPF_FETCH: i32 = 0x01;

/// `*(u64 *)(r10 - 8) = 0; r1 = 1; atomic `op` of r1 on that slot; return 0`.
fn atomic_on_stack(op: i32) -> [u64; 5] {
    const R0: u8 = 0;
    const R1: u8 = 1;
    const R10: u8 = 10;
    [
        insn(0x7a, R10, 0, -8, 0),   // *(u64 *)(r10 - 8) = 0
        insn(0xb7, R1, 0, 0, 1),     // r1 = 1
        insn(0xdb, R10, R1, -8, op), // BPF_STX | BPF_ATOMIC | BPF_DW
        insn(0xb7, R0, 0, 0, 0),     // r0 = 0
        insn(0x95, 0, 0, 0, 0),      // exit
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_are_encoded_as_the_kernel_reads_them() {
        // `r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)` as llvm-objdump prints it:
        // db 1a f8 ff 01 00 00 00.
        let i = insn(0xdb, 10, 1, -8, 1);
        assert_eq!(i.to_le_bytes(), [0xdb, 0x1a, 0xf8, 0xff, 0x01, 0, 0, 0]);
    }

    #[test]
    fn root_kernel_has_fetch_atomics() {
        if !crate::testkit::require_root("root_kernel_has_fetch_atomics") {
            return;
        }
        // The machines this project runs its tests on have Linux 6.x.
        assert!(has_fetch_atomics().unwrap());
        // The same program with an atomic operation no kernel has is refused, not an error.
        assert!(!loads(&atomic_on_stack(0xf1)).unwrap());
        // Plain atomic adds (no fetch) load on every kernel with BPF.
        assert!(loads(&atomic_on_stack(BPF_ADD)).unwrap());
    }
}
