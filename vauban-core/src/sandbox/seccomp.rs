//! The seccomp filter of everything an image or the Ansible controller runs:
//! the kernel's key management (`add_key`, `request_key`, `keyctl`) answers
//! `EPERM`, as Docker's default profile has it. Keyrings belong to users, not
//! to mount or pid namespaces: joining a new session keyring (see
//! `confine::new_session_keyring`) does not stop a process from linking its
//! uid's user keyring (`@u`) into its session and reading it, or, holding
//! `CAP_SETUID`, any uid's; as real root that is every user's keys on the
//! machine (Kerberos caches among them), and rootless the keys the build's
//! own processes left for each other.
//!
//! The filter is a handful of BPF instructions written here rather than with
//! a filter compiler: the crates for it (`seccompiler`) kill every process
//! of another architecture (an image's i386 program) and set
//! `no_new_privs` when they install a filter, which would disarm the image's
//! setuid programs. It is built before the fork and installed between fork
//! and exec with a single `prctl`.

/// `struct seccomp_data` offsets.
const NR: u32 = 0;
const ARCH: u32 = 4;

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
/// `BPF_ALU | BPF_AND | BPF_K`.
const BPF_ALU_AND_K: u16 = 0x54;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// The x32 ABI's bit in a system call number (x86_64 kernels).
const X32_BIT: u32 = 0x4000_0000;

/// An architecture the kernel may run our programs as, and its numbers for
/// the calls refused.
struct Abi {
    audit_arch: u32,
    refused: [u32; 3],
    /// Bits cleared from the number before comparing (the x32 bit).
    clear: u32,
}

#[cfg(target_arch = "x86_64")]
const ABIS: &[Abi] = &[
    Abi {
        audit_arch: 0xc000_003e, // AUDIT_ARCH_X86_64 (x32 too, with its bit)
        refused: [248, 249, 250],
        clear: X32_BIT,
    },
    Abi {
        audit_arch: 0x4000_0003, // AUDIT_ARCH_I386
        refused: [286, 287, 288],
        clear: 0,
    },
];

#[cfg(target_arch = "aarch64")]
const ABIS: &[Abi] = &[
    Abi {
        audit_arch: 0xc000_00b7, // AUDIT_ARCH_AARCH64
        refused: [217, 218, 219],
        clear: 0,
    },
    Abi {
        audit_arch: 0x4000_0028, // AUDIT_ARCH_ARM
        refused: [309, 310, 311],
        clear: 0,
    },
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ABIS: &[Abi] = &[];

/// The compiled filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    program: Vec<libc::sock_filter>,
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    }
}

impl Filter {
    /// The filter for this architecture (and its compatibility ones).
    pub(crate) fn new() -> Filter {
        // Layout: load arch; per ABI: "not this arch: skip", load nr,
        // [clear bits], three "refused: jump to deny", allow; then allow
        // (another arch), deny.
        let mut program = vec![stmt(BPF_LD_W_ABS, ARCH)];
        let mut deny_jumps: Vec<usize> = Vec::new();
        for abi in ABIS {
            let body = 1 + usize::from(abi.clear != 0) + abi.refused.len() + 1;
            program.push(jump(abi.audit_arch, 0, body as u8));
            program.push(stmt(BPF_LD_W_ABS, NR));
            if abi.clear != 0 {
                program.push(stmt(BPF_ALU_AND_K, !abi.clear));
            }
            for nr in abi.refused {
                deny_jumps.push(program.len());
                program.push(jump(nr, 0, 0));
            }
            program.push(stmt(BPF_RET_K, RET_ALLOW));
            // Back to the arch for the next ABI's test.
            program.push(stmt(BPF_LD_W_ABS, ARCH));
        }
        program.push(stmt(BPF_RET_K, RET_ALLOW));
        let deny = program.len();
        program.push(stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32));
        for at in deny_jumps {
            program[at].jt = (deny - at - 1) as u8;
        }
        Filter { program }
    }

    /// Installs the filter on this thread (inherited by what it execs).
    /// Needs `CAP_SYS_ADMIN` or `no_new_privs`. A plain system call: fit to
    /// run between fork and exec.
    pub(crate) fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `self.program`, which outlives the call;
        // the kernel copies the program and keeps no pointer to it.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter as the kernel would, on (arch, nr).
    fn verdict(f: &Filter, arch: u32, nr: u32) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = f.program[pc];
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == ARCH { arch } else { nr },
                BPF_ALU_AND_K => acc &= i.k,
                BPF_JMP_JEQ_K => {
                    pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                }
                BPF_RET_K => return i.k,
                other => panic!("unknown instruction {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn key_management_is_refused_and_nothing_else() {
        let f = Filter::new();
        let deny = RET_ERRNO | libc::EPERM as u32;
        for abi in ABIS {
            for nr in abi.refused {
                assert_eq!(verdict(&f, abi.audit_arch, nr), deny, "{nr}");
                if abi.clear != 0 {
                    assert_eq!(verdict(&f, abi.audit_arch, nr | abi.clear), deny);
                }
            }
            for nr in [0, 1, 59, 247, 251, 400] {
                assert_eq!(verdict(&f, abi.audit_arch, nr), RET_ALLOW, "{nr}");
            }
        }
        assert_eq!(verdict(&f, 0x1234, 250), RET_ALLOW);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(ABIS[0].refused[2], libc::SYS_keyctl as u32);
    }
}
