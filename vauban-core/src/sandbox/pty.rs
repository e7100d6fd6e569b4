//! vauban's side of an interactive run: the command's pty belongs to the
//! sandbox (its own devpts); vauban copies the pty's output to its standard
//! output and its standard input to the pty (the user's terminal in raw mode
//! meanwhile, put back after). The user's terminal itself never reaches the
//! sandbox, so nothing in it can push keystrokes into the user's shell.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The copying threads of an interactive run.
pub(crate) struct Relay {
    output: Option<JoinHandle<()>>,
    input: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    saved: Option<rustix::termios::Termios>,
}

/// Whether descriptor `fd` of this process is a terminal.
pub(crate) fn is_terminal(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

impl Relay {
    /// Starts copying between the pty `master` and vauban's standard streams
    /// (`streams`: which of stdin, stdout, stderr the pty stands for).
    pub(crate) fn start(master: OwnedFd, streams: [bool; 3]) -> std::io::Result<Relay> {
        let stdin = rustix::stdio::stdin();
        let to_stderr = !streams[1];
        let terminal = if to_stderr {
            rustix::stdio::stderr()
        } else {
            rustix::stdio::stdout()
        };
        if let Ok(size) = rustix::termios::tcgetwinsize(terminal) {
            let _ = rustix::termios::tcsetwinsize(&master, size);
        }
        let saved = if streams[0] && is_terminal(stdin) {
            let saved = rustix::termios::tcgetattr(stdin)?;
            let mut raw = saved.clone();
            raw.make_raw();
            rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw)?;
            Some(saved)
        } else {
            None
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reader = std::fs::File::from(master.try_clone()?);
        let output = std::thread::Builder::new()
            .name("vauban-pty-out".into())
            .spawn(move || copy_out(reader, to_stderr))?;
        let input = if saved.is_some() {
            let writer = std::fs::File::from(master);
            let flag = stop.clone();
            Some(
                std::thread::Builder::new()
                    .name("vauban-pty-in".into())
                    .spawn(move || copy_in(writer, &flag))?,
            )
        } else {
            None
        };
        Ok(Relay {
            output: Some(output),
            input,
            stop,
            saved,
        })
    }

    /// Waits for the pty's output to be drained (every process of the sandbox
    /// gone), stops reading standard input and puts the terminal back.
    pub(crate) fn finish(mut self) {
        if let Some(t) = self.output.take() {
            let _ = t.join();
        }
        self.stop_input();
    }

    fn stop_input(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.input.take() {
            let _ = t.join();
        }
        if let Some(saved) = self.saved.take() {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                &saved,
            );
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop_input();
    }
}

/// pty → standard output (or error), until the pty has no process left (EIO).
fn copy_out(mut master: std::fs::File, to_stderr: bool) {
    let mut buf = [0u8; 16 * 1024];
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    loop {
        match master.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// Standard input → pty, until told to stop.
fn copy_in(mut master: std::fs::File, stop: &AtomicBool) {
    let stdin = rustix::stdio::stdin();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(stdin, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u8)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        match rustix::io::read(stdin, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if master.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
